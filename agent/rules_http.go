package agent

import (
	"encoding/json"
	"net/http"

	"github.com/falco-k8s/falco-k8s/agent/status"
	"github.com/falco-k8s/falco-k8s/engine"
)

// Rules lists the running ruleset's rules with the artifact each rule's file came from (the
// charm's show-rules action). withCondition adds each rule's condition as written.
func (a *Agent) Rules(withCondition bool) status.Rules {
	act := a.cur.Load()
	if act == nil {
		return status.Rules{Rules: []status.Rule{}}
	}
	files := make(map[string]status.File, len(act.meta.Files))
	for _, f := range act.meta.Files {
		files[f.Name] = f
	}
	out := status.Rules{Generation: act.gen, Rules: make([]status.Rule, 0, len(act.rs.Rules()))}
	for _, r := range act.rs.Rules() {
		sr := RuleEntry(r)
		if f, ok := files[r.File]; ok {
			sr.Ref, sr.Digest = f.Ref, f.Digest
		}
		if withCondition {
			sr.Condition = r.Condition
		}
		out.Rules = append(out.Rules, sr)
	}
	return out
}

// RuleEntry describes one loaded rule in the rule-list shape (status.Rule), without its
// artifact and condition, which only the agent knows or adds on request.
func RuleEntry(r *engine.Rule) status.Rule {
	sr := status.Rule{Name: r.Name, Priority: r.Priority.String(), Source: r.Source, Enabled: r.Enabled,
		Active: r.Active, Skipped: r.Skipped, Tags: r.Tags, File: r.File, Line: r.Line}
	if sr.Tags == nil {
		sr.Tags = []string{}
	}
	return sr
}

// serveRules is GET /rules[?condition=true].
func (a *Agent) serveRules(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		status.WriteError(w, http.StatusMethodNotAllowed, "method not allowed: use GET")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(a.Rules(r.URL.Query().Get("condition") == "true")) //nolint:errcheck // the client may be gone
}
