package charmtest

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/falco-k8s/falco-k8s/internal/fakejuju"
)

// calls runs f and returns the hook-tool calls it made.
func (u *unit) calls(f func()) []string {
	u.tb.Helper()
	n := len(u.State().Calls)
	f()
	return u.State().Calls[n:]
}

// called reports the calls starting with one of the prefixes.
func called(calls []string, prefixes ...string) []string {
	var out []string
	for _, c := range calls {
		for _, p := range prefixes {
			if strings.HasPrefix(c, p) {
				out = append(out, c)
				break
			}
		}
	}
	return out
}

// jujuWrites are the tools that change what Juju holds for the unit (or ask for the ports).
var jujuWrites = []string{"status-set", "application-version-set", "opened-ports", "open-port", "close-port", "relation-set"}

// TestSteadyStateHookCalls: every hook tool is a process and a controller round trip, so a hook
// that changes nothing does not repeat status-set, application-version-set, opened-ports or
// relation-set with what Juju already holds, and a relation hook reads only its own relation.
// Whenever Juju's state may differ from the unit's record (upgrade-charm, a new pod, a failed
// hook, another leader), the calls are made again.
func TestSteadyStateHookCalls(t *testing.T) {
	u := newUnit(t, unitOpts{})
	u.hook("install")
	u.wantStatus("active", "rules")
	metrics, r := u.AddRelation("metrics-endpoint", "prometheus")
	u.runs("created", r)
	u.runs("joined", u.JoinUnit(metrics, "prometheus/0", nil)...)
	logging, r := u.AddRelation("logging", "loki")
	u.runs("created", r)
	u.runs("joined", u.JoinUnit(logging, "loki/0", map[string]string{"endpoint": `{"url": "http://127.0.0.1:9/loki/api/v1/push"}`})...)
	u.hook("config-changed")
	u.wantStatus("active", "rules")

	// A full update that changes nothing writes nothing to Juju.
	if got := called(u.calls(func() { u.hook("update-status") }), jujuWrites...); len(got) != 0 {
		t.Errorf("steady-state update-status: %q", got)
	}
	// A relation hook reads its own unit's data and nothing else.
	relKey := u.Relation(logging).Key()
	got := u.calls(func() { u.runs("changed", u.Hook("logging-relation-changed", u.RelationEnv(logging, "loki/0")...)) })
	slices.Sort(got) // concurrent
	if want := []string{"config-get --format=json", "relation-get --format=json -r " + relKey + " - loki/0"}; !slices.Equal(got, want) {
		t.Errorf("steady-state logging-relation-changed calls:\n got %q\nwant %q", got, want)
	}
	u.wantStatus("active", "rules")

	// upgrade-charm sets everything again: the new charm may say something else.
	got = called(u.calls(func() { u.hook("upgrade-charm") }), jujuWrites...)
	for _, want := range []string{"status-set", "application-version-set", "opened-ports", "relation-set -r " + u.Relation(metrics).Key() + " --app"} {
		if len(called(got, want)) == 0 {
			t.Errorf("upgrade-charm did not call %s: %q", want, got)
		}
	}
	if got := called(u.calls(func() { u.hook("update-status") }), jujuWrites...); len(got) != 0 {
		t.Errorf("update-status after upgrade-charm: %q", got)
	}

	// A new pod starts with an empty charm directory: the record is gone, so is what it saved.
	if err := os.Remove(filepath.Join(u.CharmDir, ".falco-k8s-juju.json")); err != nil {
		t.Fatal(err)
	}
	got = called(u.calls(func() { u.hook("config-changed") }), jujuWrites...)
	for _, want := range []string{"status-set", "application-version-set", "opened-ports", "relation-set"} {
		if len(called(got, want)) == 0 {
			t.Errorf("config-changed without a record did not call %s: %q", want, got)
		}
	}

	// A failed hook leaves no record: what it set is set again by the next hook.
	statusSet := filepath.Join(u.BinDir, "status-set")
	if err := os.Remove(statusSet); err != nil {
		t.Fatal(err)
	}
	if r := u.Hook("upgrade-charm"); r.Code == 0 {
		t.Fatalf("upgrade-charm without status-set succeeded: %s", r)
	}
	if err := os.Symlink(toolBin, statusSet); err != nil {
		t.Fatal(err)
	}
	got = called(u.calls(func() { u.hook("update-status") }), jujuWrites...)
	for _, want := range []string{"status-set", "application-version-set"} {
		if len(called(got, want)) == 0 {
			t.Errorf("update-status after a failed hook did not call %s: %q", want, got)
		}
	}

	// A new webhook port: opened, the old one closed; Juju commits that when the hook succeeds,
	// so the next hook looks once more and the one after trusts the record.
	newPort := freePorts(t)
	u.config(map[string]any{"webhook-port": int64(newPort)})
	got = called(u.calls(func() { u.hook("config-changed") }), "open-port", "close-port")
	if len(got) != 2 {
		t.Errorf("port change: %q", got)
	}
	if st := u.State(); !slices.Equal(st.OpenedPorts, []string{fmt.Sprintf("%d/tcp", newPort)}) {
		t.Errorf("opened ports %v, want %d/tcp", st.OpenedPorts, newPort)
	}
	if got := called(u.calls(func() { u.hook("update-status") }), jujuWrites...); !slices.Equal(got, []string{"opened-ports --format=json"}) {
		t.Errorf("hook after the port change: %q", got)
	}
	if got := called(u.calls(func() { u.hook("update-status") }), jujuWrites...); len(got) != 0 {
		t.Errorf("second hook after the port change: %q", got)
	}
	u.wantStatus("active", "rules")

	// Another leader wrote the application bag meanwhile: leader-elected writes it anew.
	if err := u.SetLeader(false); err != nil {
		t.Fatal(err)
	}
	u.hook("update-status")
	mine := u.Relation(metrics).LocalApp["scrape_jobs"]
	st, err := fakejuju.Load(u.StatePath)
	if err != nil {
		t.Fatal(err)
	}
	for _, rel := range st.Relations {
		if rel.ID == metrics {
			rel.LocalApp["scrape_jobs"] = "[]"
		}
	}
	if err := st.Save(u.StatePath); err != nil {
		t.Fatal(err)
	}
	if err := u.SetLeader(true); err != nil {
		t.Fatal(err)
	}
	u.hook("leader-elected")
	if got := u.Relation(metrics).LocalApp["scrape_jobs"]; got != mine {
		t.Errorf("scrape_jobs after leader-elected %q, want %q", got, mine)
	}
}
