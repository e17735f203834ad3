package queue

import (
	"errors"
	"testing"
)

func TestQueueBounds(t *testing.T) {
	q := New(10, 100)
	put := func(events, size int) error { return q.Put(&Batch{Body: make([]byte, size), Events: events}) }
	if err := put(0, 10); err != nil {
		t.Fatalf("empty batch: %v", err)
	}
	if n, _ := q.Len(); n != 0 {
		t.Fatalf("empty batch was queued")
	}
	// Oversized batches go into an empty queue only.
	if err := put(50, 10); err != nil {
		t.Fatalf("oversize batch into empty queue: %v", err)
	}
	if err := put(1, 1); !errors.Is(err, ErrFull) {
		t.Fatalf("put into over-full queue = %v, want ErrFull", err)
	}
	b := <-q.C()
	q.Done(b)
	if err := put(6, 10); err != nil {
		t.Fatal(err)
	}
	if err := put(5, 10); !errors.Is(err, ErrFull) {
		t.Fatalf("events bound: %v", err)
	}
	if err := put(4, 91); !errors.Is(err, ErrFull) {
		t.Fatalf("bytes bound: %v", err)
	}
	if err := put(4, 90); err != nil {
		t.Fatal(err)
	}
	if n, by := q.Len(); n != 10 || by != 100 {
		t.Fatalf("Len = %d, %d", n, by)
	}
	q.Close()
	if err := put(1, 1); !errors.Is(err, ErrClosed) {
		t.Fatalf("put after close = %v", err)
	}
	got := 0
	for b := range q.C() {
		got += b.Events
		q.Done(b)
	}
	if got != 10 {
		t.Fatalf("drained %d events, want 10", got)
	}
}
