package agent

import (
	"fmt"
	"strings"
	"testing"
)

// BenchmarkFalcoPromotion measures one promotion with engine: falco and the built-in rules: the
// agent's engine compiles the whole set, the real Falco validates it (-V), the files are switched
// into Falco's rules directory and Falco's reload check (--dry-run) runs. Each iteration changes
// one followed rule's output, so every switch is real.
func BenchmarkFalcoPromotion(b *testing.B) {
	fs := newFalcoSetup(b, []string{"k8saudit", "json"}, "")
	src := &fakeSource{sink: make(chan RuleSink, 1)}
	ta, _ := startFalcoAgent(b, fs, []string{"rules.builtin=true", "rules.files=[]"}, Options{Sources: []RuleSource{src}})
	<-src.sink
	b.ResetTimer()
	for i := range b.N {
		rule := strings.Replace(ruleFile, "cm created", fmt.Sprintf("cm created %d", i), 1)
		files := []SourceFile{{Name: "macros.yaml", Content: []byte(macroFile), Ref: "reg/x:1", Digest: "sha256:aa"},
			{Name: "rules.yaml", Content: []byte(rule), Ref: "reg/x:1", Digest: "sha256:aa"}}
		if _, err := ta.Offer("follower", files); err != nil {
			b.Fatal(err)
		}
	}
}
