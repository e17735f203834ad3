package follower

import (
	"fmt"
	"os"

	"github.com/falco-k8s/falco-k8s/agent"
	"github.com/falco-k8s/falco-k8s/agent/status"
	"github.com/falco-k8s/falco-k8s/artifact/install"
	"github.com/falco-k8s/falco-k8s/engine/ruletest"
)

// readTests keeps the staged artifact's tests/ files (engine/ruletest's layout). They are
// bounded like every extracted file, by follow.max_artifact_size.
func readTests(st *install.Staged, p *pulledArtifact) error {
	for _, ef := range st.Files {
		if !ruletest.InDir(ef.Path) {
			continue
		}
		b, err := os.ReadFile(st.Path(ef))
		if err != nil {
			return fmt.Errorf("read staged %s: %w", ef.Path, err)
		}
		if p.tests == nil {
			p.tests = map[string][]byte{}
		}
		p.tests[ef.Path] = b
	}
	return nil
}

// withDiff carries the candidate's diff with its refusal, for /status and the Event.
type withDiff struct {
	error
	diff *status.RulesetDiff
}

func (e withDiff) Unwrap() error                    { return e.error }
func (e withDiff) RulesetDiff() *status.RulesetDiff { return e.diff }

// testCandidate replays each pulled artifact's test cases against the whole candidate ruleset;
// the first failure refuses the candidate, naming the case and the rule.
func (f *Follower) testCandidate(cand *agent.Candidate, pulled map[int]*pulledArtifact) error {
	for _, i := range sortedKeys(pulled) {
		if len(pulled[i].tests) == 0 {
			continue
		}
		if err := ruletest.Check(cand.Ruleset(), pulled[i].tests); err != nil {
			return unusableError{withDiff{fmt.Errorf("%s@%s: %w", f.names[i], pulled[i].digest, err), cand.Diff()}}
		}
	}
	return nil
}
