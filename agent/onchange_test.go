package agent

import (
	"context"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/falco-k8s/falco-k8s/agent/status"
)

// TestOnChange checks the hook behind the Kubernetes Events: every recorded change, in order,
// with the same content /status shows.
func TestOnChange(t *testing.T) {
	var mu sync.Mutex
	var got []status.Change
	ta := startAgent(t, nil, Options{OnChange: func(c status.Change) {
		mu.Lock()
		got = append(got, c)
		mu.Unlock()
	}})
	if err := os.WriteFile(ta.rules, []byte(countRule("1")+invalidRule), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := ta.Reload(context.Background()); err == nil {
		t.Fatal("invalid reload accepted")
	}
	if err := os.WriteFile(ta.rules, []byte(countRule("2")), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := ta.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 3 {
		t.Fatalf("got %d changes, want startup, ignored, accepted: %+v", len(got), got)
	}
	if c := got[0]; !c.Accepted || c.Trigger != TriggerStartup || c.Generation != 1 {
		t.Errorf("startup: %+v", c)
	}
	if c := got[1]; c.Accepted || c.Trigger != TriggerReload || !strings.Contains(c.Reason, ta.rules+":") || c.Generation != 1 {
		t.Errorf("ignored: %+v", c)
	}
	st := ta.Status()
	if c := got[2]; !c.Accepted || c.Generation != 2 || st.LastAccepted == nil || *st.LastAccepted != c {
		t.Errorf("accepted: %+v, status %+v", c, st.LastAccepted)
	}
}
