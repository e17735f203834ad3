package actions

import (
	"context"
	"fmt"
	"strings"

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
