package condition

import (
	"strings"
	"testing"
)

// benchCondition returns the longest upstream condition, or a synthetic one
// of similar shape when the shared testdata is absent (synthetic true).
func benchCondition() (cond string, synthetic bool) {
	longest := ""
	if conds, _ := readCorpus(); len(conds) > 0 {
		for _, c := range conds {
			if len(c.cond) > len(longest) {
				longest = c.cond
			}
		}
		return longest, false
	}
	parts := make([]string, 0, 40)
	for i := 0; i < 40; i++ {
		parts = append(parts, `(ka.target.resource in (pods, deployments, "daemon sets") and not ka.user.name startswith "system:")`)
	}
	return strings.Join(parts, " or "), true
}

func BenchmarkParseLargeCondition(b *testing.B) {
	cond, synthetic := benchCondition()
	if synthetic {
		// In the printed figures, so a number for the synthetic condition is never read as
		// one for the upstream rules (after the loop: b.Loop clears reported metrics).
		defer b.ReportMetric(1, "synthetic-condition")
	}
	b.SetBytes(int64(len(cond)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(cond); err != nil {
			b.Fatal(err)
		}
	}
}
