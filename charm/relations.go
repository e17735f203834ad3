package charm

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"sort"
	"strings"
)

// Relation endpoints in metadata.yaml.
const (
	EndpointMetrics   = "metrics-endpoint"  // provides prometheus_scrape
	EndpointDashboard = "grafana-dashboard" // provides grafana_dashboard
	EndpointLogging   = "logging"           // requires loki_push_api
	EndpointHTTP      = "http-endpoint"     // requires falcosidekick_http_endpoint
	// CharmName is metadata.yaml's name, the juju_charm topology label.
	CharmName = "falco-k8s"
)

// Topology is the Juju topology every alert, metric series and log line carries, so that data
// from several models can be told apart downstream.
type Topology struct {
	Model, ModelUUID, App, Unit, Charm string
}

// TopologyOf is the unit's topology.
func TopologyOf(env Env) Topology {
	return Topology{Model: env.Model, ModelUUID: env.ModelUUID, App: env.App, Unit: env.Unit, Charm: CharmName}
}

// Labels are the topology as the COS libraries label data (juju_model, ..., juju_charm).
func (t Topology) Labels() map[string]string {
	return map[string]string{"juju_model": t.Model, "juju_model_uuid": t.ModelUUID, "juju_application": t.App,
		"juju_unit": t.Unit, "juju_charm": t.Charm}
}

// LokiTarget is one Loki unit's push endpoint.
type LokiTarget struct {
	Name string // Pebble log-target name, from the Loki unit
	URL  string
}

// Integrations is what the relations contribute to the workload, plus the problems found in
// remote data (each naming its relation; that relation's data is ignored).
type Integrations struct {
	Loki     []LokiTarget
	HTTPURLs []string
	Problems []string
}

// Problem is the status message for ignored relation data, "" when there is none.
func (in *Integrations) Problem() string {
	if in == nil || len(in.Problems) == 0 {
		return ""
	}
	return "ignoring relation data: " + strings.Join(in.Problems, "; ")
}

// relation is one relation as the hook sees it.
type relation struct {
	ID, App string
	Units   []string
}

// relations lists an endpoint's live relations: in -relation-broken, Juju still lists the
// relation going away, so it is left out here.
func (c *Context) relations(ctx context.Context, rt RelationTools, endpoint string) ([]relation, error) {
	ids, err := rt.RelationIDs(ctx, endpoint)
	if err != nil {
		return nil, fmt.Errorf("relation-ids %s: %w", endpoint, err)
	}
	broken := strings.HasSuffix(c.Env.Name, "-relation-broken") && c.Env.Kind == "hooks"
	var out []relation
	for _, id := range ids {
		if broken && id == c.Env.RelationID {
			continue
		}
		r := relation{ID: id}
		if r.Units, err = rt.RelationList(ctx, id); err != nil {
			return nil, fmt.Errorf("relation-list %s: %w", id, err)
		}
		// The remote application is known without asking when a unit or the hook names it.
		switch {
		case len(r.Units) > 0:
			r.App, _, _ = strings.Cut(r.Units[0], "/")
		case id == c.Env.RelationID && c.Env.RemoteApp != "":
			r.App = c.Env.RemoteApp
		default:
			if r.App, err = rt.RelationApp(ctx, id); err != nil {
				return nil, fmt.Errorf("relation-list --app %s: %w", id, err)
			}
		}
		out = append(out, r)
	}
	return out, nil
}

