package actions

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/falco-k8s/falco-k8s/alerts"
	"github.com/falco-k8s/falco-k8s/charm"
	"github.com/falco-k8s/falco-k8s/engine"
	"github.com/falco-k8s/falco-k8s/rules"
)

// tune-rules turns the journal's alerts into exceptions in the workload's tuning file
// (<state_dir>/tuning.yaml, on the pod's state volume so it survives restarts), as
// `falco-k8s alerts tune` does, then asks the agent to reload. The tuned rules are validated
// against the built-in ruleset; alerts of followed rules are reported as skipped.
func init() { Register("tune-rules", tuneRules) }

// TuningPath is the tuning file in the workload container.
const TuningPath = charm.StateDir + "/tuning.yaml"

// tuningPath is TuningPath as the charm reaches it: under the workload root the charm's tests
// run the workload in (empty in a real deployment), like every other workload file.
func tuningPath(c *charm.Context) string { return c.Env.WorkloadRoot + TuningPath }

func tuneRules(ctx context.Context, c *charm.Context, p Params) (map[string]any, error) {
	scope := p.String("scope")
	if scope != alerts.ScopeNamespace && scope != alerts.ScopeCluster {
		return nil, fmt.Errorf("scope %q is not namespace or cluster", scope)
	}
	f, err := alertFilter(p)
	if err != nil {
		return nil, err
	}
	list, truncated, a, err := fetchAlerts(ctx, c, f)
	if err != nil {
		return nil, err
	}
	w, err := c.NewWorkload()
	if err != nil {
		return nil, err
	}
	existing, err := w.Pull(ctx, tuningPath(c))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("read %s: %v", TuningPath, err)
	}
	base := []engine.File{{Name: rules.DefaultName, Content: rules.Default()}}
	res, err := alerts.Tune(list, alerts.TuneOptions{Scope: scope, Base: base, Path: TuningPath, Existing: existing, Now: time.Now()})
	if err != nil {
		return nil, err
	}
	dry := p.Bool("dry-run")
	added := map[string]any{}
	for i, ad := range res.Added {
		added[fmt.Sprintf("exception-%d", i+1)] = alerts.FormatAddition(ad)
	}
	skipped := map[string]any{}
	for i, s := range res.Skipped {
		skipped[fmt.Sprintf("skip-%d", i+1)] = fmt.Sprintf("%s (%d alerts): %s", s.Rule, s.Alerts, s.Reason)
	}
	out := map[string]any{
		"file": TuningPath, "scope": scope, "dry-run": fmt.Sprint(dry), "reviewed": fmt.Sprint(len(list)),
		"added-count": fmt.Sprint(len(res.Added)), "already-present": fmt.Sprint(res.Present),
		"truncated": fmt.Sprint(truncated), "added": added, "skipped": skipped,
	}
	if !res.Changed || dry {
		out["written"] = "false"
		return out, nil
	}
	if err := w.Push(ctx, tuningPath(c), bytes.NewReader(res.Content), 0o644); err != nil {
		return out, fmt.Errorf("write %s: %v", TuningPath, err)
	}
	out["written"] = "true"
	if err := a.Reload(ctx); err != nil {
		return out, fmt.Errorf("tuning written but the agent did not reload: %v", err)
	}
	out["reloaded"] = "true"
	return out, nil
}
