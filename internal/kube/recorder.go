package kube

import (
	"context"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// EventSink is what a Recorder posts through; *Client implements it.
type EventSink interface {
	RecordEvent(ctx context.Context, ns, podName, reason, message, eventType string) error
}

// Recorder records Events on one pod asynchronously: Record never blocks, so it can be called
// from the agent's ruleset code with locks held. Events are posted in order by one goroutine
// (Run); when more than the buffer is pending, new ones are dropped and logged at warn, as are
// failures. Events are a convenience for `kubectl describe`; /status stays the source of truth.
type Recorder struct {
	sink           EventSink
	ns, pod        string
	log            zerolog.Logger
	ch             chan pending
	mu             sync.Mutex
	closed         bool
	drainTimeout   time.Duration
	requestTimeout time.Duration
}

type pending struct{ reason, message, typ string }

// NewRecorder returns a Recorder for Pod ns/pod holding up to buffer pending events. Call Run.
func NewRecorder(sink EventSink, ns, pod string, buffer int, log zerolog.Logger) *Recorder {
	if buffer <= 0 {
		buffer = 1
	}
	return &Recorder{sink: sink, ns: ns, pod: pod, log: log, ch: make(chan pending, buffer),
		drainTimeout: 5 * time.Second, requestTimeout: 10 * time.Second}
}

// Record queues an event without waiting.
func (r *Recorder) Record(reason, message, eventType string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	select {
	case r.ch <- pending{reason, message, eventType}:
	default:
		r.log.Warn().Str("reason", reason).Str("pod", r.pod).Str("namespace", r.ns).
			Msg("kubernetes event dropped: too many events pending")
	}
}

// Run posts queued events until ctx is done, then posts what is still queued and returns. ctx
// only says "stop": a post in flight or queued before it is not cut short, so the event for a
// change just before shutdown is not lost, but everything ends within drainTimeout of ctx.
func (r *Recorder) Run(ctx context.Context) {
	hard, cancelHard := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelHard()
	stopAfter := context.AfterFunc(ctx, func() { time.AfterFunc(r.drainTimeout, cancelHard) })
	defer stopAfter()
	for {
		select {
		case p := <-r.ch:
			r.post(hard, p)
		case <-ctx.Done():
			r.mu.Lock()
			r.closed = true
			close(r.ch)
			r.mu.Unlock()
			for p := range r.ch {
				if hard.Err() != nil {
					r.log.Warn().Str("reason", p.reason).Msg("kubernetes event not recorded: shutting down")
					continue
				}
				r.post(hard, p)
			}
			return
		}
	}
}

func (r *Recorder) post(ctx context.Context, p pending) {
	ctx, cancel := context.WithTimeout(ctx, r.requestTimeout)
	defer cancel()
	if err := r.sink.RecordEvent(ctx, r.ns, r.pod, p.reason, p.message, p.typ); err != nil {
		r.log.Warn().Err(err).Str("reason", p.reason).Str("pod", r.pod).Str("namespace", r.ns).
			Msg("recording a kubernetes event failed")
		return
	}
	r.log.Debug().Str("reason", p.reason).Str("pod", r.pod).Str("namespace", r.ns).Msg("kubernetes event recorded")
}
