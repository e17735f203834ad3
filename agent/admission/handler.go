package admission

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	admissionv1 "k8s.io/api/admission/v1"

	"github.com/falco-k8s/falco-k8s/engine"
	"github.com/falco-k8s/falco-k8s/engine/k8saudit"
)

// Outcomes of a request, the decision label of the metrics and the admission.decision output
// field of alerts.
const (
	OutcomeAllowed = "allowed"
	OutcomeWarned  = "warned"
	OutcomeDenied  = "denied"
	OutcomeError   = "error"
)

// Config tunes a Handler.
type Config struct {
	Mode          Mode
	Select        Selector
	FailurePolicy FailurePolicy
	// MaxBodySize bounds an AdmissionReview; larger ones get 413 (then kube-apiserver applies
	// the webhook's failurePolicy).
	MaxBodySize int64
	// MaxInflight bounds the reviews read and evaluated at once (and so their memory); more
	// wait up to Wait for a slot (unread, holding no body), then get 429 so the answer is never
	// later than the webhook's timeout.
	MaxInflight int
	Wait        time.Duration
	// Hostname goes into alerts.
	Hostname string
}

// Deps are the handler's links to the agent.
type Deps struct {
	// Ruleset returns the running ruleset (the audit path's, tuning exceptions included), nil
	// before the first one is loaded.
	Ruleset func() *engine.Ruleset
	// Send delivers a decision alert to the outputs.
	Send func(*engine.Alert)
	// Registerer receives the admission metrics; nil registers nothing.
	Registerer prometheus.Registerer
	Log        zerolog.Logger
}

// Handler serves POST admission.k8s.io/v1 AdmissionReview requests. It evaluates in the request's
// goroutine, never through the audit queue.
type Handler struct {
	cfg  Config
	deps Deps
	sem  chan struct{}
	pool sync.Pool // *evaluator
	sel  atomic.Pointer[selection]

	requests  *prometheus.CounterVec
	decisions *prometheus.CounterVec
	latency   prometheus.Histogram
}

// evaluator is one goroutine's evaluation state, pooled: the engine's evaluator and a decoder
// whose parser memory is reused from one review to the next.
type evaluator struct {
	ev  *engine.Evaluator
	dec k8saudit.Decoder
}

// selection is the enforced rules of one ruleset.
type selection struct {
	rs       *engine.Ruleset
	enforced map[*engine.Rule]bool
}

// New returns a handler.
func New(cfg Config, deps Deps) *Handler {
	if cfg.MaxInflight <= 0 {
		cfg.MaxInflight = 1
	}
	if cfg.Mode == "" {
		cfg.Mode = ModeOff
	}
	if cfg.FailurePolicy == "" {
		cfg.FailurePolicy = Ignore
	}
	h := &Handler{cfg: cfg, deps: deps, sem: make(chan struct{}, cfg.MaxInflight),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "falco_k8s", Name: "admission_requests_total",
			Help: "AdmissionReview requests answered, by outcome (allowed, warned, denied, error) and dry run."}, []string{"decision", "dry_run"}),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "falco_k8s", Name: "admission_rule_decisions_total",
			Help: "Enforced rule matches at admission, by rule and outcome (warned, denied)."}, []string{"rule", "decision"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "falco_k8s", Name: "admission_duration_seconds",
			Help:    "Time to read, evaluate and answer an AdmissionReview.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1}}),
	}
	for _, d := range []string{OutcomeAllowed, OutcomeWarned, OutcomeDenied, OutcomeError} {
		h.requests.WithLabelValues(d, "false")
	}
	if deps.Registerer != nil {
		deps.Registerer.MustRegister(h.requests, h.decisions, h.latency)
	}
	return h
}

// Decision is the verdict on one request.
type Decision struct {
	Outcome  string
	Response Response
	// Alerts are the enforced rules' alerts (already sent).
	Alerts []*engine.Alert
}

