package journal

import (
	"net/http"
	"strconv"

	"github.com/falco-k8s/falco-k8s/alerts"

	"github.com/falco-k8s/falco-k8s/agent/status"
)

// Limits of GET /alerts: the default answer size, and the largest a client may ask for (the
// answer is built in memory).
const (
	DefaultLimit = 10000
	MaxLimit     = 100000
)

// Handler serves GET /alerts?since=1h|RFC3339&until=&namespace=&rule=&priority=&limit= as Falco
// JSON alerts, one per line (application/x-ndjson), oldest first. priority keeps alerts at least
// that severe. When more alerts match than the limit, the newest are returned and the
// X-Falco-K8s-Truncated header is set.
func (j *Journal) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			status.WriteError(w, http.StatusMethodNotAllowed, "method not allowed: use GET")
			return
		}
		f, err := alerts.FilterFromQuery(r.URL.Query(), j.opts.Now(), DefaultLimit, MaxLimit)
		if err != nil {
			status.WriteError(w, http.StatusBadRequest, err.Error())
			return
		}
		out, truncated, err := j.Query(r.Context(), f)
		if err != nil {
			status.WriteError(w, http.StatusInternalServerError, "query the alert journal: "+err.Error())
			return
		}
		w.Header().Set("Content-Type", "application/x-ndjson")
		w.Header().Set("X-Falco-K8s-Alerts", strconv.Itoa(len(out)))
		if truncated {
			w.Header().Set(alerts.TruncatedHeader, "true")
		}
		if r.Method == http.MethodHead {
			return
		}
		buf := make([]byte, 0, 64<<10)
		for _, a := range out {
			buf = append(append(buf, a...), '\n')
			if len(buf) >= 60<<10 {
				if _, err := w.Write(buf); err != nil {
					return // client gone
				}
				buf = buf[:0]
			}
		}
		w.Write(buf) //nolint:errcheck // client gone
	})
}

// Unavailable answers /alerts when the journal is disabled or could not be opened.
func Unavailable(reason string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		status.WriteError(w, http.StatusServiceUnavailable, "alert journal unavailable: "+reason)
	})
}
