package harness

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/canonical/pebble/client"
)

// Pebble custom notices as Juju delivers them: the unit agent watches each container's Pebble
// (WaitNotices, after the last notice it has seen, by last-repeated time) and runs
// <container>-pebble-custom-notice once per new or repeated custom notice, with JUJU_NOTICE_ID,
// JUJU_NOTICE_TYPE, JUJU_NOTICE_KEY and JUJU_WORKLOAD_NAME (spec/juju.md §1.3).

// NoticeWatch is one unit's watch of one container's Pebble.
type NoticeWatch struct {
	Unit, Container, Socket string
	after                   time.Time
}

// WatchNotices starts watching a unit's container Pebble at socket; notices already recorded
// are not delivered (Juju starts from the time the container's watcher starts).
func (m *Model) WatchNotices(unit, container, socket string) *NoticeWatch {
	w := &NoticeWatch{Unit: unit, Container: container, Socket: socket, after: time.Now()}
	m.watches = append(m.watches, w)
	return w
}

// StopWatching forgets a unit's watches (the unit is gone).
func (m *Model) StopWatching(unit string) {
	out := m.watches[:0]
	for _, w := range m.watches {
		if w.Unit != unit {
			out = append(out, w)
		}
	}
	m.watches = out
}

// PollNotices queues the hooks for every custom notice recorded or repeated since each watch
// last looked. With wait > 0 it first waits, up to wait, until any watched Pebble has one (the
// unit agent's long poll); 0 only looks. It returns how many hooks it queued.
func (m *Model) PollNotices(ctx context.Context, wait time.Duration) (int, error) {
	if wait > 0 && len(m.watches) > 0 {
		wctx, cancel := context.WithCancel(ctx)
		var wg sync.WaitGroup
		for _, w := range m.watches {
			c, err := client.New(&client.Config{Socket: w.Socket})
			if err != nil {
				cancel()
				return 0, fmt.Errorf("pebble client for %s: %w", w.Unit, err)
			}
			opts := &client.NoticesOptions{Types: []client.NoticeType{client.CustomNotice}, After: w.after}
			wg.Add(1)
			go func() {
				defer wg.Done()
				// Errors (a stopped Pebble, the cancellation) are the look below's to report.
				if n, _ := c.WaitNotices(wctx, wait, opts); len(n) > 0 {
					cancel()
				}
			}()
		}
		wg.Wait()
		cancel()
	}
	n := 0
	for _, w := range m.watches {
		c, err := client.New(&client.Config{Socket: w.Socket})
		if err != nil {
			return n, fmt.Errorf("pebble client for %s: %w", w.Unit, err)
		}
		notices, err := c.Notices(&client.NoticesOptions{Types: []client.NoticeType{client.CustomNotice}, After: w.after})
		if err != nil {
			return n, fmt.Errorf("pebble notices of %s: %w", w.Unit, err)
		}
		for _, no := range notices {
			m.enqueueAlways(w.Unit, w.Container+"-pebble-custom-notice", "JUJU_NOTICE_ID="+no.ID,
				"JUJU_NOTICE_TYPE="+string(no.Type), "JUJU_NOTICE_KEY="+no.Key, "JUJU_WORKLOAD_NAME="+w.Container)
			if no.LastRepeated.After(w.after) {
				w.after = no.LastRepeated
			}
			n++
		}
	}
	return n, nil
}

// WaitNotice waits until unit's container records a custom notice with key (after what was
// already delivered), up to timeout, and queues its hook. Notices of other units seen meanwhile
// are queued too.
func (m *Model) WaitNotice(ctx context.Context, unit, key string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		before := len(m.queue)
		if _, err := m.PollNotices(ctx, time.Second); err != nil {
			return err
		}
		for _, ev := range m.queue[before:] {
			if ev.Unit == unit && hasEnv(ev.Env, "JUJU_NOTICE_KEY="+key) {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no %s notice from %s within %s", key, unit, timeout)
		}
	}
}

func hasEnv(env []string, kv string) bool {
	for _, e := range env {
		if e == kv {
			return true
		}
	}
	return false
}

func (m *Model) enqueueAlways(unit, hook string, env ...string) {
	m.queue = append(m.queue, Event{Unit: unit, Hook: hook, Env: env})
}
