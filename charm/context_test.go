package charm

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// logTools records juju-log calls; each takes a little while, as a process would.
type logTools struct {
	Tools
	mu    sync.Mutex
	lines []string
}

func (t *logTools) JujuLog(_ context.Context, level, msg string) error {
	time.Sleep(time.Millisecond)
	t.mu.Lock()
	defer t.mu.Unlock()
	t.lines = append(t.lines, level+" "+msg)
	return nil
}

func (t *logTools) got() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.lines)
}

// TestAsyncJujuLog: juju-log calls leave the hook's path but keep their order, every one is made
// by the time flush returns, and lines after flush go out at once.
func TestAsyncJujuLog(t *testing.T) {
	tools := &logTools{}
	var stdout bytes.Buffer
	c := NewContext(Env{Kind: "hooks", Name: "config-changed", Unit: "falco-k8s/0"}, tools, "test", &stdout)
	flush := c.asyncJujuLog()
	want := [][2]string{{"INFO", "one"}, {"INFO", "two"}, {"INFO", "three"}, {"WARNING", "four"}}
	for _, w := range want {
		if w[0] == "INFO" {
			c.Log.Info().Msg(w[1])
		} else {
			c.Log.Warn().Msg(w[1])
		}
	}
	c.Log.Debug().Msg("debug lines stay on stdout")
	flush()
	flush() // idempotent
	match := func(line string, w [2]string) bool {
		return strings.HasPrefix(line, w[0]+" ") && strings.Contains(line, `"message":"`+w[1]+`"`)
	}
	got := tools.got()
	if len(got) != len(want) {
		t.Fatalf("juju-log calls %q", got)
	}
	for i := range want {
		if !match(got[i], want[i]) {
			t.Errorf("call %d = %q, want %v", i, got[i], want[i])
		}
	}
	c.Log.Error().Msg("after")
	if got := tools.got(); len(got) != len(want)+1 || !match(got[len(want)], [2]string{"ERROR", "after"}) {
		t.Errorf("line after flush: %q", got)
	}
}
