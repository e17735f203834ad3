package follower

import (
	"fmt"
	"strings"
	"testing"

	"github.com/falco-k8s/falco-k8s/internal/testregistry"
)

// TestHostileCandidatesIgnored: an artifact holding the macro bomb (each macro using the previous
// one twice, 2^40 nodes expanded), or rule files over the validation budget, is ignored with
// its reason; the agent keeps serving the last accepted ruleset, and a restart serves it too.
func TestHostileCandidatesIgnored(t *testing.T) {
	var bomb strings.Builder
	bomb.WriteString("- macro: m0\n  condition: ka.verb=get\n")
	for i := 1; i <= 40; i++ {
		fmt.Fprintf(&bomb, "- macro: m%d\n  condition: (m%d or m%d)\n", i, i-1, i-1)
	}
	bomb.WriteString("- rule: bomb\n  desc: d\n  condition: m40\n  output: x\n  priority: WARNING\n  source: k8s_audit\n")
	huge := genRule("v9") + "- list: padding\n  items: [" + strings.TrimSuffix(strings.Repeat("a,", MaxCandidateRulesBytes/2+1), ",") + "]\n"

	reg := testregistry.New(t, testregistry.Options{})
	p := newPusher(t, reg, "", "")
	d1 := p.push("rules/k8s:1", map[string]string{"k8s.yaml": genRule("v1")})
	stateDir := t.TempDir()
	e := newEnv(t, envOpts{reg: reg, stateDir: stateDir})
	e.waitAccepted(d1)
	for _, tc := range []struct{ name, content, reason string }{
		{"macro bomb", bomb.String(), "macro 'm12': condition expands to more than 5000 nodes"},
		{"over the budget", huge, "over the 1048576-byte validation budget"},
	} {
		d := p.push("rules/k8s:1", map[string]string{"k8s.yaml": tc.content})
		waitFor(t, tc.name+" ignored", func() bool { li := e.a.Status().LastIgnored; return li != nil && li.Digest == d })
		if r := e.a.Status().LastIgnored.Reason; !strings.Contains(r, tc.reason) {
			t.Errorf("%s: reason %q, want it to contain %q", tc.name, r, tc.reason)
		}
		if g := e.fire(3); g["v1"] != 3 || len(g) != 1 {
			t.Fatalf("%s: alerts %v, want v1 only", tc.name, g)
		}
	}
	// A restart (with the hostile digest still the newest) comes up on v1.
	e.stop()
	f2, err := New(e.f.o)
	if err != nil {
		t.Fatal(err)
	}
	e.f = f2
	e.start(nil)
	e.waitAccepted(d1)
	if g := e.fire(3); g["v1"] != 3 {
		t.Fatalf("after restart: alerts %v", g)
	}
}
