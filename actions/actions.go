// Package actions holds the charm's Juju actions, one file per action. A file registers its
// handler in init; actions.yaml declares it with its JSON-schema parameters (Juju validates
// them and inserts defaults before the charm runs). Adding an action is one file here plus one
// actions.yaml entry.
//
// A handler returns nested results (flattened to action-set's dotted keys, values as strings)
// or an error, which becomes action-fail with the error's text: actions fail with a message
// for the user rather than a crashed process. Every result and message is redacted of
// credentials.
package actions

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/falco-k8s/falco-k8s/agent/apiclient"
	"github.com/falco-k8s/falco-k8s/charm"
)

// Handler runs one action with Juju's validated parameters.
type Handler func(ctx context.Context, c *charm.Context, p Params) (map[string]any, error)

var registry = map[string]Handler{}

// Register adds an action; each action file calls it from init.
func Register(name string, h Handler) {
	if _, dup := registry[name]; dup {
		panic("actions: duplicate action " + name)
	}
	registry[name] = h
}

// Names lists the registered actions, sorted.
func Names() []string {
	out := make([]string, 0, len(registry))
	for n := range registry {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Params are action-get's parameters.
type Params map[string]any

// String returns a string parameter ("" when absent).
func (p Params) String(k string) string {
	v, _ := p[k].(string)
	return strings.TrimSpace(v)
}

// Bool returns a boolean parameter (false when absent).
func (p Params) Bool(k string) bool {
	v, _ := p[k].(bool)
	return v
}

// maxResultValue keeps each action-set argument under Linux's 128 KiB single-argument limit;
// maxResultsTotal bounds a whole result, which Juju stores in its database and returns in one
// message.
const (
	maxResultValue  = 120 << 10
	maxResultsTotal = 1 << 20
)

// Run runs action name. Only hook-tool failures (the action could not even report) are
// returned; everything else is reported with action-fail.
func Run(ctx context.Context, c *charm.Context, name string) error {
	h, ok := registry[name]
	if !ok {
		return c.Tools.ActionFail(ctx, fmt.Sprintf("action %q is not implemented by this charm", name))
	}
	raw, err := c.Tools.ActionGet(ctx)
	if err != nil {
		return fmt.Errorf("action-get: %w", err)
	}
	res, herr := h(ctx, c, Params(raw))
	flat := charm.FlattenResults(res)
	keys := make([]string, 0, len(flat))
	for k := range flat {
		keys = append(keys, k)
	}
	sort.Strings(keys) // the same keys keep their values whatever the map order
	total := 0
	for _, k := range keys {
		v := c.Redact(flat[k])
		limit := min(maxResultValue, max(0, maxResultsTotal-total))
		if len(v) > limit {
			v = v[:limit] + "\n… truncated: narrow the result (e.g. the filter parameter)"
		}
		total += len(k) + len(v)
		flat[k] = v
	}
	if err := c.Tools.ActionSet(ctx, flat); err != nil {
		return fmt.Errorf("action-set: %w", err)
	}
	if herr != nil {
		msg := c.Redact(herr.Error())
		c.Log.Warn().Str("action", name).Msg(msg)
		if err := c.Tools.ActionFail(ctx, msg); err != nil {
			return fmt.Errorf("action-fail: %w", err)
		}
	}
	return nil
}

// agent returns a client for the unit's agent, from the current webhook-port.
func agent(ctx context.Context, c *charm.Context) (*apiclient.Client, *charm.Settings, error) {
	s, err := c.Settings(ctx)
	if err != nil {
		return nil, nil, err
	}
	return apiclient.Local(charm.StatusPort(s)), s, nil
}
