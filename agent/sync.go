package agent

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

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
// syncTimeout bounds a POST /sync: every followed reference checked (and pulled) once.
const syncTimeout = 10 * time.Minute

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
	// A sync may wait for slow registries (and for a check already running) longer than the
	// server's write_timeout, which is sized for webhook batches; without more time the answer
	// to the sync-rules action would be cut off while the sync itself goes on.
	rc := http.NewResponseController(w)
	rc.SetWriteDeadline(time.Now().Add(syncTimeout)) //nolint:errcheck // best effort; unsupported writers keep the server's
	ctx, cancel := context.WithTimeout(r.Context(), syncTimeout)
	defer cancel()
	reply(http.StatusOK, status.SyncResponse{Results: s.Sync(ctx, dry)})
}
