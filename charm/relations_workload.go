package charm

import (
	"context"
	"fmt"
	"sort"

	"gopkg.in/yaml.v3"
)

// LogLayerLabel is the Pebble layer holding the log targets (Loki units of the logging
// relation). It is separate from the agent's layer so that a Loki unit coming or going changes
// where logs go without restarting the agent: Pebble's log forwarding follows the plan.
const LogLayerLabel = "falco-k8s-logging"

// logTargetsLayer renders the log-targets layer: every current Loki unit forwards the agent's
// output (its JSON alerts and its own logs) with the topology as labels. Pebble combines layers
// by label and cannot delete an entry, so a target that went away (unit departed, relation
// broken) is kept with services [-all], which stops forwarding to it; known lists every target
// ever put in the layer (name → location) and is updated.
func logTargetsLayer(targets []LokiTarget, topo Topology, known map[string]string) ([]byte, map[string]string, error) {
	next := map[string]string{}
	for k, v := range known {
		next[k] = v
	}
	labels := topo.Labels()
	entries := map[string]any{}
	current := map[string]bool{}
	for _, t := range targets {
		current[t.Name] = true
		next[t.Name] = t.URL
		entries[t.Name] = map[string]any{"override": "replace", "type": "loki", "location": t.URL,
			"services": []string{ServiceName}, "labels": labels}
	}
	names := make([]string, 0, len(next))
	for n := range next {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if !current[n] {
			entries[n] = map[string]any{"override": "replace", "type": "loki", "location": next[n], "services": []string{"-all"}}
		}
	}
	if len(entries) == 0 {
		return nil, next, nil
	}
	b, err := yaml.Marshal(map[string]any{"summary": "falco-k8s log forwarding (logging relation)", "log-targets": entries})
	if err != nil {
		return nil, nil, fmt.Errorf("render log targets: %w", err)
	}
	return b, next, nil
}

// syncLogTargets applies the log-targets layer when it differs from what the workload's
// manifest records (a new container has neither, so it gets the layer again).
func (c *Context) syncLogTargets(ctx context.Context, w Workload, in *Integrations, m *manifest) error {
	layer, known, err := logTargetsLayer(in.Loki, TopologyOf(c.Env), m.LogTargets)
	if err != nil {
		return err
	}
	if layer == nil {
		return nil
	}
	h := sha(layer)
	if h == m.LogLayer {
		return nil
	}
	if err := w.AddLayer(ctx, LogLayerLabel, layer); err != nil {
		return err
	}
	m.LogTargets, m.LogLayer, m.dirty = known, h, true
	c.Log.Info().Int("loki_targets", len(in.Loki)).Msg("log forwarding targets updated")
	return nil
}
