package agent

import (
	"context"
	"sort"
	"time"

	"github.com/falco-k8s/falco-k8s/agent/config"
	"github.com/falco-k8s/falco-k8s/agent/output"
	"github.com/falco-k8s/falco-k8s/engine"
	"github.com/falco-k8s/falco-k8s/engine/k8saudit"
)

// worker evaluates batches until the queue is closed and drained. Each worker has its own
// decoder and evaluator; a batch's events are evaluated in order by one worker.
func (a *Agent) worker() {
	dec := k8saudit.Decoder{MaxEventSize: int(a.cfg.Webhook.MaxEventSize), Hostname: a.hostname}
	var cur *active
	var ev *engine.Evaluator
	needJSON := a.outs.NeedJSON()
	extra := a.extraFields()
	match := func(r *engine.Rule) {
		al := ev.Alert(r, a.hostname)
		if len(extra) > 0 {
			al.Fields = mergeFields(al.Fields, extra)
		}
		a.m.Alert(r.Name, r.Priority.String())
		a.outs.Send(output.FromEngine(al, needJSON))
	}
	maxEventSize := dec.MaxEventSize
	for b := range a.q.C() {
		// Same bytes, same decoder rules: when the webhook found every event within the size
		// limit, measuring them again cannot drop one, so skip the per-event re-serialisation.
		dec.MaxEventSize = maxEventSize
		if b.AllFit {
			dec.MaxEventSize = 0
		}
		// Decoding holds the parsed batch: charged to the memory budget like the webhook's
		// check (waiting, never refusing: the batch was acknowledged).
		held, _ := a.budget.Acquire(context.Background(), b.Cost)
		n := 0
		_, err := dec.Decode(b.Body, func(e *k8saudit.Event) error {
			// Loaded per event: a swapped ruleset applies from the next event on.
			if act := a.cur.Load(); act != cur {
				cur, ev = act, act.rs.NewEvaluator()
			}
			ev.Match(e, a.all, match)
			n++
			return nil
		})
		if err != nil || n != b.Events {
			// The webhook decoded the same bytes with the same settings; this cannot happen
			// unless the decoder is not deterministic, which must be loud.
			a.log.Error().Err(err).Int("expected", b.Events).Int("evaluated", n).Msg("batch decoded differently by the worker")
		}
		if b.Cost > config.KeptParserCost {
			// The decoder keeps its parser's memory for reuse; after a big batch, let it go
			// with the reservation instead of holding it uncounted.
			dec = k8saudit.Decoder{MaxEventSize: maxEventSize, Hostname: a.hostname}
		}
		a.budget.Release(held)
		a.m.Evaluated(n)
		a.q.Done(b)
		a.m.BatchDone(time.Since(b.Queued))
	}
}

// extraFields returns outputs.output_fields sorted by key.
func (a *Agent) extraFields() []engine.AlertField {
	m := a.cfg.Outputs.OutputFields
	out := make([]engine.AlertField, 0, len(m))
	for k, v := range m {
		out = append(out, engine.AlertField{Key: k, Value: v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

// mergeFields adds the configured fields to an alert's (both sorted), keeping the order JSON
// rendering expects. A rule's own field of the same name wins, as it describes the event.
func mergeFields(own, extra []engine.AlertField) []engine.AlertField {
	out := make([]engine.AlertField, 0, len(own)+len(extra))
	i, j := 0, 0
	for i < len(own) || j < len(extra) {
		switch {
		case j == len(extra) || (i < len(own) && own[i].Key < extra[j].Key):
			out = append(out, own[i])
			i++
		case i == len(own) || extra[j].Key < own[i].Key:
			out = append(out, extra[j])
			j++
		default: // same key
			out = append(out, own[i])
			i++
			j++
		}
	}
	return out
}
