package charm

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/falco-k8s/falco-k8s/agent/output"
	"github.com/falco-k8s/falco-k8s/engine"
)

// TestLokiRuleLineFilter checks what can be checked of the LogQL alert rule without Loki or a
// LogQL parser (the only Go one, Loki's own, is AGPL): its stream selector names exactly the
// topology labels Pebble's log target attaches, and its line filter, which LogQL evaluates as
// RE2 (Go's regexp), matches the agent's real alert lines, text and JSON, at Critical and above
// and no others.
func TestLokiRuleLineFilter(t *testing.T) {
	topo := Topology{Model: "audit", ModelUUID: "8b5d8b64-0000-4000-8000-000000000000", App: "falco-k8s", Unit: "falco-k8s/0", Charm: CharmName}
	rules := LokiRules(topo)
	if len(rules.Groups) != 1 || len(rules.Groups[0].Rules) != 1 {
		t.Fatalf("rules %+v", rules)
	}
	expr := rules.Groups[0].Rules[0].Expr

	sel := regexp.MustCompile(`\{([^}]*)\}`).FindStringSubmatch(expr)
	if sel == nil {
		t.Fatalf("no stream selector in %s", expr)
	}
	labels := topo.Labels()
	for _, m := range regexp.MustCompile(`(\w+)="([^"]*)"`).FindAllStringSubmatch(sel[1], -1) {
		if labels[m[1]] != m[2] {
			t.Errorf("selector %s=%q, the log target sends %q", m[1], m[2], labels[m[1]])
		}
	}

	parts := strings.Split(expr, "`")
	if len(parts) != 3 || !strings.HasSuffix(strings.TrimSpace(parts[0]), "|~") {
		t.Fatalf("no |~ `...` line filter in %s", expr)
	}
	filter, err := regexp.Compile(parts[1])
	if err != nil {
		t.Fatalf("line filter is not RE2: %v", err)
	}
	now := time.Date(2026, 12, 3, 16, 0, 0, 0, time.UTC)
	for p := engine.PriorityEmergency; p <= engine.PriorityDebug; p++ {
		a := output.Internal(now, "Test rule", p, "Test rule: Critical words in the output do not count", "falco-k8s/0")
		want := p <= engine.PriorityCritical
		for _, line := range []string{a.Text, string(a.JSON)} {
			if got := filter.MatchString(line); got != want {
				t.Errorf("%s line %q: matched %v, want %v", p, line, got, want)
			}
		}
	}
}
