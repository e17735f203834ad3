package follower

import (
	"github.com/falco-k8s/falco-k8s/agent"
	"github.com/falco-k8s/falco-k8s/agent/rulediff"
	"github.com/falco-k8s/falco-k8s/agent/status"
	"github.com/falco-k8s/falco-k8s/artifact/ref"
)

// guardCandidate is the follower's one call into the detection-regression guard: it attaches
// the candidate's diff to the results of the references that make it up, and refuses it
// (*rulediff.RegressionError) when it would switch off an active rule and not every one of
// those references is listed in follow.allow_rule_removal.
func (f *Follower) guardCandidate(cand *agent.Candidate, pulled map[int]*pulledArtifact, results map[int]*status.SyncResult) error {
	d := cand.Diff()
	allowed := true
	var refs []string
	for _, i := range sortedKeys(pulled) {
		results[i].Diff = d
		results[i].Signer = pulled[i].signer
		refs = append(refs, f.names[i])
		if !f.allowsRemoval(i) {
			allowed = false
		}
	}
	return rulediff.Guard(d, refs, allowed)
}

// allowsRemoval reports whether reference i is listed in follow.allow_rule_removal.
func (f *Follower) allowsRemoval(i int) bool {
	for _, s := range f.o.AllowRuleRemoval {
		if s == "*" {
			return true
		}
		if r, err := ref.Parse(s); err == nil && r.String() == f.names[i] {
			return true
		}
	}
	return false
}
