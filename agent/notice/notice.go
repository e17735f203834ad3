// Package notice records Pebble custom notices about the agent's ruleset candidates: when the
// follower accepts or ignores one, the notice config.NoticeKey (falco-k8s.io/ruleset) is
// recorded with data event (accepted or ignored), ref, digest and reason, so the charm's
// <container>-pebble-custom-notice hook propagates the change at once (the leader publishes
// the accepted set to its peers) instead of waiting for update-status.
//
// Notices are best effort and never delay the ruleset: Record only queues (when the queue is
// full the new notice is dropped and logged), and a goroutine talks to Pebble; a failure is
// logged at warn.
package notice

import (
	"context"
	"time"

	"github.com/canonical/pebble/client"
	"github.com/rs/zerolog"

	"github.com/falco-k8s/falco-k8s/agent/config"
	"github.com/falco-k8s/falco-k8s/agent/status"
)

// Events in a notice's data.
const (
	EventAccepted = "accepted"
	EventIgnored  = "ignored"
)

// queueSize bounds the notices waiting for Pebble; each is a few hundred bytes.
const queueSize = 64

// maxReason bounds the reason in a notice (Pebble keeps notice data in memory and in its state).
const maxReason = 1024

// Notifier sends notices to one Pebble daemon.
type Notifier struct {
	c    *client.Client
	log  zerolog.Logger
	q    chan map[string]string
	done chan struct{}
}

// New returns a notifier for the Pebble API socket; it sends nothing until Run.
func New(socket string, log zerolog.Logger) (*Notifier, error) {
	c, err := client.New(&client.Config{Socket: socket})
	if err != nil {
		return nil, err
	}
	return &Notifier{c: c, log: log, q: make(chan map[string]string, queueSize), done: make(chan struct{})}, nil
}

// Data is a change's notice data: event, ref, digest and reason (empty values left out).
func Data(ch status.Change) map[string]string {
	d := map[string]string{"event": EventIgnored}
	if ch.Accepted {
		d["event"] = EventAccepted
	}
	for k, v := range map[string]string{"ref": ch.Ref, "digest": ch.Digest, "reason": ch.Reason} {
		if len(v) > maxReason {
			v = v[:maxReason] + "..."
		}
		if v != "" {
			d[k] = v
		}
	}
	return d
}

// Record queues the notice for a candidate accepted or ignored; it never blocks.
func (n *Notifier) Record(ch status.Change) {
	select {
	case n.q <- Data(ch):
	default:
		n.log.Warn().Str("ref", ch.Ref).Str("digest", ch.Digest).Msg("pebble notice queue full; notice dropped (the charm still sees the change at its next hook)")
	}
}

// Run sends queued notices until ctx is done, then those still queued within flush.
func (n *Notifier) Run(ctx context.Context, flush time.Duration) {
	defer close(n.done)
	for {
		select {
		case d := <-n.q:
			n.send(d)
		case <-ctx.Done():
			deadline := time.After(flush)
			for {
				select {
				case d := <-n.q:
					n.send(d)
				case <-deadline:
					return
				default:
					return
				}
			}
		}
	}
}

// Done is closed when Run has returned.
func (n *Notifier) Done() <-chan struct{} { return n.done }

func (n *Notifier) send(d map[string]string) {
	id, err := n.c.Notify(&client.NotifyOptions{Type: client.CustomNotice, Key: config.NoticeKey, Data: d})
	if err != nil {
		n.log.Warn().Err(err).Str("key", config.NoticeKey).Str("event", d["event"]).Str("ref", d["ref"]).
			Msg("cannot record the pebble notice; the ruleset change stands")
		return
	}
	n.log.Debug().Str("id", id).Str("event", d["event"]).Str("ref", d["ref"]).Str("digest", d["digest"]).Msg("pebble notice recorded")
}
