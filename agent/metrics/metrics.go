// Package metrics holds the agent's Prometheus metrics (served on /metrics) and the counters
// that /status reports. Everything lives in one private registry so tests and several agents in
// one process do not collide on the global one.
package metrics

import (
	"maps"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

const ns = "falco_k8s"

// Drop reasons for events_dropped_total.
const (
	DropOversize     = "oversize"      // larger than webhook.max_event_size
	DropBadTimestamp = "bad_timestamp" // missing or unparsable stageTimestamp
)

// Metrics are the agent's counters. The zero value is not usable; call New.
type Metrics struct {
	Registry *prometheus.Registry

	received, evaluated, alerts atomic.Uint64
	throttled                   atomic.Uint64

	mu       sync.Mutex
	dropped  map[string]uint64
	rejected map[string]uint64

	eventsReceived  prometheus.Counter
	eventsDropped   *prometheus.CounterVec
	eventsEvaluated prometheus.Counter
	requests        *prometheus.CounterVec
	requestLatency  prometheus.Histogram
	batchLatency    prometheus.Histogram
	alertsTotal     *prometheus.CounterVec
	generation      prometheus.Gauge
	loadErrors      prometheus.Counter
	reloads         *prometheus.CounterVec
	rules           *prometheus.GaugeVec
	outputSent      *prometheus.CounterVec
	outputFailed    *prometheus.CounterVec
	outputDropped   *prometheus.CounterVec
	followChecks    *prometheus.CounterVec
	followLastCheck *prometheus.GaugeVec
	followLastOK    *prometheus.GaugeVec
}

// New registers every metric. queueDepth and queueBytes are sampled at scrape time.
func New(queueDepth, queueBytes func() float64) *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		dropped:  map[string]uint64{},
		rejected: map[string]uint64{},
		eventsReceived: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "events_received_total",
			Help: "Audit events accepted into the evaluation queue."}),
		eventsDropped: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "events_dropped_total",
			Help: "Audit events dropped before evaluation, by reason."}, []string{"reason"}),
		eventsEvaluated: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "events_evaluated_total",
			Help: "Audit events evaluated against the ruleset."}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "webhook_requests_total",
			Help: "Webhook requests by HTTP status code."}, []string{"code"}),
		requestLatency: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Name: "webhook_request_duration_seconds",
			Help:    "Time to read, check and queue a webhook request (until the answer is written).",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}}),
		batchLatency: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Name: "batch_latency_seconds",
			Help:    "Time from a batch being queued to its last event being evaluated and its alerts handed to the outputs.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}}),
		alertsTotal: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "alerts_total",
			Help: "Alerts raised, by rule and priority."}, []string{"rule", "priority"}),
		generation: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: "ruleset_generation",
			Help: "Generation of the running ruleset; increases on every swap, 0 before the first load."}),
		loadErrors: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "ruleset_load_errors_total",
			Help: "Candidate rulesets rejected because a file was invalid (the previous ruleset kept running)."}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "ruleset_reloads_total",
			Help: "Ruleset reload attempts by origin and result (accepted, ignored)."}, []string{"origin", "result"}),
		rules: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "ruleset_rules",
			Help: "Rules in the running ruleset, by state (total, active)."}, []string{"state"}),
		outputSent: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "output_sent_total",
			Help: "Alerts written or posted, by output."}, []string{"output"}),
		outputFailed: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "output_failures_total",
			Help: "Failed writes or posts (each failed attempt), by output."}, []string{"output"}),
		outputDropped: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "output_dropped_total",
			Help: "Alerts an output gave up on (buffer full or retries exhausted), by output."}, []string{"output"}),
		followChecks: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "follow_checks_total",
			Help: "Registry checks of followed references, by reference and result (ok, error)."}, []string{"ref", "result"}),
		followLastCheck: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "follow_last_check_timestamp_seconds",
			Help: "Unix time of the last registry check of a followed reference."}, []string{"ref"}),
		followLastOK: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "follow_last_success_timestamp_seconds",
			Help: "Unix time of the last successful registry check of a followed reference."}, []string{"ref"}),
	}
	m.Registry.MustRegister(m.eventsReceived, m.eventsDropped, m.eventsEvaluated, m.requests, m.requestLatency,
		m.batchLatency, m.alertsTotal, m.generation, m.loadErrors, m.reloads, m.rules, m.outputSent, m.outputFailed,
		m.outputDropped, m.followChecks, m.followLastCheck, m.followLastOK,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Name: "queue_events",
			Help: "Events accepted and not yet evaluated (in-flight evaluation included)."}, queueDepth),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Name: "queue_bytes",
			Help: "Request body bytes held by the evaluation queue."}, queueBytes),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: ns, Name: "queue_throttled_total",
			Help: "Webhook requests answered 429 because the queue or the request slots were full."},
			func() float64 { return float64(m.throttled.Load()) }),
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// Pre-create the common series so dashboards see zeros rather than absent metrics.
	m.eventsDropped.WithLabelValues(DropOversize)
	m.eventsDropped.WithLabelValues(DropBadTimestamp)
	return m
}

