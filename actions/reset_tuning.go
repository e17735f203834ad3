package actions

import (
	"context"
	"fmt"
	"time"

	"github.com/falco-k8s/falco-k8s/alerts"
	"github.com/falco-k8s/falco-k8s/charm"
)

// reset-tuning returns to the untuned rules: the tuning file is set aside as
// tuning.yaml.<UTC timestamp>.bak in the state directory (never deleted, never overwriting an
// earlier one: alerts.ResetFile, the CLI's reset), and the agent reloads.
func init() { Register("reset-tuning", resetTuning) }

func resetTuning(ctx context.Context, c *charm.Context, _ Params) (map[string]any, error) {
	a, _, err := agent(ctx, c)
	if err != nil {
		return nil, err
	}
	w, err := c.NewWorkload()
	if err != nil {
		return nil, err
	}
	moved, err := alerts.ResetFile(ctx, workloadFiles{w: w, root: c.Env.WorkloadRoot}, TuningPath, time.Now())
	if err != nil {
		return nil, err
	}
	if moved == "" {
		return map[string]any{"reset": "false", "summary": "no tuning file: the rules are already untuned"}, nil
	}
	out := map[string]any{"reset": "true", "moved-to": moved}
	if err := a.Reload(ctx); err != nil {
		return out, fmt.Errorf("tuning set aside but the agent did not reload: %v", err)
	}
	out["reloaded"] = "true"
	return out, nil
}
