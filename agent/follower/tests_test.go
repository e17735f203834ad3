package follower

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/falco-k8s/falco-k8s/internal/testregistry"
)

const traces = "../../../shared/testdata/falco-k8s-audit/traces/"

func readTrace(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(traces + name)
	if err != nil {
		t.Fatalf("shared trace: %v", err) // readUpstreamRules already skipped when ../shared is absent
	}
	return string(b)
}

// TestArtifactTests: an artifact's own tests (Falco's regression traces for a privileged and an
// unprivileged pod) are replayed against the candidate; a candidate that still compiles but no
// longer detects the privileged pod is ignored naming the case and the rule.
func TestArtifactTests(t *testing.T) {
	upstream := readUpstreamRules(t)
	cases := `- name: privileged pod is flagged
  events: tests/events/privileged.json
  fire: [Create Privileged Pod]
- name: unprivileged pod is not
  events: tests/events/unprivileged.json
  no_fire: [Create Privileged Pod]
`
	art := func(rules string) map[string]string {
		return map[string]string{"k8s.yaml": rules, "tests/cases.yaml": cases,
			"tests/events/privileged.json":   readTrace(t, "create_nginx_pod_privileged.json"),
			"tests/events/unprivileged.json": readTrace(t, "create_nginx_pod_unprivileged.json")}
	}
	reg := testregistry.New(t, testregistry.Options{})
	p := newPusher(t, reg, "", "")
	d1 := p.push("rules/k8s:1", art(upstream))
	e := newEnv(t, envOpts{reg: reg, follow: func(o *Options) { o.Interval = time.Hour }})
	e.waitAccepted(d1)

	// Still valid, still "active", but it no longer catches the privileged pod.
	blind := upstream + "\n- macro: any_container_privileged\n  condition: (ka.verb = nothing)\n"
	d2 := p.push("rules/k8s:1", art(blind))
	for _, q := range []string{"?dry_run=true", ""} {
		r := postSync(t, e.url, q)
		if r.Result != ResultIgnored || r.Digest != d2 ||
			!strings.Contains(r.Reason, `artifact test "privileged pod is flagged" (tests/cases.yaml) failed: rule "Create Privileged Pod" did not fire on any of the 1 events`) {
			t.Fatalf("sync%s: %+v", q, r)
		}
		if r.Diff == nil || len(r.Diff.Macros.Changed) != 1 {
			t.Fatalf("sync%s diff %+v", q, r.Diff)
		}
	}
	if e.runningDigest() != d1 {
		t.Fatalf("running %s", e.runningDigest())
	}
	if li := e.a.Status().LastIgnored; li == nil || li.Digest != d2 || li.Diff == nil || len(li.Diff.Macros.Changed) != 1 {
		t.Fatalf("last ignored %+v", li)
	}
	// Fixed: accepted.
	d3 := p.push("rules/k8s:1", art(upstream+"\n- list: k8s_audit_privileged_images\n  items: [example.com/ok]\n  override: {items: append}\n"))
	if r := postSync(t, e.url, ""); r.Result != ResultAccepted || r.Digest != d3 {
		t.Fatalf("fixed: %+v", r)
	}
}
