package condition

import (
	"strings"
	"testing"
)

// benchCondition returns the longest upstream condition, or a synthetic one
// of similar shape when the shared testdata is absent.
func benchCondition() string {
	longest := ""
	if conds, _ := readCorpus(); len(conds) > 0 {
		for _, c := range conds {
			if len(c.cond) > len(longest) {
				longest = c.cond
			}
		}
		return longest
	}
	parts := make([]string, 0, 40)
	for i := 0; i < 40; i++ {
		parts = append(parts, `(ka.target.resource in (pods, deployments, "daemon sets") and not ka.user.name startswith "system:")`)
	}
	return strings.Join(parts, " or ")
}

func BenchmarkParseLargeCondition(b *testing.B) {
	cond := benchCondition()
	b.SetBytes(int64(len(cond)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(cond); err != nil {
			b.Fatal(err)
		}
	}
}