// ServeHTTP implements http.Handler. Authentication is the caller's (the agent wraps it in the
// webhook's guard).
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	defer func() { h.latency.Observe(time.Since(start).Seconds()) }()
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		h.plain(w, http.StatusMethodNotAllowed, "method not allowed: POST an admission.k8s.io/v1 AdmissionReview")
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			h.plain(w, http.StatusUnsupportedMediaType, fmt.Sprintf("unsupported Content-Type %q: want application/json", ct))
			return
		}
	}
	if !h.acquire(waitBudget(h.cfg.Wait, r)) {
		// Waiting longer would make the answer late; kube-apiserver applies the failurePolicy.
		h.requests.WithLabelValues(OutcomeError, "false").Inc()
		h.plain(w, http.StatusTooManyRequests, "too many AdmissionReviews in flight (admission.max_inflight, admission.wait)")
		return
	}
	defer func() { <-h.sem }()
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.cfg.MaxBodySize))
	if err != nil {
		h.requests.WithLabelValues(OutcomeError, "false").Inc()
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			h.plain(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("AdmissionReview larger than admission.max_body_size (%d bytes)", h.cfg.MaxBodySize))
			return
		}
		h.plain(w, http.StatusBadRequest, "reading the AdmissionReview: "+err.Error())
		return
	}
	req, err := ParseReview(body)
	if err != nil {
		// Without a request uid there is no valid answer: a clear error, and kube-apiserver
		// applies the webhook's failurePolicy (Ignore: allowed, Fail: refused).
		h.requests.WithLabelValues(OutcomeError, "false").Inc()
		h.deps.Log.Warn().Err(err).Msg("admission: unparseable AdmissionReview")
		h.plain(w, http.StatusBadRequest, err.Error())
		return
	}
	d := h.Decide(req, start)
	w.Header().Set("Content-Type", "application/json")
	w.Write(MarshalReview(d.Response)) //nolint:errcheck // the client may be gone
}

// waitBudget is how long a review may wait for a slot: cfg.Wait, and at most half of the
// ?timeout= kube-apiserver puts on the URL, so the answer still arrives before it gives up.
func waitBudget(wait time.Duration, r *http.Request) time.Duration {
	if t, err := time.ParseDuration(r.URL.Query().Get("timeout")); err == nil && t > 0 && t/2 < wait {
		return t / 2
	}
	return wait
}

// acquire takes an evaluation slot, waiting up to wait.
func (h *Handler) acquire(wait time.Duration) bool {
	select {
	case h.sem <- struct{}{}:
		return true
	default:
	}
	if wait <= 0 {
		return false
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case h.sem <- struct{}{}:
		return true
	case <-t.C:
		return false
	}
}

func (h *Handler) plain(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(code)
	io.WriteString(w, msg+"\n") //nolint:errcheck // the client may be gone
}

// Decide evaluates one request and returns the answer; decision alerts are sent and metrics
// recorded.
func (h *Handler) Decide(req *admissionv1.AdmissionRequest, now time.Time) Decision {
	dry := req.DryRun != nil && *req.DryRun
	dryLabel := strconv.FormatBool(dry)
	resp := Response{UID: string(req.UID), Allowed: true}
	if h.cfg.Mode == ModeOff {
		h.requests.WithLabelValues(OutcomeAllowed, dryLabel).Inc()
		return Decision{Outcome: OutcomeAllowed, Response: resp}
	}
	alerts, err := h.evaluate(req, now)
	if err != nil {
		h.requests.WithLabelValues(OutcomeError, dryLabel).Inc()
		h.deps.Log.Warn().Err(err).Str("uid", string(req.UID)).Str("policy", string(h.cfg.FailurePolicy)).Msg("admission: request not evaluated")
		msg := "falco-k8s could not evaluate this request: " + err.Error()
		if h.cfg.FailurePolicy == Fail {
			resp.Allowed, resp.Code, resp.Message = false, http.StatusBadRequest, msg
		} else {
			resp.Warnings = []string{sanitize(msg)}
		}
		return Decision{Outcome: OutcomeError, Response: resp}
	}
	if len(alerts) == 0 {
		h.requests.WithLabelValues(OutcomeAllowed, dryLabel).Inc()
		return Decision{Outcome: OutcomeAllowed, Response: resp}
	}
	outcome := OutcomeWarned
	if h.cfg.Mode == ModeDeny {
		outcome = OutcomeDenied
	}
	parts := make([]string, len(alerts))
	for i, al := range alerts {
		parts[i] = fmt.Sprintf("rule %q (%s): %s", al.Rule, al.Priority, al.Message)
	}
	if outcome == OutcomeDenied {
		resp.Allowed, resp.Code = false, http.StatusForbidden
		resp.Message = truncate("denied by falco-k8s: "+strings.Join(parts, "; "), maxMessage)
	} else {
		for _, p := range parts {
			resp.Warnings = append(resp.Warnings, sanitize(truncate("falco-k8s: "+p, maxWarning)))
		}
	}
	for _, al := range alerts {
		recordDecision(al, outcome, dry)
		h.decisions.WithLabelValues(al.Rule, outcome).Inc()
		if h.deps.Send != nil {
			h.deps.Send(al)
		}
	}
	h.requests.WithLabelValues(outcome, dryLabel).Inc()
	return Decision{Outcome: outcome, Response: resp, Alerts: alerts}
}

