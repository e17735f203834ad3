package hooks

import (
	"context"

	"github.com/falco-k8s/falco-k8s/charm"
)

// stop: the pod is terminating. Pebble stops the agent itself (SIGTERM, then kill-delay for the
// drain), so the charm must not push files or replan into the dying container: it only says so.
func init() { register("stop", terminating("stopping: the agent drains its queue")) }

// terminating handles stop and remove: status only, no Pebble, no relation data.
func terminating(msg string) Hook {
	return func(ctx context.Context, c *charm.Context) error {
		return c.SetStatus(ctx, charm.Maintenance, msg)
	}
}
