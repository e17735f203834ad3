package agent

import (
	"io"
	"net/http"

	"github.com/falco-k8s/falco-k8s/agent/journal"
	"github.com/falco-k8s/falco-k8s/agent/output"
	"github.com/falco-k8s/falco-k8s/engine"

	"github.com/falco-k8s/falco-k8s/agent/status"
)

// journalOutput opens the alert journal as one more output, taking every alert in JSON form.
// A journal that cannot be opened (read-only or full volume, another agent holding it) is
// logged and left out: detection and the other outputs do not depend on it, and /alerts
// answers 503 with the reason.
func (a *Agent) journalOutput() []output.Filtered {
	jc := a.cfg.Journal
	if !jc.Enabled {
		a.journalErr = "disabled (journal.enabled: false)"
		return nil
	}
	j, err := journal.Open(journal.Options{
		Dir: a.cfg.JournalDir(), MaxBytes: int64(jc.MaxBytes), MaxAge: jc.MaxAge, BufferSize: jc.BufferSize,
		Logger: a.log, Registerer: a.m.Registry,
	})
	if err != nil {
		a.journalErr = err.Error()
		a.log.Error().Err(err).Msg("alert journal unavailable; alerts are still evaluated and sent to the other outputs, GET /alerts answers 503")
		return nil
	}
	a.journal = j
	return []output.Filtered{{Output: j, MinPriority: engine.PriorityDebug, JSON: true}}
}

// alertsHandler serves GET /alerts from the journal.
func (a *Agent) alertsHandler() http.Handler {
	if a.journal == nil {
		return journal.Unavailable(a.journalErr)
	}
	return a.journal.Handler()
}

// Journal returns the alert journal (nil when disabled or unavailable).
func (a *Agent) Journal() *journal.Journal { return a.journal }

// serveReload is POST /reload: the same rebuild as SIGHUP's, for callers that cannot signal the
// agent (the charm's tune-rules and reset-tuning actions run in another container). It answers
// 200, or 422 with the reason when the candidate was ignored (the running rules are unchanged).
func (a *Agent) serveReload(w http.ResponseWriter, r *http.Request) {
	if err := a.reload(r.Context(), TriggerReload); err != nil {
		status.WriteError(w, http.StatusUnprocessableEntity, err.Error())
		return
	}
	io.WriteString(w, "reloaded\n") //nolint:errcheck // client gone
}
