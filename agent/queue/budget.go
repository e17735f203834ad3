package queue

import (
	"context"
	"sync/atomic"

	"golang.org/x/sync/semaphore"
)

// Budget is the memory that requests being read and checked, and batches being decoded by the
// workers, may hold together (webhook.memory_budget). Holders reserve what they will allocate
// before allocating it; reservations are served first come, first served, so a waiting worker is
// not starved by a stream of new requests.
type Budget struct {
	sem  *semaphore.Weighted
	size int64
	used atomic.Int64
}

// NewBudget returns a budget of size bytes.
func NewBudget(size int64) *Budget {
	return &Budget{sem: semaphore.NewWeighted(size), size: size}
}

// Size returns the budget's size in bytes.
func (b *Budget) Size() int64 { return b.size }

// Used returns the bytes reserved now.
func (b *Budget) Used() int64 { return b.used.Load() }

// Acquire reserves n bytes, waiting until they are free or ctx ends. n is capped at the size,
// so that a holder that must go on (a worker with an admitted batch) always eventually gets
// through; callers that may refuse check n against Size first. It returns the amount reserved,
// to be passed to Release.
func (b *Budget) Acquire(ctx context.Context, n int64) (int64, error) {
	n = min(max(n, 0), b.size)
	// Free room is taken even when ctx has just ended (semaphore.Acquire checks ctx first).
	if !b.sem.TryAcquire(n) {
		if err := b.sem.Acquire(ctx, n); err != nil {
			return 0, err
		}
	}
	b.used.Add(n)
	return n, nil
}

// Release returns n bytes reserved by Acquire.
func (b *Budget) Release(n int64) {
	if n <= 0 {
		return
	}
	b.used.Add(-n)
	b.sem.Release(n)
}
