package actions

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/falco-k8s/falco-k8s/agent/apiclient"

	"github.com/falco-k8s/falco-k8s/agent/status"
	"github.com/falco-k8s/falco-k8s/charm"
)

// sync-rules asks the agent to check every followed reference now (POST /sync). With
// dry-run=true new digests are pulled and validated but not applied.
func init() { Register("sync-rules", syncRules) }

func syncRules(ctx context.Context, c *charm.Context, p Params) (map[string]any, error) {
	a, s, err := agent(ctx, c)
	if err != nil {
		return nil, err
	}
	dry := p.Bool("dry-run")
	out := map[string]any{"dry-run": fmt.Sprint(dry)}
	peers, err := c.Peers(ctx)
	if err != nil {
		return nil, err
	}
	if peers != nil && !peers.Leader {
		// Pinned: this unit never asks the registry; it runs what the leader published.
		return pinnedReport(ctx, c, a, peers, out)
	}
	if len(s.RulesArtifacts) == 0 {
		out["summary"] = "no rules-artifacts configured: only the built-in rules run"
		return out, nil
	}
	c.Tools.ActionLog(ctx, fmt.Sprintf("checking %d reference(s)", len(s.RulesArtifacts))) //nolint:errcheck // progress only
	results, err := a.Sync(ctx, dry)
	if err != nil {
		return out, fmt.Errorf("sync failed: %v", err)
	}
	counts := map[string]int{}
	refs := map[string]any{}
	for i, r := range results {
		counts[r.Result]++
		e := map[string]any{"reference": r.Ref, "result": r.Result}
		if r.Digest != "" {
			e["digest"] = r.Digest
		}
		if r.Reason != "" {
			e["reason"] = r.Reason
		}
		if r.Signer != "" {
			e["signer"] = r.Signer
		}
		if r.Diff != nil {
			// What the candidate changes against the running rules (accepted, dry run or
			// ignored), e.g. `rules: 1 disabled ("Create Privileged Pod")`.
			e["changes"] = r.Diff.Summary()
		}
		// Keys must be lowercase words; references contain '/', ':' and '.', so they are values.
		refs[fmt.Sprintf("ref-%d", i+1)] = e
	}
	out["references"] = refs
	var parts []string
	for _, k := range []string{"accepted", "unchanged", "ignored", "error"} {
		if counts[k] > 0 || k != "error" {
			parts = append(parts, fmt.Sprintf("%d %s", counts[k], k))
		}
	}
	out["summary"] = strings.Join(parts, ", ")
	if peers != nil && !dry {
		// Propagate at once: the leader publishes what its agent now runs, and the other
		// units' relation-changed hooks apply it.
		if _, err := c.Reconcile(ctx); err != nil {
			return out, fmt.Errorf("checked, but publishing to the other units failed: %v", err)
		}
		if now, err := c.Peers(ctx); err == nil && now != nil {
			peers = now
		}
		out["published"] = publishedSummary(peers)
	}
	if counts["error"] > 0 {
		return out, fmt.Errorf("%d reference(s) could not be checked: %s", counts["error"], firstError(results))
	}
	return out, nil
}

func firstError(rs []status.SyncResult) string {
	for _, r := range rs {
		if r.Result == "error" {
			return r.Ref + ": " + r.Reason
		}
	}
	return ""
}

// pinnedReport is sync-rules on a unit that is not the leader: the pinned digests, where they
// come from, and whether the agent runs them.
func pinnedReport(ctx context.Context, c *charm.Context, a *apiclient.Client, peers *charm.Peers, out map[string]any) (map[string]any, error) {
	out["mode"] = "pinned"
	out["source"] = publishedSummary(peers)
	pins := map[string]any{}
	if peers.Published != nil {
		for i, x := range peers.Published.Pins {
			pins[fmt.Sprintf("pin-%d", i+1)] = map[string]any{"reference": x.Ref, "digest": x.Digest}
		}
	}
	out["pins"] = pins
	st, err := a.Status(ctx)
	if err != nil {
		return out, fmt.Errorf("cannot read the agent's status: %v", err)
	}
	running := charm.RunningPins(st)
	out["running"] = charm.PinsLabel(running)
	var want []charm.Pin
	if peers.Published != nil {
		want = peers.Published.Pins
	}
	if slices.Equal(running, want) || len(running) == 0 && len(want) == 0 {
		out["summary"] = "running the published rules: " + charm.PinsLabel(want) + "; the leader checks the registry (juju run " + c.Env.App + "/leader sync-rules)"
	} else {
		out["summary"] = "not yet running the published rules " + charm.PinsLabel(want) + " (running " + charm.PinsLabel(running) + ")"
	}
	return out, nil
}

func publishedSummary(p *charm.Peers) string {
	if p.Published == nil {
		return "nothing published yet by the leader"
	}
	return fmt.Sprintf("published by %s (leader), generation %d: %s", p.Published.By, p.Published.Generation, charm.PinsLabel(p.Published.Pins))
}