// Limits keep answers within what kube-apiserver passes on comfortably.
const (
	maxMessage = 4096
	maxWarning = 1024
)

// recordDecision marks the alert as an admission decision in its output_fields (kept sorted,
// as Falco's JSON prints them) and its text line.
func recordDecision(al *engine.Alert, outcome string, dry bool) {
	al.Fields = append(al.Fields, engine.AlertField{Key: "admission.decision", Value: outcome},
		engine.AlertField{Key: "admission.dry_run", Value: dry})
	sort.Slice(al.Fields, func(i, j int) bool { return al.Fields[i].Key < al.Fields[j].Key })
	al.Output += " admission=" + outcome
	if dry {
		al.Output += " dry_run=true"
	}
}

// evaluate returns the alerts of the enforced, decidable rules matching the request's audit
// events (each rule once).
func (h *Handler) evaluate(req *admissionv1.AdmissionRequest, now time.Time) ([]*engine.Alert, error) {
	var rs *engine.Ruleset
	if h.deps.Ruleset != nil {
		rs = h.deps.Ruleset()
	}
	if rs == nil {
		return nil, errors.New("no ruleset loaded yet")
	}
	events, err := Events(req, now)
	if err != nil {
		return nil, err
	}
	sel := h.selection(rs)
	if len(sel.enforced) == 0 {
		return nil, nil
	}
	st, _ := h.pool.Get().(*evaluator)
	if st == nil {
		st = &evaluator{}
	}
	if st.ev == nil || st.ev.Ruleset() != rs {
		st.ev = rs.NewEvaluator()
	}
	defer h.pool.Put(st)
	ev := st.ev
	var alerts []*engine.Alert
	err = match(ev, &st.dec, events, func(_ string, r *engine.Rule) {
		if !sel.enforced[r] {
			return
		}
		for _, a := range alerts {
			if a.Rule == r.Name {
				return
			}
		}
		alerts = append(alerts, ev.Alert(r, h.cfg.Hostname))
	})
	return alerts, err
}

// Match evaluates every active rule of ev's ruleset against each event and calls fn for every
// match, with the event's stage. It is the admission path's evaluation, shared with the tests
// that compare it with the audit path.
func Match(ev *engine.Evaluator, events []Event, fn func(stage string, r *engine.Rule)) error {
	return match(ev, &k8saudit.Decoder{}, events, fn)
}

func match(ev *engine.Evaluator, dec *k8saudit.Decoder, events []Event, fn func(stage string, r *engine.Rule)) error {
	for _, e := range events {
		n, err := dec.Decode(e.JSON, func(ae *k8saudit.Event) error {
			ev.Match(ae, true, func(r *engine.Rule) { fn(e.Stage, r) })
			return nil
		})
		if err == nil && n != 1 {
			err = errors.New("the audit event was dropped")
		}
		if err != nil {
			return fmt.Errorf("%w: %v", ErrInvalidReview, err)
		}
	}
	return nil
}

// selection returns the enforced rules of rs, computed once per ruleset.
func (h *Handler) selection(rs *engine.Ruleset) *selection {
	if s := h.sel.Load(); s != nil && s.rs == rs {
		return s
	}
	s := &selection{rs: rs, enforced: map[*engine.Rule]bool{}}
	var skipped []string
	for _, r := range rs.ActiveRules() {
		if !h.cfg.Select.Selects(r) {
			continue
		}
		if _, nd := NotDecidable[r.Name]; nd {
			skipped = append(skipped, r.Name)
			continue
		}
		s.enforced[r] = true
	}
	var unknown []string
	for _, n := range h.cfg.Select.Rules {
		if r := rs.Rule(n); r == nil || !r.Active {
			unknown = append(unknown, n)
		}
	}
	if len(skipped) > 0 {
		h.deps.Log.Warn().Strs("rules", skipped).Msg("admission: selected rules cannot be decided at admission; they only alert from the audit log")
	}
	if len(unknown) > 0 {
		h.deps.Log.Warn().Strs("rules", unknown).Msg("admission: selected rules are not active in the running ruleset")
	}
	h.deps.Log.Info().Int("enforced", len(s.enforced)).Str("mode", string(h.cfg.Mode)).Msg("admission: enforced rules selected for the running ruleset")
	h.sel.Store(s)
	return s
}

// sanitize makes a warning acceptable to kube-apiserver, which drops warnings holding control
// characters.
func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n-3], "") + "..."
}
