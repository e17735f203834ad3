package charm

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
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
	// Peer is what the peer relation adds to the agent (nil without one).
	Peer *PeerAgent
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
	ids, err := c.liveRelationIDs(ctx, rt, endpoint)
	if err != nil {
		return nil, err
	}
	var out []relation
	for _, id := range ids {
		r := relation{ID: id}
		if r.Units, err = rt.RelationList(ctx, id); err != nil {
			return nil, fmt.Errorf("relation-list %s: %w", id, err)
		}
		// The remote application is known without asking when a unit or the hook names it.
		known := ""
		if len(r.Units) > 0 {
			known, _, _ = strings.Cut(r.Units[0], "/")
		}
		if r.App, err = c.remoteApp(ctx, rt, id, known); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// liveRelationIDs is relation-ids without the relation going away in -relation-broken.
func (c *Context) liveRelationIDs(ctx context.Context, rt RelationTools, endpoint string) ([]string, error) {
	ids, err := c.relationIDs(ctx, rt, endpoint)
	if err != nil {
		return nil, fmt.Errorf("relation-ids %s: %w", endpoint, err)
	}
	if !strings.HasSuffix(c.Env.Name, "-relation-broken") || c.Env.Kind != "hooks" {
		return ids, nil
	}
	return slices.DeleteFunc(slices.Clone(ids), func(id string) bool { return id == c.Env.RelationID }), nil
}

// relationRefs lists an endpoint's live relations without relation-list (a process per
// relation): publishing needs only their IDs, and the one remote application a full update
// reads by name (falcosidekick's) is in the cache from an earlier hook, or asked once.
func (c *Context) relationRefs(ctx context.Context, rt RelationTools, endpoint string, old *RelationCache) ([]relation, error) {
	ids, err := c.liveRelationIDs(ctx, rt, endpoint)
	if err != nil {
		return nil, err
	}
	out := make([]relation, 0, len(ids))
	for _, id := range ids {
		r := relation{ID: id}
		if endpoint == EndpointHTTP {
			known := ""
			if old != nil { // a relation's remote application never changes
				known = old.HTTP[id].App
			}
			if r.App, err = c.remoteApp(ctx, rt, id, known); err != nil {
				return nil, err
			}
		}
		out = append(out, r)
	}
	return out, nil
}

// remoteApp is relation id's remote application: known when the caller has it, the hook's
// own when the hook is about that relation, otherwise asked (relation-list --app).
func (c *Context) remoteApp(ctx context.Context, rt RelationTools, id, known string) (string, error) {
	switch {
	case known != "":
		return known, nil
	case id == c.Env.RelationID && c.Env.RemoteApp != "":
		return c.Env.RemoteApp, nil
	}
	app, err := rt.RelationApp(ctx, id)
	if err != nil {
		return "", fmt.Errorf("relation-list --app %s: %w", id, err)
	}
	return app, nil
}

// allEndpoints are the charm's relation endpoints that every reconcile looks at.
var allEndpoints = []string{EndpointCertificates, EndpointMetrics, EndpointDashboard, EndpointLogging, EndpointHTTP, PeerEndpoint}

type relIDsResult struct {
	ids []string
	err error
}

// relIDsBatch is the hook's one round of relation-ids, for every endpoint; res is filled before
// done is closed.
type relIDsBatch struct {
	done chan struct{}
	res  map[string]relIDsResult
}

// relationIDs is relation-ids for endpoint. Every hook tool is a process and a round trip to
// the controller, and every full update asks for all endpoints: the first call (or
// prefetchRelationIDs, earlier) asks for all of them at once, concurrently (the unit agent
// serves hook tools in parallel), and the hook's later calls read the answers. Relations do not
// change during a hook.
func (c *Context) relationIDs(ctx context.Context, rt RelationTools, endpoint string) ([]string, error) {
	b := c.relIDsStart(ctx, rt)
	select {
	case <-b.done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	r, ok := b.res[endpoint]
	if !ok {
		return rt.RelationIDs(ctx, endpoint)
	}
	return r.ids, r.err
}

// relIDsStart starts the hook's relation-ids batch unless it has started already.
func (c *Context) relIDsStart(ctx context.Context, rt RelationTools) *relIDsBatch {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.relIDs != nil {
		return c.relIDs
	}
	b := &relIDsBatch{done: make(chan struct{}), res: make(map[string]relIDsResult, len(allEndpoints))}
	c.relIDs = b
	go func() {
		defer close(b.done)
		results := make([]relIDsResult, len(allEndpoints))
		var wg sync.WaitGroup
		for i, ep := range allEndpoints {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ids, err := rt.RelationIDs(ctx, ep)
				results[i] = relIDsResult{ids, err}
			}()
		}
		wg.Wait()
		for i, ep := range allEndpoints {
			b.res[ep] = results[i]
		}
	}()
	return b
}

// prefetchRelationIDs starts the relation-ids batch as a hook that will do a full update (any
// but a relation hook on a cached endpoint) begins, concurrently with config-get.
func (c *Context) prefetchRelationIDs(ctx context.Context) {
	rt, ok := c.Tools.(RelationTools)
	if ep, _ := c.relationHook(); !ok || ep != "" {
		return
	}
	c.relIDsStart(ctx, rt)
}

// RelationCache is what the remote applications contributed, per relation and (for Loki) per
// unit, kept in the workload manifest so that a relation hook re-reads only what it is about.
type RelationCache struct {
	// Loki: relation ID → remote unit → its endpoint (or the problem with it).
	Loki map[string]map[string]RemoteEntry `json:"loki"`
	// HTTP: relation ID → the provider's url (or the problem with it).
	HTTP map[string]RemoteEntry `json:"http"`
	// Certificates is the certificates relation as of the last full update (ID "" when there is
	// none; nil in a manifest an older charm wrote). A relation hook on one of the endpoints
	// above takes it from here instead of asking relation-ids for every endpoint: the
	// certificates relation's own hooks are full updates, so it cannot have changed unseen.
	Certificates *RelationRef `json:"certificates,omitempty"`
}

// RelationRef names one relation and its remote application.
type RelationRef struct {
	ID  string `json:"id"`
	App string `json:"app,omitempty"`
}

// primeRelations gives a relation hook on a cached endpoint the certificates relation from the
// manifest (see RelationCache.Certificates); other hooks look it up.
func (c *Context) primeRelations(m *manifest) {
	if ep, _ := c.relationHook(); ep == "" || m.Relations == nil || m.Relations.Certificates == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.certRel = &relation{ID: m.Relations.Certificates.ID, App: m.Relations.Certificates.App}
}

// recordCertificates keeps the certificates relation this hook found in the cache.
func (c *Context) recordCertificates(cache *RelationCache) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.certRel != nil {
		cache.Certificates = &RelationRef{ID: c.certRel.ID, App: c.certRel.App}
	}
}

