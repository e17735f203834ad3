package actions

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/falco-k8s/falco-k8s/alerts"
	"github.com/falco-k8s/falco-k8s/charm"
	"github.com/falco-k8s/falco-k8s/engine"
	"github.com/falco-k8s/falco-k8s/engine/rulesfile"
	"github.com/falco-k8s/falco-k8s/rules"
)

// tune-rules turns the journal's alerts into exceptions in the workload's tuning file
// (<state_dir>/tuning.yaml, on the pod's state volume so it survives restarts), as
// `falco-k8s alerts tune` does, then asks the agent to reload. The tuned rules are validated
// against the built-in ruleset; alerts of followed rules are reported as skipped.
func init() { Register("tune-rules", tuneRules) }

// TuningPath is the tuning file in the workload container.
const TuningPath = charm.TuningPath

// workloadFiles is the tuning flow's store (alerts.TuningStore) in the workload container,
// reached through Pebble under root (where the charm's tests run the workload; empty in a real
// deployment), so the actions run the same tune and reset code as `falco-k8s alerts`.
type workloadFiles struct {
	w    charm.Workload
	root string
}

// Lock implements alerts.TuningStore. The CLI's flock cannot span containers; the charm does
// not need one: Juju runs one hook or action at a time on a unit, so two actions never
// read-modify-write the file at once.
func (workloadFiles) Lock(context.Context, string) (func(), error) { return func() {}, nil }

// Read implements alerts.TuningStore.
func (f workloadFiles) Read(ctx context.Context, path string) ([]byte, error) {
	b, err := f.w.Pull(ctx, f.root+path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return b, err
}

// Write implements alerts.TuningStore (Pebble's push replaces the file atomically).
func (f workloadFiles) Write(ctx context.Context, path string, data []byte) error {
	if err := f.w.Push(ctx, f.root+path, bytes.NewReader(data), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// SetAside implements alerts.TuningStore. Pebble has no rename: copy, then remove the original
// only once the copy is written.
func (f workloadFiles) SetAside(ctx context.Context, path, dst string) error {
	if _, err := f.w.Pull(ctx, f.root+dst); err == nil {
		return fs.ErrExist
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	content, err := f.w.Pull(ctx, f.root+path)
	if err != nil {
		return err
	}
	if err := f.w.Push(ctx, f.root+dst, bytes.NewReader(content), 0o644); err != nil {
		return fmt.Errorf("set aside %s: %w", path, err)
	}
	if err := f.w.Remove(ctx, f.root+path); err != nil {
		return fmt.Errorf("remove %s (a copy is at %s): %w", path, dst, err)
	}
	return nil
}

func tuneRules(ctx context.Context, c *charm.Context, p Params) (map[string]any, error) {
	scope := p.String("scope")
	if scope != alerts.ScopeNamespace && scope != alerts.ScopeCluster {
		return nil, fmt.Errorf("scope %q is not namespace or cluster", scope)
	}
	f, err := alertFilter(p)
	if err != nil {
		return nil, err
	}
	// The tuning is the application's: only the leader changes it, from every unit's alerts,
	// and every unit renders what it publishes.
	peers, err := leaderOnly(ctx, c, "tune-rules", p)
	if err != nil {
		return nil, err
	}
	list, truncated, _, missing, a, err := appAlerts(ctx, c, f)
	if err != nil {
		return nil, err
	}
	w, err := c.NewWorkload()
	if err != nil {
		return nil, err
	}
	dry := p.Bool("dry-run")
	// The agent's order (engine/rulesfile.Layers); the charm validates against the built-in
	// layer, followed rules being the registry's (their alerts are reported as skipped).
	base := rulesfile.Layers[engine.File]{Builtin: []engine.File{{Name: rules.DefaultName, Content: rules.Default()}}}.Ordered()
	files := workloadFiles{w: w, root: c.Env.WorkloadRoot}
	res, err := alerts.TuneFile(ctx, files, list,
		alerts.TuneOptions{Scope: scope, Base: base, Path: TuningPath, Now: time.Now()}, dry)
	if res == nil { // a failed write comes with the result, reported below
		return nil, err
	}
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
	if len(missing) > 0 {
		out["not-answering"] = strings.Join(missing, "; ")
	}
	if err != nil {
		return out, err
	}
	if !res.Written {
		out["written"] = "false"
		return out, nil
	}
	out["written"] = "true"
	if peers != nil {
		content, err := files.Read(ctx, TuningPath)
		if err != nil {
			return out, err
		}
		if err := c.PublishTuning(ctx, peers, string(content)); err != nil {
			return out, fmt.Errorf("tuning written here but not shared with the other units: %v", err)
		}
		out["shared"] = "true"
	}
	if err := a.Reload(ctx); err != nil {
		return out, fmt.Errorf("tuning written but the agent did not reload: %v", err)
	}
	out["reloaded"] = "true"
	return out, nil
}
