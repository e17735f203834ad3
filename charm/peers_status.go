package charm

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
)

// PinsLabel names a set of pins for a status: "k8s-audit-rules@sha256:ab12cd34ef56…" per
// reference, or "the built-in rules" for none.
func PinsLabel(pins []Pin) string {
	if len(pins) == 0 {
		return "the built-in rules"
	}
	parts := make([]string, 0, len(pins))
	for _, x := range pins {
		parts = append(parts, shortArtifact(x.Ref, x.Digest))
	}
	return strings.Join(parts, ", ")
}

// UnitRunning decodes a unit databag's running set (nil when the unit has not published one).
func UnitRunning(bag map[string]string) *Running {
	v := bag[keyRunning]
	if v == "" {
		return nil
	}
	r := &Running{}
	if json.Unmarshal([]byte(v), r) != nil {
		return nil
	}
	return r
}

// setAppStatus is the leader's application status: how many units run the published set and,
// when not all do, which lag and why; the latest ignored candidate and its reason.
func (c *Context) setAppStatus(ctx context.Context, p *Peers, mine Running) error {
	pub := p.Published
	all := map[string]*Running{p.Unit: &mine}
	for u, bag := range p.Units {
		all[u] = UnitRunning(bag)
	}
	names := make([]string, 0, len(all))
	for u := range all {
		names = append(names, u)
	}
	sort.Strings(names)
	var want []Pin
	if pub != nil {
		want = pub.Pins
	}
	ok := 0
	var lag []string
	for _, u := range names {
		r := all[u]
		switch {
		case r == nil:
			lag = append(lag, u+" not reporting yet")
		case samePins(r.Pins, want):
			ok++
		case r.Error != "":
			lag = append(lag, fmt.Sprintf("%s keeps %s (%s)", u, PinsLabel(r.Pins), r.Error))
		default:
			lag = append(lag, fmt.Sprintf("%s on %s", u, PinsLabel(r.Pins)))
		}
	}
	st := Active
	msg := fmt.Sprintf("%d/%d units on %s", ok, len(names), PinsLabel(want))
	if len(lag) > 0 {
		st = Waiting
		msg += "; " + strings.Join(lag, "; ")
	}
	if pub != nil && pub.Ignored != nil {
		msg += fmt.Sprintf("; ignored %s: %s", shortArtifact(pub.Ignored.Ref, pub.Ignored.Digest), pub.Ignored.Reason)
	}
	msg = c.Redact(msg)
	if len(msg) > 1000 {
		msg = msg[:999] + "…"
	}
	st2, _ := c.Tools.(interface {
		AppStatusSet(ctx context.Context, status, message string) error
	})
	if st2 == nil {
		return nil
	}
	if err := st2.AppStatusSet(ctx, st, msg); err != nil {
		return fmt.Errorf("status-set --application: %w", err)
	}
	return nil
}

// AppStatusSet is status-set --application (leader only).
func (ExecTools) AppStatusSet(ctx context.Context, status, message string) error {
	_, err := run(ctx, "status-set", "--application", status, "--", message)
	return err
}
