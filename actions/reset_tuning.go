package actions

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/falco-k8s/falco-k8s/charm"
)

// reset-tuning returns to the untuned rules: the tuning file is set aside as
// tuning.yaml.<UTC timestamp>.bak in the state directory (never deleted), and the agent reloads.
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
	content, err := w.Pull(ctx, tuningPath(c))
	if errors.Is(err, os.ErrNotExist) {
		return map[string]any{"reset": "false", "summary": "no tuning file: the rules are already untuned"}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %v", TuningPath, err)
	}
	// Pebble has no rename: copy, then remove the original only once the copy is written.
	moved := TuningPath + "." + time.Now().UTC().Format("20060102T150405Z") + ".bak"
	if err := w.Push(ctx, c.Env.WorkloadRoot+moved, bytes.NewReader(content), 0o644); err != nil {
		return nil, fmt.Errorf("set aside %s: %v", TuningPath, err)
	}
	if err := w.Remove(ctx, tuningPath(c)); err != nil {
		return nil, fmt.Errorf("remove %s (a copy is at %s): %v", TuningPath, moved, err)
	}
	out := map[string]any{"reset": "true", "moved-to": moved}
	if err := a.Reload(ctx); err != nil {
		return out, fmt.Errorf("tuning set aside but the agent did not reload: %v", err)
	}
	out["reloaded"] = "true"
	return out, nil
}
