package agent

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/falco-k8s/falco-k8s/agent/apiclient"
	"github.com/falco-k8s/falco-k8s/alerts"
	"github.com/falco-k8s/falco-k8s/engine"
	"github.com/falco-k8s/falco-k8s/rules"
)

// exampleEvents are the repository's example audit events, one request body each.
func exampleEvents(t *testing.T) [][]byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "examples", "audit-events.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for _, l := range strings.Split(string(b), "\n") {
		if strings.TrimSpace(l) != "" {
			out = append(out, []byte(l))
		}
	}
	return out
}

func fetch(t *testing.T, url string, f alerts.Filter) []*alerts.Alert {
	t.Helper()
	got, _, err := apiclient.New(url, nil).Alerts(context.Background(), f)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// TestJournalAndTuningThroughTheAgent runs the rollout loop against a real agent: alerts land
// in the journal and are served on /alerts, a tune written to <state_dir>/tuning.yaml is
// picked up by a reload, the tuned alerts stop while the others continue, and both the
// journal and the tuning survive a restart.
func TestJournalAndTuningThroughTheAgent(t *testing.T) {
	state := t.TempDir()
	overrides := []string{"rules.builtin=true", "rules.files=[]", "rules.state_dir=" + state, "rules.rule_matching=all"}
	ta := startAgent(t, overrides, Options{})
	events := exampleEvents(t)
	postAll := func(ta *testAgent) {
		for _, e := range events {
			postRetrying(t, ta.url, e)
		}
	}
	postAll(ta)
	waitFor(t, func() bool { return ta.Metrics().Snapshot().Evaluated == uint64(len(events)) })
	total := int(ta.Metrics().Snapshot().Alerts)
	if err := ta.Journal().Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	first := fetch(t, ta.url, alerts.Filter{})
	payments := fetch(t, ta.url, alerts.Filter{Namespace: "payments"})
	if total < 10 || len(first) != total || len(payments) == 0 {
		t.Fatalf("alerts %d, journal %d, payments %d", total, len(first), len(payments))
	}

	// Tune payments at namespace scope, into the agent's tuning file, and reload.
	tuning := filepath.Join(state, "tuning.yaml")
	res, err := alerts.Tune(payments, alerts.TuneOptions{Scope: alerts.ScopeNamespace, Base: []engine.File{{Name: rules.DefaultName, Content: rules.Default()}}, Path: tuning, Now: ta.started})
	if err != nil || len(res.Added) == 0 {
		t.Fatalf("tune: %+v %v", res, err)
	}
	if err := alerts.WriteFile(tuning, res.Content, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := ta.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, f := range ta.Status().Ruleset.Files {
		found = found || f.Name == tuning && f.Origin == OriginTuning
	}
	if !found {
		t.Fatalf("tuning file not in /status: %+v", ta.Status().Ruleset.Files)
	}
	postAll(ta)
	waitFor(t, func() bool { return ta.Metrics().Snapshot().Evaluated == uint64(2*len(events)) })
	if err := ta.Journal().Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := len(fetch(t, ta.url, alerts.Filter{Namespace: "payments"})); got != len(payments) {
		t.Fatalf("payments alerts after tuning: %d, want still %d (the first round's only)", got, len(payments))
	}
	if got := len(fetch(t, ta.url, alerts.Filter{})); got != 2*total-len(payments) {
		t.Fatalf("alerts after the second round: %d, want %d", got, 2*total-len(payments))
	}
	ta.stop(t)

	// Restart on the same state dir: the journal is still there, the tuning loads at start-up.
	tb := startAgent(t, overrides, Options{})
	if got := len(fetch(t, tb.url, alerts.Filter{})); got != 2*total-len(payments) {
		t.Fatalf("journal after restart: %d alerts", got)
	}
	postAll(tb)
	waitFor(t, func() bool { return tb.Metrics().Snapshot().Evaluated == uint64(len(events)) })
	if n := int(tb.Metrics().Snapshot().Alerts); n != total-len(payments) {
		t.Fatalf("alerts after restart: %d, want %d", n, total-len(payments))
	}

	// A tuning file that no longer loads does not keep the agent down: it starts untuned and
	// records the file as ignored.
	tb.stop(t)
	if err := os.WriteFile(tuning, []byte("- rule: Secret Read by User\n  override: {exceptions: append}\n  exceptions: [{name: x, fields: [no.such.field], values: [[a]]}]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tc := startAgent(t, overrides, Options{})
	if st := tc.Status(); st.LastIgnored == nil || st.LastIgnored.Origin != OriginTuning {
		t.Fatalf("broken tuning file not recorded as ignored: %+v", st.LastIgnored)
	}
}
