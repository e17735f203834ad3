// Package hooks holds the charm's Juju hooks, one file per hook. Every hook converges the unit
// through charm.Context.Reconcile, because Juju's hook order is not guaranteed (pebble-ready can
// come before or after config-changed, a restarted pod may only get start) and each hook must
// leave the unit right on its own. A file adds only what its hook needs beyond that.
package hooks

import (
	"context"
	"fmt"

	"github.com/falco-k8s/falco-k8s/charm"
)

// Hook handles one Juju hook.
type Hook func(ctx context.Context, c *charm.Context) error

var registry = map[string]Hook{}

// register is called from each hook file's init.
func register(name string, h Hook) {
	if _, dup := registry[name]; dup {
		panic("hooks: duplicate hook " + name)
	}
	registry[name] = h
}

// Names lists the hooks with a handler of their own.
func Names() []string {
	out := make([]string, 0, len(registry))
	for n := range registry {
		out = append(out, n)
	}
	return out
}

// Run handles hook name. Hooks without a file of their own (e.g. falco-pebble-check-failed on
// Juju 3.6, or hooks Juju adds later) reconcile too: it is always safe and keeps status fresh.
func Run(ctx context.Context, c *charm.Context, name string) error {
	h, ok := registry[name]
	if !ok {
		c.Log.Debug().Str("hook", name).Msg("no specific handler; reconciling")
		h = reconcile
	}
	if err := h(ctx, c); err != nil {
		return fmt.Errorf("hook %s: %w", name, err)
	}
	return nil
}

func reconcile(ctx context.Context, c *charm.Context) error {
	_, err := c.Reconcile(ctx)
	return err
}
