package actions

import (
	"context"
	"fmt"
	"time"

	"github.com/falco-k8s/falco-k8s/alerts"
	"github.com/falco-k8s/falco-k8s/charm"
)

// reset-tuning returns to the untuned rules (the application's: leader only, every unit follows
// the published empty tuning): the tuning file is set aside as
// tuning.yaml.<UTC timestamp>.bak in the state directory (never deleted, never overwriting an
// earlier one: alerts.ResetFile, the CLI's reset), and the agent reloads.
func init() { Register("reset-tuning", resetTuning) }

func resetTuning(ctx context.Context, c *charm.Context, p Params) (map[string]any, error) {
	peers, err := leaderOnly(ctx, c, "reset-tuning", p)
	if err != nil {
		return nil, err
	}
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
	// Every unit drops its copy when the leader publishes the empty tuning.
	if peers != nil && (peers.Tuning == nil || peers.Tuning.Content != "") {
		if err := c.PublishTuning(ctx, peers, ""); err != nil {
			return nil, fmt.Errorf("tuning reset here but not on the other units: %v", err)
		}
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
