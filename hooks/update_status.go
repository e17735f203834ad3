package hooks

import (
	"context"

	"github.com/falco-k8s/falco-k8s/agent/apiclient"
	"github.com/falco-k8s/falco-k8s/charm"
)

// update-status runs periodically (update-status-hook-interval, default 5m). Reconcile self-heals
// anything lost and refreshes the status from the agent ("synced 3m ago", registry errors). At
// log-level debug the per-rule enabled list is logged too, which info keeps out.
func init() { register("update-status", updateStatus) }

func updateStatus(ctx context.Context, c *charm.Context) error {
	out, err := c.Reconcile(ctx)
	if err != nil || out.Status != charm.Active || out.Settings == nil || out.Settings.LogLevel != "debug" && out.Settings.LogLevel != "trace" {
		return err
	}
	rules, err := apiclient.Local(charm.StatusPort(out.Settings)).Rules(ctx, false)
	if err != nil {
		c.Log.Debug().Err(err).Msg("rules list unavailable")
		return nil
	}
	for _, r := range rules.Rules {
		c.Log.Debug().Str("rule", r.Name).Bool("enabled", r.Enabled).Bool("active", r.Active).Msg("rule")
	}
	return nil
}
