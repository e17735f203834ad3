package journal

import (
	"net/http"
	"strconv"

	"github.com/falco-k8s/falco-k8s/alerts"
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
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		f, err := alerts.FilterFromQuery(r.URL.Query(), j.opts.Now(), DefaultLimit, MaxLimit)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		out, truncated, err := j.Query(r.Context(), f)
		if err != nil {
			http.Error(w, "query the alert journal: "+err.Error(), http.StatusInternalServerError)
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
		http.Error(w, "alert journal unavailable: "+reason, http.StatusServiceUnavailable)
	})
}