// Integrations reads the relations, publishes our side of each (application data on the
// leader, unit data on every unit) and returns what the workload needs from them. Malformed
// remote data never fails the hook: that relation is ignored and named in Problems. Only hook
// tool failures are errors.
//
// Every hook tool is a process and a round trip to the controller, so a relation hook does only
// its own endpoint's work: it re-reads that endpoint's remote data, takes the other endpoints'
// contributions from the workload manifest's cache, and publishes only when its relation is
// created or joined. Every other hook (config-changed, leader-elected, upgrade-charm,
// pebble-ready, update-status...) reads and publishes everything, so a missed or changed
// value (leadership, webhook-port, follow-interval) is always corrected.
func (c *Context) Integrations(ctx context.Context, s *Settings, m *manifest) (*Integrations, error) {
	in := &Integrations{}
	rt, ok := c.Tools.(RelationTools)
	if !ok {
		return in, nil
	}
	endpoints := []string{EndpointMetrics, EndpointDashboard, EndpointLogging, EndpointHTTP}
	hookEP, kind := c.relationHook()
	cached := m != nil && m.Relations != nil
	scoped := hookEP != "" && cached
	if scoped {
		endpoints = []string{hookEP}
	}
	if m == nil {
		m = &manifest{}
	}
	before, _ := json.Marshal(m.Relations)
	if m.Relations == nil || !scoped {
		m.Relations = map[string]*Integrations{}
	}
	publish := !scoped || kind == "created" || kind == "joined"
	if scoped && !publish && (hookEP == EndpointMetrics || hookEP == EndpointDashboard) {
		endpoints = nil // nothing of theirs reaches the workload, and ours is already published
	}
	all := map[string][]relation{}
	some := false
	for _, ep := range endpoints {
		rels, err := c.relations(ctx, rt, ep)
		if err != nil {
			return nil, err
		}
		all[ep] = rels
		some = some || len(rels) > 0
	}
	leader := false
	if some && publish {
		var err error
		if leader, err = rt.IsLeader(ctx); err != nil {
			return nil, fmt.Errorf("is-leader: %w", err)
		}
	}
	topo := TopologyOf(c.Env)

	if rels := all[EndpointMetrics]; len(rels) > 0 && publish {
		addr, err := rt.IngressAddress(ctx, EndpointMetrics)
		if err != nil {
			return nil, fmt.Errorf("network-get %s: %w", EndpointMetrics, err)
		}
		unitData := map[string]string{"prometheus_scrape_unit_address": addr, "prometheus_scrape_unit_name": c.Env.Unit}
		var appData map[string]string
		if leader {
			if appData, err = ScrapeAppData(topo, metricsPortFor(s.WebhookPort), s.FollowInterval.Seconds()); err != nil {
				return nil, err
			}
		}
		if err := c.publish(ctx, rt, rels, leader, appData, unitData); err != nil {
			return nil, err
		}
	}
	if rels := all[EndpointDashboard]; len(rels) > 0 && leader {
		data, err := DashboardAppData(topo)
		if err != nil {
			return nil, err
		}
		if err := c.publish(ctx, rt, rels, leader, data, nil); err != nil {
			return nil, err
		}
	}
	if rels := all[EndpointLogging]; len(rels) > 0 {
		if leader {
			appData, err := LokiAppData(topo)
			if err != nil {
				return nil, err
			}
			if err := c.publish(ctx, rt, rels, leader, appData, nil); err != nil {
				return nil, err
			}
		}
		part := &Integrations{}
		for _, r := range rels {
			targets, problem, err := c.lokiTargets(ctx, rt, r)
			if err != nil {
				return nil, err
			}
			if problem != "" {
				part.Problems = append(part.Problems, problem)
				continue
			}
			part.Loki = append(part.Loki, targets...)
		}
		setPart(m, EndpointLogging, part)
	} else if contains(endpoints, EndpointLogging) {
		setPart(m, EndpointLogging, nil)
	}
	if rels := all[EndpointHTTP]; len(rels) > 0 {
		part := &Integrations{}
		for _, r := range rels {
			data, err := rt.RelationGet(ctx, r.ID, r.App, true)
			if err != nil {
				return nil, fmt.Errorf("relation-get %s %s: %w", r.ID, r.App, err)
			}
			raw, ok := data["url"]
			if !ok || raw == "" {
				continue // the provider has not published yet
			}
			u, err := parseEndpointURL(raw)
			if err != nil {
				part.Problems = append(part.Problems, fmt.Sprintf("%s (%s) url: %v", r.ID, r.App, err))
				continue
			}
			part.HTTPURLs = append(part.HTTPURLs, u)
		}
		setPart(m, EndpointHTTP, part)
	} else if contains(endpoints, EndpointHTTP) {
		setPart(m, EndpointHTTP, nil)
	}
	if after, _ := json.Marshal(m.Relations); string(after) != string(before) {
		m.dirty = true // the cache is saved with the manifest
	}
	{
		for _, ep := range []string{EndpointLogging, EndpointHTTP} {
			if p := m.Relations[ep]; p != nil {
				in.Loki = append(in.Loki, p.Loki...)
				in.HTTPURLs = append(in.HTTPURLs, p.HTTPURLs...)
				in.Problems = append(in.Problems, p.Problems...)
			}
		}
	}
	sort.Slice(in.Loki, func(i, j int) bool { return in.Loki[i].Name < in.Loki[j].Name })
	sort.Strings(in.HTTPURLs)
	if p := in.Problem(); p != "" {
		c.Log.Warn().Str("problem", p).Msg("relation data ignored")
	}
	return in, nil
}

