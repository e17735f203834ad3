// Package output delivers alerts: to stdout, appended to a file (reopened for log rotation), and
// POSTed as Falco's JSON alert to an HTTP(S) endpoint such as falcosidekick. Outputs never make
// evaluation wait on the network: the HTTP output has a bounded buffer and drops (and counts)
// what does not fit, retrying failed posts in the background.
package output

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/falco-k8s/falco-k8s/agent/metrics"
	"github.com/falco-k8s/falco-k8s/engine"
	"github.com/falco-k8s/falco-k8s/internal/logging"
)

// Alert is one alert rendered once for every output.
type Alert struct {
	Rule     string
	Priority engine.Priority
	// Text is Falco's text line ("<time>: <Priority> <output>").
	Text string
	// JSON is Falco's JSON alert (one line, no newline); nil when no output asked for it.
	JSON []byte
}

// FromEngine wraps an engine alert, rendering JSON only when needed.
func FromEngine(a *engine.Alert, withJSON bool) *Alert {
	out := &Alert{Rule: a.Rule, Priority: a.Priority, Text: a.Output}
	if withJSON {
		out.JSON = a.JSON()
	}
	return out
}

// Internal builds one of Falco's internal alerts (source "internal", no tags), e.g. rule
// "Falco internal: hot restart failure" at Critical with message "Falco internal: hot restart
// failure: <reason>".
func Internal(now time.Time, rule string, p engine.Priority, message, hostname string) *Alert {
	text := now.Local().Format("15:04:05.000000000") + ": " + p.String() + " " + message
	// engine.AlertJSON: Falco's shape, keys in nlohmann::json order; no tags.
	doc := engine.AlertJSON{Hostname: hostname, Output: text, OutputFields: map[string]any{"evt.time": now.UnixNano()},
		Priority: p.String(), Rule: rule, Source: "internal", Time: now.UTC().Format(engine.AlertTimeLayout)}
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(doc) // cannot fail: plain strings and numbers
	return &Alert{Rule: rule, Priority: p, Text: text, JSON: []byte(strings.TrimSuffix(b.String(), "\n"))}
}

// Output is one alert destination.
type Output interface {
	// Name labels the output in metrics and /status ("stdout", "file", "http").
	Name() string
	// Send delivers or queues a; it must not block for long: it runs on the evaluation path.
	Send(a *Alert)
	// Close flushes what is buffered, giving up when ctx ends.
	Close(ctx context.Context) error
}

// Filtered applies a minimum priority to an output.
type Filtered struct {
	Output
	MinPriority engine.Priority
	// JSON tells the fan-out to render the JSON alert for this output.
	JSON bool
}

// Set fans alerts out to outputs.
type Set struct {
	outs     []Filtered
	needJSON bool
}

// NewSet returns a fan-out.
func NewSet(outs ...Filtered) *Set {
	s := &Set{outs: outs}
	for _, o := range outs {
		s.needJSON = s.needJSON || o.JSON
	}
	return s
}

// NeedJSON reports whether any output takes the JSON form.
func (s *Set) NeedJSON() bool { return s.needJSON }

// Outputs returns the outputs.
func (s *Set) Outputs() []Filtered { return s.outs }

// Send hands a to every output whose minimum priority it meets.
func (s *Set) Send(a *Alert) {
	for _, o := range s.outs {
		if a.Priority <= o.MinPriority {
			o.Send(a)
		}
	}
}

// Close closes every output, returning all errors.
func (s *Set) Close(ctx context.Context) error {
	var errs []error
	for _, o := range s.outs {
		errs = append(errs, o.Close(ctx))
	}
	return errors.Join(errs...)
}

// Counters are an output's totals for /status.
type Counters struct {
	mu                    sync.Mutex
	sent, failed, dropped uint64
}

func (c *Counters) add(sent, failed, dropped uint64) {
	c.mu.Lock()
	c.sent += sent
	c.failed += failed
	c.dropped += dropped
	c.mu.Unlock()
}

// Load returns sent, failed and dropped.
func (c *Counters) Load() (sent, failed, dropped uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sent, c.failed, c.dropped
}

// StatusCounter is implemented by outputs that keep Counters.
type StatusCounter interface {
	Counts() (sent, failed, dropped uint64)
}

// errLog logs an output's failures at most once per interval, with the number suppressed, so a
// dead endpoint does not flood the log at the alert rate.
type errLog struct {
	log      zerolog.Logger
	throttle logging.Throttle
}

func (l *errLog) error(err error, msg string) {
	if n, ok := l.throttle.Allow(time.Now()); ok {
		l.log.Error().Err(err).Int("suppressed", n).Msg(msg)
	}
}

// metricsOrNop lets tests pass nil metrics.
func metricsOrNop(m *metrics.Metrics) *metrics.Metrics {
	if m == nil {
		return metrics.New(func() float64 { return 0 }, func() float64 { return 0 })
	}
	return m
}
