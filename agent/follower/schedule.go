package follower

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/falco-k8s/falco-k8s/agent"
	"github.com/falco-k8s/falco-k8s/agent/status"
)

// Run implements agent.RuleSource: it checks each reference every interval (jittered), retries
// registry errors with backoff, and watches the rules directory, until ctx is done.
func (f *Follower) Run(ctx context.Context, sink agent.RuleSink) error {
	f.mu.Lock()
	if f.running {
		f.mu.Unlock()
		return errors.New("follower already running")
	}
	f.sink, f.running = sink, true
	for i := range f.health {
		sink.ReportSource(f.health[i])
	}
	close(f.started)
	f.mu.Unlock()

	var wg sync.WaitGroup
	defer wg.Wait()
	if !f.o.DisableWatch {
		w, err := newWatcher(f)
		if err != nil {
			f.log.Error().Err(err).Str("dir", f.rulesDir).Msg("cannot watch the rules directory; edits and deletions will only be noticed at restart")
		} else {
			f.mu.Lock()
			f.watch = w
			f.mu.Unlock()
			wg.Add(1)
			go func() { defer wg.Done(); w.run(ctx) }()
		}
	}
	// Restore files deleted, and validate files edited, while the agent was not running.
	f.reconcileDisk()
	if f.pinned() {
		return f.runPinned(ctx)
	}

	next := make([]time.Time, len(f.refs))
	now := time.Now()
	f.mu.Lock()
	for i, a := range f.acc {
		next[i] = now
		if a != nil && a.st.Digest != "" {
			// A restart is not a reason to poll: spread the first check so that agents
			// restarted together do not hit the registry together.
			next[i] = now.Add(time.Duration(rand.Float64() * f.o.Jitter * float64(f.o.Interval)))
		}
	}
	f.mu.Unlock()
	for {
		earliest := next[0]
		for _, t := range next[1:] {
			if t.Before(earliest) {
				earliest = t
			}
		}
		timer := time.NewTimer(time.Until(earliest))
		select {
		case <-ctx.Done():
			timer.Stop()
			return ctx.Err()
		case <-timer.C:
		}
		now := time.Now()
		var due []int
		for i, t := range next {
			if !t.After(now) {
				due = append(due, i)
			}
		}
		for _, r := range f.round(ctx, due, false, false) {
			i := f.index(r.Ref)
			next[i] = time.Now().Add(f.delay(i, r))
		}
	}
}

func (f *Follower) index(name string) int {
	for i, n := range f.names {
		if n == name {
			return i
		}
	}
	return -1
}

// delay is the wait before reference i's next check: the jittered interval, or after a registry
// error an exponential backoff, at least what the registry asked for with Retry-After.
func (f *Follower) delay(i int, r status.SyncResult) time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.Result != ResultError || f.contentFail[i] {
		// Bad content backs off the digest (check.go), not the checks: a new push must
		// still be noticed at the next interval.
		f.fails[i] = 0
		return time.Duration(float64(f.o.Interval) * (1 + f.o.Jitter*(2*rand.Float64()-1)))
	}
	f.fails[i]++
	d := f.o.InitialBackoff
	for n := 1; n < f.fails[i] && d < f.o.MaxBackoff; n++ {
		d *= 2
	}
	d = min(d, f.o.MaxBackoff)
	if ra := f.ra.take(f.refs[i].Registry); ra > d {
		d = ra
	}
	f.log.Info().Str("ref", f.names[i]).Int("failures", f.fails[i]).Dur("retry_in", d).Msg("registry check failed; retrying with backoff")
	return d
}

// Sync checks every reference now (the charm's sync-rules action, POST /sync) and applies a
// valid change, or with dryRun only validates it. Unlike scheduled checks it re-examines
// candidates that were ignored before.
func (f *Follower) Sync(ctx context.Context, dryRun bool) []status.SyncResult {
	all := make([]int, len(f.refs))
	for i := range all {
		all[i] = i
	}
	// The agent starts sources just before it serves: a request in between waits for Run.
	running := false
	select {
	case <-f.started:
		running = true
	case <-ctx.Done():
	case <-time.After(5 * time.Second):
	}
	if !running {
		out := make([]status.SyncResult, len(f.refs))
		for i := range out {
			out[i] = status.SyncResult{Ref: f.names[i], Result: ResultError, Reason: "the follower is not running yet"}
		}
		return out
	}
	if f.pinned() {
		// Whatever the watch may have missed: the pins as they are now.
		f.reloadPins()
	}
	return f.round(ctx, all, true, dryRun)
}