// RemoteEntry is one remote contribution: a URL, or why it is ignored. App names the remote
// application for status messages.
type RemoteEntry struct {
	App     string `json:"app"`
	URL     string `json:"url,omitempty"`
	Problem string `json:"problem,omitempty"`
}

// Integrations reads the relations, publishes our side of each (application data on the
// leader, unit data on every unit) and returns what the workload needs from them. Malformed
// remote data never fails the hook: that relation is ignored and named in Problems. Only hook
// tool failures are errors.
//
// Every hook tool is a process and a round trip to the controller, so a relation hook does only
// its own work: -created publishes our data on that relation, -joined/-changed re-read the one
// remote unit (or application) that changed, -departed and -broken forget it; the rest comes
// from the cache in the workload manifest. Every other hook (config-changed, leader-elected,
// upgrade-charm, pebble-ready, update-status...), and any hook without a cache (a new
// container), reads and publishes everything, so a missed or changed value (leadership,
// webhook-port, follow-interval) is always corrected.
func (c *Context) Integrations(ctx context.Context, s *Settings, m *manifest) (*Integrations, error) {
	in := &Integrations{}
	rt, ok := c.Tools.(RelationTools)
	if !ok {
		return in, nil
	}
	if m == nil {
		m = &manifest{}
	}
	before, _ := json.Marshal(m.Relations)
	hookEP, kind := c.relationHook()
	var err error
	switch {
	case c.peerHook() && m.Relations != nil:
		// Peer and notice hooks change nothing other relations contributed: use the cache.
	case hookEP != "" && m.Relations != nil:
		err = c.relationHookUpdate(ctx, rt, s, m.Relations, hookEP, kind)
	default:
		m.Relations, err = c.fullUpdate(ctx, rt, s, m.Relations)
	}
	if err != nil {
		return nil, err
	}
	c.recordCertificates(m.Relations)
	if after, _ := json.Marshal(m.Relations); string(after) != string(before) {
		m.dirty = true // the cache is saved with the manifest
	}
	cache := m.Relations
	for _, id := range sortedKeys(cache.Loki) {
		units := cache.Loki[id]
		var targets []LokiTarget
		problem := ""
		for _, u := range sortedKeys(units) {
			e := units[u]
			if e.Problem != "" && problem == "" {
				problem = fmt.Sprintf("%s (%s) %s %s", id, e.App, u, e.Problem)
			}
			if e.URL != "" {
				targets = append(targets, LokiTarget{Name: "loki-" + strings.ReplaceAll(u, "/", "-"), URL: e.URL})
			}
		}
		if problem != "" { // one bad unit: the whole relation is ignored
			in.Problems = append(in.Problems, problem)
			continue
		}
		in.Loki = append(in.Loki, targets...)
	}
	for _, id := range sortedKeys(cache.HTTP) {
		e := cache.HTTP[id]
		switch {
		case e.Problem != "":
			in.Problems = append(in.Problems, fmt.Sprintf("%s (%s) url: %s", id, e.App, e.Problem))
		case e.URL != "":
			in.HTTPURLs = append(in.HTTPURLs, e.URL)
		}
	}
	sort.Slice(in.Loki, func(i, j int) bool { return in.Loki[i].Name < in.Loki[j].Name })
	sort.Strings(in.HTTPURLs)
	if p := in.Problem(); p != "" {
		c.Log.Warn().Str("problem", p).Msg("relation data ignored")
	}
	return in, nil
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// fullUpdate reads every relation and publishes our data on all of them (old is the previous
// cache, nil when there is none).
func (c *Context) fullUpdate(ctx context.Context, rt RelationTools, s *Settings, old *RelationCache) (*RelationCache, error) {
	cache := &RelationCache{Loki: map[string]map[string]RemoteEntry{}, HTTP: map[string]RemoteEntry{}}
	all := map[string][]relation{}
	some := false
	var live []string
	for _, ep := range []string{EndpointMetrics, EndpointDashboard, EndpointLogging, EndpointHTTP} {
		rels, err := c.relationRefs(ctx, rt, ep, old)
		if err != nil {
			return nil, err
		}
		all[ep] = rels
		some = some || len(rels) > 0
		for _, r := range rels {
			live = append(live, r.ID)
		}
	}
	c.juju().pruneBags(live)
	// The certificates relation too, so relation hooks need not ask (RelationCache).
	if _, _, err := c.certificatesRelation(ctx, rt); err != nil {
		return nil, err
	}
	if !some {
		return cache, nil
	}
	// Publishing ours and reading theirs are independent chains of tool calls: they run
	// concurrently (the unit agent serves hook tools in parallel). Each goroutine writes its
	// own map of the cache.
	var wg sync.WaitGroup
	var lokiErr, httpErr error
	wg.Add(2)
	go func() {
		defer wg.Done()
		for _, r := range all[EndpointLogging] {
			units, err := rt.RelationList(ctx, r.ID) // Loki's endpoints are per unit
			if err != nil {
				lokiErr = fmt.Errorf("relation-list %s: %w", r.ID, err)
				return
			}
			entries := map[string]RemoteEntry{}
			for _, u := range units {
				app, _, _ := strings.Cut(u, "/")
				if entries[u], err = c.lokiEntry(ctx, rt, r.ID, app, u); err != nil {
					lokiErr = err
					return
				}
			}
			cache.Loki[r.ID] = entries
		}
	}()
	go func() {
		defer wg.Done()
		for _, r := range all[EndpointHTTP] {
			e, err := c.httpEntry(ctx, rt, r.ID, r.App)
			if err != nil {
				httpErr = err
				return
			}
			cache.HTTP[r.ID] = e
		}
	}()
	pubErr := func() error {
		leader, err := rt.IsLeader(ctx)
		if err != nil {
			return fmt.Errorf("is-leader: %w", err)
		}
		for ep, rels := range all {
			if err := c.publish(ctx, rt, s, ep, rels, leader); err != nil {
				return err
			}
		}
		return nil
	}()
	wg.Wait()
	for _, err := range []error{pubErr, lokiErr, httpErr} {
		if err != nil {
			return nil, err
		}
	}
	return cache, nil
}

// relationHookUpdate does a relation hook's own part (see Integrations).
func (c *Context) relationHookUpdate(ctx context.Context, rt RelationTools, s *Settings, cache *RelationCache, ep, kind string) error {
	if cache.Loki == nil {
		cache.Loki = map[string]map[string]RemoteEntry{}
	}
	if cache.HTTP == nil {
		cache.HTTP = map[string]RemoteEntry{}
	}
	id, app, unit := c.Env.RelationID, c.Env.RemoteApp, c.Env.RemoteUnit
	switch kind {
	case "created":
		leader, err := rt.IsLeader(ctx)
		if err != nil {
			return fmt.Errorf("is-leader: %w", err)
		}
		return c.publish(ctx, rt, s, ep, []relation{{ID: id, App: app}}, leader)
	case "broken":
		delete(cache.Loki, id)
		delete(cache.HTTP, id)
		return nil
	case "departed":
		if ep == EndpointLogging {
			delete(cache.Loki[id], unit)
		}
		return nil
	}
	// joined or changed
	switch ep {
	case EndpointLogging:
		if unit == "" {
			return nil // application data: Loki's endpoints are per unit
		}
		e, err := c.lokiEntry(ctx, rt, id, app, unit)
		if err != nil {
			return err
		}
		if cache.Loki[id] == nil {
			cache.Loki[id] = map[string]RemoteEntry{}
		}
		cache.Loki[id][unit] = e
	case EndpointHTTP:
		e, err := c.httpEntry(ctx, rt, id, app)
		if err != nil {
			return err
		}
		cache.HTTP[id] = e
	}
	return nil
}

// publish writes our databags for an endpoint's relations.
func (c *Context) publish(ctx context.Context, rt RelationTools, s *Settings, ep string, rels []relation, leader bool) error {
	if len(rels) == 0 {
		return nil
	}
	topo := TopologyOf(c.Env)
	var app, unit map[string]string
	var err error
	switch ep {
	case EndpointMetrics:
		addr, err := rt.IngressAddress(ctx, EndpointMetrics)
		if err != nil {
			return fmt.Errorf("network-get %s: %w", EndpointMetrics, err)
		}
		unit = map[string]string{"prometheus_scrape_unit_address": addr, "prometheus_scrape_unit_name": c.Env.Unit}
		if leader {
			app, err = ScrapeAppData(topo, metricsPortFor(s.WebhookPort), s.FollowInterval.Seconds())
		}
	case EndpointDashboard:
		if leader {
			app, err = DashboardAppData(topo)
		}
	case EndpointLogging:
		if leader {
			app, err = LokiAppData(topo)
		}
	}
	if err != nil {
		return err
	}
	for _, r := range rels {
		if leader && len(app) > 0 {
			if err := c.setBag(ctx, rt, r.ID, true, app); err != nil {
				return fmt.Errorf("relation-set --app %s: %w", r.ID, err)
			}
		}
		if len(unit) > 0 {
			if err := c.setBag(ctx, rt, r.ID, false, unit); err != nil {
				return fmt.Errorf("relation-set %s: %w", r.ID, err)
			}
		}
	}
	return nil
}

// setBag is relation-set, unless this unit's record (jujuRecord.Bags) says the bag already holds
// exactly this data. In leader-elected the application bags are written regardless: another
// leader may have written them meanwhile.
func (c *Context) setBag(ctx context.Context, rt RelationTools, relID string, app bool, data map[string]string) error {
	rec := c.juju()
	key := relID + " unit"
	if app {
		key = relID + " app"
	}
	b, err := json.Marshal(data) // map keys sorted: the same data, the same hash
	if err != nil {
		return err
	}
	h := sha(b)
	if rec.Bags[key] == h && !(app && c.Env.Kind == "hooks" && c.Env.Name == "leader-elected") {
		return nil
	}
	if err := rec.forget(); err != nil {
		return err
	}
	if err := rt.RelationSet(ctx, relID, app, data); err != nil {
		return err
	}
	if rec.Bags == nil {
		rec.Bags = map[string]string{}
	}
	rec.Bags[key] = h
	return nil
}

// lokiEntry reads one Loki unit's endpoint ({"url": ...}); a unit that has not published yet
// gives an empty entry.
func (c *Context) lokiEntry(ctx context.Context, rt RelationTools, id, app, u string) (RemoteEntry, error) {
	data, err := c.relationGet(ctx, rt, id, u, false)
	if err != nil {
		return RemoteEntry{}, fmt.Errorf("relation-get %s %s: %w", id, u, err)
	}
	e := RemoteEntry{App: app}
	raw, ok := data["endpoint"]
	if !ok || raw == "" {
		return e, nil
	}
	var ep struct {
		URL string `json:"url"`
	}
	if err := json.Unmarshal([]byte(raw), &ep); err != nil {
		e.Problem = `endpoint is not JSON {"url": ...}`
		return e, nil
	}
	if err := checkURL(ep.URL); err != nil {
		e.Problem = "endpoint url: " + err.Error()
		return e, nil
	}
	e.URL = ep.URL
	return e, nil
}

// httpEntry reads the falcosidekick provider's url from its application data.
func (c *Context) httpEntry(ctx context.Context, rt RelationTools, id, app string) (RemoteEntry, error) {
	data, err := c.relationGet(ctx, rt, id, app, true)
	if err != nil {
		return RemoteEntry{}, fmt.Errorf("relation-get %s %s: %w", id, app, err)
	}
	e := RemoteEntry{App: app}
	raw, ok := data["url"]
	if !ok || raw == "" {
		return e, nil // the provider has not published yet
	}
	u, err := parseEndpointURL(raw)
	if err != nil {
		e.Problem = err.Error()
		return e, nil
	}
	e.URL = u
	return e, nil
}

// prefetch is a relation hook's own remote data, asked for as the hook starts.
type prefetch struct {
	id, who string
	app     bool
	done    chan struct{}
	data    map[string]string
	err     error
}

// prefetchRelationData starts reading what a -joined or -changed hook on the logging or
// http-endpoint relation is about (the remote unit's, or falcosidekick's application, data) in
// the background: the hook needs it whatever else it finds, and asking concurrently with
// config-get saves one hook-tool round trip. relationGet hands the answer over.
func (c *Context) prefetchRelationData(ctx context.Context) {
	rt, ok := c.Tools.(RelationTools)
	ep, kind := c.relationHook()
	if !ok || kind != "joined" && kind != "changed" || c.Env.RelationID == "" {
		return
	}
	p := &prefetch{id: c.Env.RelationID, done: make(chan struct{})}
	switch {
	case ep == EndpointLogging && c.Env.RemoteUnit != "":
		p.who = c.Env.RemoteUnit
	case ep == EndpointHTTP && c.Env.RemoteApp != "":
		p.who, p.app = c.Env.RemoteApp, true
	default:
		return
	}
	c.mu.Lock()
	c.prefetched = p
	c.mu.Unlock()
	go func() {
		defer close(p.done)
		p.data, p.err = rt.RelationGet(ctx, p.id, p.who, p.app)
	}()
}

// relationGet is rt.RelationGet, answered by the prefetch when that asked the same.
func (c *Context) relationGet(ctx context.Context, rt RelationTools, id, who string, app bool) (map[string]string, error) {
	c.mu.Lock()
	p := c.prefetched
	c.mu.Unlock()
	if p != nil && p.id == id && p.who == who && p.app == app {
		select {
		case <-p.done:
			return p.data, p.err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return rt.RelationGet(ctx, id, who, app)
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
