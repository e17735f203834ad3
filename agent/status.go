package agent

import (
	"encoding/json"
	"net/http"
	"sort"

	"github.com/falco-k8s/falco-k8s/agent/output"
	"github.com/falco-k8s/falco-k8s/agent/status"
)

// Status returns the document served on /status.
func (a *Agent) Status() status.Status {
	s := status.Status{Version: a.opts.Version, StartedAt: a.started, Ready: a.ready(), Draining: a.draining.Load(),
		Engine: a.engineInfo()}
	if act := a.cur.Load(); act != nil {
		c := status.Counts{Total: len(act.rs.Rules()), Active: len(act.rs.ActiveRules())}
		for _, r := range act.rs.Rules() {
			if r.Skipped {
				c.Skipped++
			}
		}
		s.Ruleset = status.Ruleset{Generation: act.gen, LoadedAt: act.loadedAt, Files: act.meta.Files, Rules: c,
			MinPriority: a.engineOpts.MinPriority.String(), RuleMatching: a.cfg.Rules.RuleMatching, Warnings: act.meta.Warnings}
	}
	a.mu.Lock()
	s.LastReload, s.LastAccepted, s.LastIgnored = a.lastReload, a.lastAccepted, a.lastIgnored
	for _, src := range a.sourceStatus {
		s.Sources = append(s.Sources, src)
	}
	a.mu.Unlock()
	sort.Slice(s.Sources, func(i, j int) bool {
		if s.Sources[i].Name != s.Sources[j].Name {
			return s.Sources[i].Name < s.Sources[j].Name
		}
		return s.Sources[i].Ref < s.Sources[j].Ref
	})
	snap := a.m.Snapshot()
	s.Events = status.Events{Received: snap.Received, Dropped: snap.Dropped, Evaluated: snap.Evaluated, Alerts: snap.Alerts, RejectedRequests: snap.Rejected}
	n, b := a.q.Len()
	capN, capB := a.q.Capacity()
	s.Queue = status.Queue{Events: n, Bytes: b, Capacity: capN, MaxBytes: capB, Throttled: snap.Throttled,
		MemoryReserved: a.budget.Used(), MemoryBudget: a.budget.Size()}
	s.Outputs = []status.Output{}
	for _, o := range a.outs.Outputs() {
		st := status.Output{Name: o.Name()}
		if c, ok := o.Output.(output.StatusCounter); ok {
			st.Sent, st.Failed, st.Dropped = c.Counts()
		}
		s.Outputs = append(s.Outputs, st)
	}
	if j := a.journal; j != nil {
		b, n := j.Size()
		s.Journal = &status.Journal{Available: true, Segments: n, Bytes: b, CorruptRecords: j.CorruptRecords(),
			Quarantined: j.Quarantined(), LastError: j.LastError()}
	} else if a.cfg.Journal.Enabled {
		s.Journal = &status.Journal{LastError: a.journalErr}
	}
	return s
}

func (a *Agent) serveStatus(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(a.Status()) //nolint:errcheck // the client may be gone
}
