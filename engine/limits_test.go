package engine

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
)

// MacroBomb returns the rules file of the hostile-day report: macro m<i> uses m<i-1> twice, so
// m<depth> expands to 2^depth checks (1.6 KB for depth 40).
func macroBomb(depth int) string {
	var b strings.Builder
	b.WriteString("- macro: m0\n  condition: ka.verb=get\n")
	for i := 1; i <= depth; i++ {
		fmt.Fprintf(&b, "- macro: m%d\n  condition: (m%d or m%d)\n", i, i-1, i-1)
	}
	fmt.Fprintf(&b, "- rule: bomb\n  desc: d\n  condition: m%d\n  output: x\n  priority: WARNING\n  source: k8s_audit\n", depth)
	return b.String()
}

func TestLoadRefusesExpansionBombs(t *testing.T) {
	// A rule whose own condition uses a 4,095-node macro twice: every macro is within the limit.
	ruleBomb := macroBomb(11) + "- rule: twice\n  desc: d\n  condition: m11 and m11\n  output: x\n  priority: WARNING\n  source: k8s_audit\n"
	// 40 rules of 4,095 nodes each: every condition fits, the ruleset does not.
	var many strings.Builder
	many.WriteString(macroBomb(11))
	for i := range 40 {
		fmt.Fprintf(&many, "- rule: r%d\n  desc: d\n  condition: m11\n  output: x\n  priority: WARNING\n  source: k8s_audit\n", i)
	}
	// A list of 20 KB named 100 times in one condition.
	items := strings.TrimSuffix(strings.Repeat("aaaaaaaaaaaaaaaaaaa,", 1000), ",")
	listBomb := "- list: big\n  items: [" + items + "]\n- rule: listy\n  desc: d\n  condition: ka.verb in (" +
		strings.TrimSuffix(strings.Repeat("big,", 100), ",") + ")\n  output: x\n  priority: WARNING\n  source: k8s_audit\n"
	// YAML anchors: a<i> is a list of two a<i-1>.
	var alias strings.Builder
	alias.WriteString("- list: l\n  items: &a0 [x, x]\n- list: l2\n  items: [")
	prev := "[x, x]"
	for i := 1; i <= 30; i++ {
		prev = fmt.Sprintf("&a%d [*a%d, *a%d]", i, i-1, i-1)
		if i < 30 {
			prev += ", "
		}
		alias.WriteString(prev)
	}
	alias.WriteString("]\n")

	for _, tc := range []struct {
		name, content     string
		code              Code
		kind, item, inMsg string
	}{
		{"macro bomb", macroBomb(40), ErrCompileCondition, ItemMacro, "m12", "condition expands to more than 5000 nodes once macros are substituted (at macro 'm11')"},
		{"rule uses a big macro twice", ruleBomb, ErrCompileCondition, ItemRule, "twice", "more than 5000 nodes"},
		{"ruleset total", many.String(), ErrCompileCondition, ItemRule, "r23", "the rules' conditions expand to more than 100000 nodes in all"},
		{"list named many times", listBomb, ErrCompileCondition, ItemRule, "listy", "condition is longer than 1048576 bytes once lists are substituted"},
		{"alias bomb", alias.String(), ErrYAMLParse, ItemRulesContent, "", "more than 1000000 YAML nodes once its aliases are expanded"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, results, err := Load([]File{{Name: "bomb.yaml", Content: []byte(tc.content)}}, DefaultOptions())
			var le *LoadError
			if !errors.As(err, &le) {
				t.Fatalf("Load: %v, want a *LoadError", err)
			}
			if len(results) != 1 || len(results[0].Errors) != 1 {
				t.Fatalf("results: %+v", results)
			}
			d := results[0].Errors[0]
			kind, name := d.Item()
			if d.Code != tc.code || kind != tc.kind || name != tc.item || !strings.Contains(d.Message, tc.inMsg) {
				t.Errorf("got %s %s %q: %s\nwant %s %s %q: ...%s...", d.Code, kind, name, d.Message, tc.code, tc.kind, tc.item, tc.inMsg)
			}
			if !strings.Contains(d.String(), "bomb.yaml:") || Hint(d) == "" {
				t.Errorf("diagnostic %q (hint %q) does not locate the item or say what to do", d.String(), Hint(d))
			}
		})
	}
}