func setPart(m *manifest, ep string, part *Integrations) {
	if part == nil {
		delete(m.Relations, ep)
		return
	}
	m.Relations[ep] = part
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// relationHook returns the endpoint and kind (created, joined, changed, departed, broken) of a
// relation hook on one of our endpoints, or "" outside one.
func (c *Context) relationHook() (endpoint, kind string) {
	if c.Env.Kind != "hooks" {
		return "", ""
	}
	for _, ep := range []string{EndpointMetrics, EndpointDashboard, EndpointLogging, EndpointHTTP} {
		if k, ok := strings.CutPrefix(c.Env.Name, ep+"-relation-"); ok {
			return ep, k
		}
	}
	return "", ""
}

// publish writes our data bags on every relation of an endpoint.
func (c *Context) publish(ctx context.Context, rt RelationTools, rels []relation, leader bool, app, unit map[string]string) error {
	for _, r := range rels {
		if leader && len(app) > 0 {
			if err := rt.RelationSet(ctx, r.ID, true, app); err != nil {
				return fmt.Errorf("relation-set --app %s: %w", r.ID, err)
			}
		}
		if len(unit) > 0 {
			if err := rt.RelationSet(ctx, r.ID, false, unit); err != nil {
				return fmt.Errorf("relation-set %s: %w", r.ID, err)
			}
		}
	}
	return nil
}

// lokiTargets reads every Loki unit's endpoint ({"url": ...}). A unit that has not published
// yet is skipped; one with malformed data makes the whole relation ignored.
func (c *Context) lokiTargets(ctx context.Context, rt RelationTools, r relation) ([]LokiTarget, string, error) {
	var out []LokiTarget
	units := append([]string(nil), r.Units...)
	sort.Strings(units)
	for _, u := range units {
		data, err := rt.RelationGet(ctx, r.ID, u, false)
		if err != nil {
			return nil, "", fmt.Errorf("relation-get %s %s: %w", r.ID, u, err)
		}
		raw, ok := data["endpoint"]
		if !ok || raw == "" {
			continue
		}
		var ep struct {
			URL string `json:"url"`
		}
		if err := json.Unmarshal([]byte(raw), &ep); err != nil {
			return nil, fmt.Sprintf("%s (%s) %s endpoint is not JSON {\"url\": ...}", r.ID, r.App, u), nil
		}
		if err := checkURL(ep.URL); err != nil {
			return nil, fmt.Sprintf("%s (%s) %s endpoint url: %v", r.ID, r.App, u, err), nil
		}
		out = append(out, LokiTarget{Name: "loki-" + strings.ReplaceAll(u, "/", "-"), URL: ep.URL})
	}
	return out, "", nil
}

// parseEndpointURL reads falcosidekick's url: a plain string (what the falco charms write) or a
// JSON-encoded one (ops' relation.save convention).
func parseEndpointURL(raw string) (string, error) {
	s := strings.TrimSpace(raw)
	if strings.HasPrefix(s, `"`) {
		if err := json.Unmarshal([]byte(s), &s); err != nil {
			return "", fmt.Errorf("not a JSON string")
		}
	}
	if err := checkURL(s); err != nil {
		return "", err
	}
	return s, nil
}

// checkURL accepts absolute http(s) URLs with a host. Errors never quote the URL: it may carry
// credentials.
func checkURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("not an http(s) URL")
	}
	return nil
}

// metricsPortFor is the agent's metrics listener (/metrics and probes only, on the pod
// address): two after the webhook port, or below it near the top of the range.
func metricsPortFor(webhook int) int {
	st := statusPortFor(webhook)
	for _, p := range []int{webhook + 2, webhook - 1, webhook - 2} {
		if p >= 1 && p <= 65535 && p != webhook && p != st {
			return p
		}
	}
	return webhook + 2
}
