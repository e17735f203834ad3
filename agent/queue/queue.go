// Package queue is the bounded queue between the webhook and the evaluation workers. It holds
// whole request bodies (batches), bounded by both event count and bytes, and admits a batch
// entirely or not at all: the webhook answers 200 only for an admitted batch and 429 otherwise,
// so an event is never acknowledged and then dropped.
package queue

import (
	"errors"
	"sync"
	"time"
)

// ErrFull means the batch does not fit now; the client should retry later.
var ErrFull = errors.New("evaluation queue full")

// ErrClosed means the agent is shutting down and no longer accepts batches.
var ErrClosed = errors.New("agent shutting down")

// Batch is one webhook request's payload.
type Batch struct {
	// Body is the decompressed request body; workers decode it again (decoding is cheap next to
	// evaluation and the decoder reuses its memory, which keeping parsed events would not).
	Body []byte
	// Events is the number of events the webhook counted (after per-event drops).
	Events int
	// AllFit records that the webhook dropped no event for its size, so the worker can skip
	// measuring each event again (a re-serialisation per event) and still keep the same ones.
	AllFit bool
	// Cost is what decoding Body takes (the webhook's estimate, see webhook.ParseCost): the
	// worker reserves it from the memory budget before decoding.
	Cost int64
	// Queued is when the batch was admitted.
	Queued time.Time
}

// Queue is a FIFO of batches bounded by events and bytes.
type Queue struct {
	capacity int
	maxBytes int64

	mu     sync.Mutex
	events int
	bytes  int64
	closed bool
	ch     chan *Batch
}

// New returns a queue admitting up to capacity events and maxBytes body bytes.
func New(capacity int, maxBytes int64) *Queue {
	// Every admitted batch has at least one event and a batch bigger than the capacity is only
	// admitted into an empty queue, so capacity slots always suffice and Put never blocks.
	return &Queue{capacity: capacity, maxBytes: maxBytes, ch: make(chan *Batch, capacity)}
}

// Put admits b or returns ErrFull / ErrClosed. A batch larger than the bounds is admitted when
// the queue is empty, so that no batch is refused for ever.
func (q *Queue) Put(b *Batch) error {
	if b.Events <= 0 {
		return nil
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return ErrClosed
	}
	if q.events > 0 && (q.events+b.Events > q.capacity || q.bytes+int64(len(b.Body)) > q.maxBytes) {
		return ErrFull
	}
	q.events += b.Events
	q.bytes += int64(len(b.Body))
	b.Queued = time.Now()
	q.ch <- b
	return nil
}

// C is the channel workers receive batches from; it is closed by Close once no more batches can
// arrive, so ranging over it drains the queue.
func (q *Queue) C() <-chan *Batch { return q.ch }

// Done releases a batch's room after it has been evaluated. Room is held until then so that the
// queue depth also bounds what is being evaluated.
func (q *Queue) Done(b *Batch) {
	q.mu.Lock()
	q.events -= b.Events
	q.bytes -= int64(len(b.Body))
	q.mu.Unlock()
}

// Close stops admissions; batches already queued are still delivered.
func (q *Queue) Close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.closed {
		q.closed = true
		close(q.ch)
	}
}

// Len returns the events and bytes held (queued or being evaluated).
func (q *Queue) Len() (events int, bytes int64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.events, q.bytes
}

// Capacity returns the bounds.
func (q *Queue) Capacity() (events int, bytes int64) { return q.capacity, q.maxBytes }
