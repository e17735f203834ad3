package follower

import (
	"fmt"

	"github.com/falco-k8s/falco-k8s/agent"
)

// MaxCandidateRulesBytes bounds the followed rule files of one candidate, in total, before they
// are compiled. Compiling is where an artifact could cost the running agent memory: YAML parsing
// holds about 250 bytes per node, so a megabyte of one-character list items takes about 130 MB
// while it is validated. One MiB is 15 times Falco's stock k8s_audit rules (44 KB). The engine's
// own limits (engine.DefaultMaxConditionNodes and the others) bound what compiling within this
// budget can expand to, so no artifact can take the agent down: a candidate over either is
// ignored with the reason, and the last accepted ruleset keeps running.
const MaxCandidateRulesBytes = 1 << 20

// budgetError is a candidate refused before compilation for its size.
type budgetError struct {
	total int
	name  string
}

func (e *budgetError) Error() string {
	return fmt.Sprintf("rule files total %d bytes (reaching the limit at %s), over the %d-byte validation budget (follower.MaxCandidateRulesBytes): ship smaller rules files",
		e.total, e.name, MaxCandidateRulesBytes)
}

// checkBudget refuses a candidate whose rule files are too big to validate safely.
func checkBudget(files []agent.SourceFile) error {
	total := 0
	for _, f := range files {
		total += len(f.Content)
		if total > MaxCandidateRulesBytes {
			return &budgetError{total: sum(files), name: f.Name}
		}
	}
	return nil
}

func sum(files []agent.SourceFile) int {
	n := 0
	for _, f := range files {
		n += len(f.Content)
	}
	return n
}