// FollowCheck records one registry check of a followed reference.
func (m *Metrics) FollowCheck(ref string, at time.Time, ok bool) {
	result := "ok"
	if !ok {
		result = "error"
	} else {
		m.followLastOK.WithLabelValues(ref).Set(float64(at.Unix()))
	}
	m.followChecks.WithLabelValues(ref, result).Inc()
	m.followLastCheck.WithLabelValues(ref).Set(float64(at.Unix()))
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{})
}

// Received counts events accepted into the queue.
func (m *Metrics) Received(n int) {
	m.received.Add(uint64(n))
	m.eventsReceived.Add(float64(n))
}

// Dropped counts one event dropped for reason.
func (m *Metrics) Dropped(reason string) {
	m.mu.Lock()
	m.dropped[reason]++
	m.mu.Unlock()
	m.eventsDropped.WithLabelValues(reason).Inc()
}

// Evaluated counts evaluated events.
func (m *Metrics) Evaluated(n int) {
	m.evaluated.Add(uint64(n))
	m.eventsEvaluated.Add(float64(n))
}

// Request records one webhook request's status and duration.
func (m *Metrics) Request(code int, d time.Duration) {
	c := strconv.Itoa(code)
	m.requests.WithLabelValues(c).Inc()
	m.requestLatency.Observe(d.Seconds())
	if code >= 300 {
		m.mu.Lock()
		m.rejected[c]++
		m.mu.Unlock()
	}
	if code == http.StatusTooManyRequests {
		m.throttled.Add(1)
	}
}

// BatchDone records a batch's queue-to-evaluated latency.
func (m *Metrics) BatchDone(d time.Duration) { m.batchLatency.Observe(d.Seconds()) }

// Alert counts one alert.
func (m *Metrics) Alert(rule, priority string) {
	m.alerts.Add(1)
	m.alertsTotal.WithLabelValues(rule, priority).Inc()
}

// Ruleset records a swap.
func (m *Metrics) Ruleset(generation uint64, total, active int) {
	m.generation.Set(float64(generation))
	m.rules.WithLabelValues("total").Set(float64(total))
	m.rules.WithLabelValues("active").Set(float64(active))
}

// Reload records a reload attempt.
func (m *Metrics) Reload(origin string, accepted bool) {
	res := "accepted"
	if !accepted {
		res = "ignored"
		m.loadErrors.Inc()
	}
	m.reloads.WithLabelValues(origin, res).Inc()
}

// OutputSent, OutputFailed and OutputDropped count per-output outcomes.
func (m *Metrics) OutputSent(name string)    { m.outputSent.WithLabelValues(name).Inc() }
func (m *Metrics) OutputFailed(name string)  { m.outputFailed.WithLabelValues(name).Inc() }
func (m *Metrics) OutputDropped(name string) { m.outputDropped.WithLabelValues(name).Inc() }

// Snapshot is the counters /status shows.
type Snapshot struct {
	Received, Evaluated, Alerts, Throttled uint64
	Dropped, Rejected                      map[string]uint64
}

// Snapshot copies the status counters.
func (m *Metrics) Snapshot() Snapshot {
	m.mu.Lock()
	defer m.mu.Unlock()
	return Snapshot{
		Received: m.received.Load(), Evaluated: m.evaluated.Load(), Alerts: m.alerts.Load(), Throttled: m.throttled.Load(),
		Dropped: maps.Clone(m.dropped), Rejected: maps.Clone(m.rejected),
	}
}