// TestStockRulesWithinLimits: the limits leave real rulesets alone, with a wide margin.
func TestStockRulesWithinLimits(t *testing.T) {
	for _, f := range []string{"../rules/k8s_audit_default.yaml", "../../shared/testdata/upstream/k8s_audit_rules.latest.yaml", "../../shared/testdata/upstream/falco_rules.latest.yaml"} {
		b, err := os.ReadFile(f)
		if err != nil {
			if os.Getenv("CI") == "true" || !strings.Contains(f, "shared") {
				t.Fatal(err)
			}
			t.Skip(err)
		}
		// A twentieth of each limit still loads.
		opts := Options{MinPriority: PriorityDebug, MaxConditionNodes: DefaultMaxConditionNodes / 20, MaxRulesetNodes: DefaultMaxRulesetNodes / 20}
		if _, _, err := Load([]File{{Name: f, Content: b}}, opts); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}

// TestMacroBombMemoryBounded measures what refusing the bomb allocates: before the limit,
// loading it allocated until the process ran out of memory.
func TestMacroBombMemoryBounded(t *testing.T) {
	files := []File{{Name: "bomb.yaml", Content: []byte(macroBomb(40))}}
	allocs := testing.AllocsPerRun(3, func() {
		if _, _, err := Load(files, DefaultOptions()); err == nil {
			t.Fatal("the bomb loaded")
		}
	})
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	Load(files, DefaultOptions()) //nolint:errcheck // refused; measured only
	runtime.ReadMemStats(&after)
	bytes := after.TotalAlloc - before.TotalAlloc
	t.Logf("refusing the 40-level macro bomb: %.0f allocations, %d KiB allocated", allocs, bytes>>10)
	if allocs > 50_000 || bytes > 16<<20 {
		t.Errorf("refusing the bomb took %.0f allocations and %d bytes: want under 50,000 and 16 MiB", allocs, bytes)
	}
}

// BenchmarkRefuseMacroBomb reports the time to refuse the bomb (well under a millisecond).
func BenchmarkRefuseMacroBomb(b *testing.B) {
	files := []File{{Name: "bomb.yaml", Content: []byte(macroBomb(40))}}
	b.ReportAllocs()
	for b.Loop() {
		Load(files, DefaultOptions()) //nolint:errcheck // refused
	}
}

// resolveListFalco is Falco's algorithm as the engine had it before the single-pass rewrite: the
// whole string is rebuilt at every occurrence. FuzzResolveList checks both agree.
func resolveListFalco(cnd, name string, items []string) (string, bool) {
	if name == "" {
		return cnd, false
	}
	used := false
	start := strings.Index(cnd, name)
	for start >= 0 {
		end := start + len(name)
		if (start == 0 || strings.IndexByte(listDelims, cnd[start-1]) >= 0) &&
			(end >= len(cnd) || strings.IndexByte(listDelims, cnd[end]) >= 0) {
			for start > 0 && strings.IndexByte(listBlanks, cnd[start-1]) >= 0 {
				start--
			}
			for end < len(cnd) && strings.IndexByte(listBlanks, cnd[end]) >= 0 {
				end++
			}
			var sub strings.Builder
			for _, it := range items {
				if it == "" {
					continue // an empty item substitutes nothing (Falco 0.44.1)
				}
				if sub.Len() > 0 {
					sub.WriteString(", ")
				}
				sub.WriteString(quoteItem(it))
			}
			if sub.Len() == 0 {
				if start > 0 && cnd[start-1] == ',' {
					start--
				} else if end < len(cnd) && cnd[end] == ',' {
					end++
				}
			}
			var b strings.Builder
			if start > 0 {
				b.WriteString(cnd[:start])
				b.WriteByte(' ')
			}
			b.WriteString(sub.String())
			b.WriteByte(' ')
			b.WriteString(cnd[end:])
			cnd = b.String()
			start += sub.Len() + 1
			used = true
		}
		next := strings.Index(cnd[min(start+1, len(cnd)):], name)
		if next < 0 {
			break
		}
		start = min(start+1, len(cnd)) + next
	}
	return cnd, used
}

func FuzzResolveList(f *testing.F) {
	for _, s := range []struct{ cnd, name, items string }{
		{"ka.verb in (l, l2)", "l", "a,b"},
		{"l", "l", ""},
		{"x in (a, l ,b)", "l", ""},
		{"x in (l,l,l)", "l", ""},
		{"  l  l\tl", "l", "q"},
		{"ll l=l(l)", "l", "a b,c"},
		{"l,l", "l", ""},
		{"(l)l", "l", "x"},
	} {
		f.Add(s.cnd, s.name, s.items)
	}
	f.Fuzz(func(t *testing.T, cnd, name, items string) {
		var its []string
		if items != "" {
			its = strings.Split(items, ",")
		}
		want, wantUsed := resolveListFalco(cnd, name, its)
		got, used, err := resolveList(cnd, name, its, 1<<30)
		if err != nil || got != want || used != wantUsed {
			t.Fatalf("resolveList(%q, %q, %q) = %q, %v, %v; Falco's algorithm gives %q, %v", cnd, name, its, got, used, err, want, wantUsed)
		}
	})
}
