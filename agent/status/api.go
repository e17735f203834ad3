package status

import (
	"encoding/json"
	"net/http"
)

// The agent's HTTP API, one table: the agent registers these paths (agent.observe) and
// agent/apiclient, the one client (charm hooks, actions, CLI), requests them.
const (
	PathHealthz = "/healthz"
	PathReadyz  = "/readyz"
	PathMetrics = "/metrics"
	PathStatus  = "/status"
	PathAlerts  = "/alerts"
	PathReload  = "/reload" // POST
	PathSync    = "/sync"   // POST
	PathRules   = "/rules"
	// PathFalcoAlerts + <token>: Falco's http_output posts its alerts there (engine: falco).
	PathFalcoAlerts = "/falco/alerts/" // POST
)

// ErrorBody is the API's one error body format, {"error": "what is wrong and what to do"},
// answered with a 4xx/5xx status by every endpoint (POST /sync's SyncResponse carries the same
// "error" key beside its results).
type ErrorBody struct {
	Error string `json:"error"`
}

// WriteError answers code with msg in the API's error body format.
func WriteError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(ErrorBody{Error: msg}) //nolint:errcheck // the client may be gone
}
