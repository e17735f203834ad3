package agent

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/falco-k8s/falco-k8s/agent/status"
)

// Syncer is a rule source that can check its references on demand (the OCI follower). POST
// /sync uses the first source that implements it.
type Syncer interface {
	// Sync checks every reference now and applies a valid change; with dryRun it only
	// validates.
	Sync(ctx context.Context, dryRun bool) []status.SyncResult
}

// serveSync handles POST /sync[?dry_run=true] for the charm's sync-rules action.
func (a *Agent) serveSync(w http.ResponseWriter, r *http.Request) {
	reply := func(code int, body status.SyncResponse) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(body) //nolint:errcheck // the client may be gone
	}
	var s Syncer
	for _, src := range a.sources {
		if x, ok := src.(Syncer); ok {
			s = x
			break
		}
	}
	if s == nil {
		reply(http.StatusNotFound, status.SyncResponse{Results: []status.SyncResult{},
			Error: "no rules follower is configured: set follow.refs and follow.rule_files"})
		return
	}
	dry := false
	if v := r.URL.Query().Get("dry_run"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			reply(http.StatusBadRequest, status.SyncResponse{Results: []status.SyncResult{}, Error: "dry_run must be true or false"})
			return
		}
		dry = b
	}
	if a.draining.Load() {
		reply(http.StatusServiceUnavailable, status.SyncResponse{Results: []status.SyncResult{}, Error: "the agent is shutting down"})
		return
	}
	a.log.Info().Bool("dry_run", dry).Msg("sync requested")
	reply(http.StatusOK, status.SyncResponse{Results: s.Sync(r.Context(), dry)})
}
