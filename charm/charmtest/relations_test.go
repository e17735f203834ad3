package charmtest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/canonical/pebble/client"
	jujucharm "github.com/juju/charm/v12"
	"gopkg.in/yaml.v3"

	"github.com/falco-k8s/falco-k8s/charm"
	"github.com/falco-k8s/falco-k8s/internal/charmpack"
	"github.com/falco-k8s/falco-k8s/internal/fakejuju/harness"
)

// lokiSink speaks Loki's push API (POST /loki/api/v1/push, JSON streams, 204) and keeps every
// line with its stream labels.
type lokiSink struct {
	srv   *httptest.Server
	mu    sync.Mutex
	lines []lokiLine
}

type lokiLine struct {
	Labels map[string]string
	Line   string
}

func newLokiSink(t *testing.T) *lokiSink {
	s := &lokiSink{}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/loki/api/v1/push" {
			http.Error(w, "not found", http.StatusNotFound)
			return
		}
		var req struct {
			Streams []struct {
				Stream map[string]string `json:"stream"`
				Values [][2]string       `json:"values"`
			} `json:"streams"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		s.mu.Lock()
		for _, st := range req.Streams {
			for _, v := range st.Values {
				s.lines = append(s.lines, lokiLine{st.Stream, v[1]})
			}
		}
		s.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *lokiSink) dump() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return fmt.Sprintf("loki received %d lines: %v", len(s.lines), s.lines)
}

func (s *lokiSink) url() string { return s.srv.URL + "/loki/api/v1/push" }

func (s *lokiSink) find(substr string) (lokiLine, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range s.lines {
		if strings.Contains(l.Line, substr) {
			return l, true
		}
	}
	return lokiLine{}, false
}

// alertSink is an HTTP endpoint like falcosidekick's: Falco JSON alerts POSTed one by one.
type alertSink struct {
	srv    *httptest.Server
	mu     sync.Mutex
	alerts []map[string]any
}

func newAlertSink(t *testing.T) *alertSink {
	s := &alertSink{}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var a map[string]any
		if json.NewDecoder(r.Body).Decode(&a) == nil {
			s.mu.Lock()
			s.alerts = append(s.alerts, a)
			s.mu.Unlock()
		}
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *alertSink) count() int { s.mu.Lock(); defer s.mu.Unlock(); return len(s.alerts) }

func waitUntil(t *testing.T, what string, cond func() bool, dump ...func() string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			for _, d := range dump {
				t.Log(d())
			}
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (u *unit) runs(what string, runs ...harness.Run) {
	u.tb.Helper()
	for _, r := range runs {
		u.outputs.WriteString(r.Stdout + r.Stderr)
		if r.Code != 0 {
			u.tb.Fatalf("%s: hook failed: %s", what, r)
		}
	}
}

func (u *unit) plan() map[string]any {
	u.tb.Helper()
	c, err := client.New(&client.Config{Socket: u.pebble.Socket})
	if err != nil {
		u.tb.Fatal(err)
	}
	b, err := c.PlanBytes(nil)
	if err != nil {
		u.tb.Fatal(err)
	}
	var p map[string]any
	if err := yaml.Unmarshal(b, &p); err != nil {
		u.tb.Fatal(err)
	}
	return p
}

func (u *unit) agentConfig() map[string]any {
	u.tb.Helper()
	b, err := os.ReadFile(u.root + charm.AgentConfigPath)
	if err != nil {
		u.tb.Fatal(err)
	}
	var m map[string]any
	if err := yaml.Unmarshal(b, &m); err != nil {
		u.tb.Fatal(err)
	}
	return m
}

func (u *unit) metricsURL(path string) string {
	return fmt.Sprintf("http://127.0.0.1:%d%s", u.port+2, path)
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// decodeDashboard decodes the dashboards databag with Python's lzma, the charm library's own
// codec.
func decodeDashboard(t *testing.T, dashboards string) map[string]any {
	t.Helper()
	cmd := exec.Command("python3", "-c", `import sys, json, base64, lzma
d = json.load(sys.stdin)
t = d["templates"]["file:falco-k8s"]
assert t["charm"] == "falco-k8s" and t["inject_dropdowns"] is True and t["juju_topology"]["application"] == "falco-k8s", t
assert d["uuid"]
sys.stdout.write(lzma.decompress(base64.b64decode(t["content"])).decode())`)
	cmd.Stdin = strings.NewReader(dashboards)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("python3 lzma decode: %v\n%s", err, out)
	}
	var dash map[string]any
	if err := json.Unmarshal(out, &dash); err != nil {
		t.Fatalf("dashboard is not JSON: %v", err)
	}
	return dash
}

var metricNameRe = regexp.MustCompile(`falco_k8s_[a-z_]+`)

// checkDashboardMetrics checks the dashboard is Grafana JSON whose every expression names a
// metric the agent exports: in its live /metrics, or (series that appear only after an event,
// e.g. a follower success or a journal drop) defined in the agent's metrics source.
func checkDashboardMetrics(t *testing.T, dash map[string]any, live string) {
	t.Helper()
	if dash["title"] == "" || dash["uid"] == nil {
		t.Fatalf("dashboard without title/uid")
	}
	var src strings.Builder
	for _, f := range []string{"agent/metrics/metrics.go", "agent/journal/journal.go"} {
		b, err := os.ReadFile(filepath.Join(repoRoot, f))
		if err != nil {
			t.Fatal(err)
		}
		src.Write(b)
	}
	panels, _ := dash["panels"].([]any)
	if len(panels) < 6 {
		t.Fatalf("%d panels", len(panels))
	}
	exprs := 0
	for _, p := range panels {
		pm := p.(map[string]any)
		ds, _ := pm["datasource"].(map[string]any)
		if ds["uid"] != "${prometheusds}" {
			t.Errorf("panel %v: datasource %v", pm["title"], pm["datasource"])
		}
		for _, tg := range pm["targets"].([]any) {
			expr := tg.(map[string]any)["expr"].(string)
			exprs++
			names := metricNameRe.FindAllString(expr, -1)
			if len(names) == 0 {
				t.Errorf("expression names no agent metric: %s", expr)
			}
			for _, n := range names {
				base := strings.TrimSuffix(n, "_bucket")
				if strings.Contains(live, "\n"+n) || strings.Contains(live, "# TYPE "+base+" ") {
					continue
				}
				suffix := strings.TrimPrefix(base, "falco_k8s_")
				if !strings.Contains(src.String(), `Name: "`+suffix+`"`) {
					t.Errorf("expression %q: %s is not a metric of the agent", expr, n)
				}
			}
		}
	}
	if exprs < 10 {
		t.Errorf("only %d expressions", exprs)
	}
}

// TestRelations is the relations' done-means: through the real charm binary, fake Juju with
// relations, real Pebble and the real agent, every relation goes through created, joined,
// changed, departed and broken on a leader and on a non-leader, and produces the databags and
// the workload configuration that follow from them.
func TestRelations(t *testing.T) {
	for _, leader := range []bool{true, false} {
		t.Run(fmt.Sprintf("leader=%v", leader), func(t *testing.T) { testRelations(t, leader) })
	}
}

func testRelations(t *testing.T, leader bool) {
	u := newUnit(t, unitOpts{})
	if err := u.SetLeader(leader); err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"install", "config-changed", "falco-pebble-ready"} {
		u.hook(h)
	}
	u.wantStatus("active", "rules")

	// The agent's /metrics is on the pod address, and nothing else unauthenticated is.
	code, live := httpGet(t, u.metricsURL("/metrics"))
	if code != 200 || !strings.Contains(live, "falco_k8s_events_evaluated_total") {
		t.Fatalf("metrics listener: %d", code)
	}
	for _, p := range []string{"/status", "/alerts", "/rules"} {
		if c, _ := httpGet(t, u.metricsURL(p)); c != 404 {
			t.Errorf("%s on the metrics listener: %d", p, c)
		}
	}
	cfg := u.agentConfig()
	out := cfg["outputs"].(map[string]any)
	fields := out["output_fields"].(map[string]any)
	if fields["juju_model"] != "audit" || fields["juju_unit"] != "falco-k8s/0" || fields["juju_application"] != "falco-k8s" ||
		fields["juju_charm"] != "falco-k8s" || fields["juju_model_uuid"] == "" {
		t.Errorf("output_fields %v", fields)
	}

	t.Run("metrics-endpoint", func(t *testing.T) {
		id, r := u.AddRelation("metrics-endpoint", "prometheus")
		u.runs("created", r)
		u.runs("joined", u.JoinUnit(id, "prometheus/0", nil)...)
		rel := u.Relation(id)
		if rel.LocalUnit["prometheus_scrape_unit_address"] != "127.0.0.1" || rel.LocalUnit["prometheus_scrape_unit_name"] != "falco-k8s/0" {
			t.Errorf("unit data %v", rel.LocalUnit)
		}
		if !leader {
			if len(rel.LocalApp) != 0 {
				t.Errorf("non-leader wrote application data %v", rel.LocalApp)
			}
		} else {
			var jobs []struct {
				MetricsPath   string `json:"metrics_path"`
				StaticConfigs []struct {
					Targets []string `json:"targets"`
				} `json:"static_configs"`
			}
			if err := json.Unmarshal([]byte(rel.LocalApp["scrape_jobs"]), &jobs); err != nil || len(jobs) != 1 ||
				jobs[0].MetricsPath != "/metrics" || jobs[0].StaticConfigs[0].Targets[0] != fmt.Sprintf("*:%d", u.port+2) {
				t.Errorf("scrape_jobs %q (%v)", rel.LocalApp["scrape_jobs"], err)
			}
			var meta map[string]string
			if err := json.Unmarshal([]byte(rel.LocalApp["scrape_metadata"]), &meta); err != nil || meta["model"] != "audit" ||
				meta["application"] != "falco-k8s" || meta["charm_name"] != "falco-k8s" || meta["unit"] != "falco-k8s/0" || meta["model_uuid"] == "" {
				t.Errorf("scrape_metadata %q", rel.LocalApp["scrape_metadata"])
			}
			var rules charm.RuleGroups
			if err := json.Unmarshal([]byte(rel.LocalApp["alert_rules"]), &rules); err != nil || len(rules.Groups) != 1 || len(rules.Groups[0].Rules) < 7 {
				t.Errorf("alert_rules %q", rel.LocalApp["alert_rules"])
			}
			if strings.Contains(rel.LocalApp["alert_rules"], "juju_model") {
				t.Errorf("alert rules carry topology selectors; Prometheus' side injects them")
			}
		}
		u.runs("changed", u.SetRemoteUnitData(id, "prometheus/0", map[string]string{"x": "y"}))
		u.runs("departed", u.DepartUnit(id, "prometheus/0"))
		u.runs("broken", u.RemoveRelation(id)...)
		u.wantStatus("active", "rules")
	})

	t.Run("grafana-dashboard", func(t *testing.T) {
		id, r := u.AddRelation("grafana-dashboard", "grafana")
		u.runs("created", r)
		u.runs("joined", u.JoinUnit(id, "grafana/0", nil)...)
		rel := u.Relation(id)
		if !leader {
			if len(rel.LocalApp) != 0 {
				t.Errorf("non-leader wrote application data")
			}
		} else {
			checkDashboardMetrics(t, decodeDashboard(t, rel.LocalApp["dashboards"]), live)
			before := rel.LocalApp["dashboards"]
			u.hook("update-status")
			if u.Relation(id).LocalApp["dashboards"] != before {
				t.Errorf("dashboards changed without a reason (Grafana would reload it every hook)")
			}
		}
		u.runs("departed", u.DepartUnit(id, "grafana/0"))
		u.runs("broken", u.RemoveRelation(id)...)
	})

	t.Run("logging", func(t *testing.T) {
		loki := newLokiSink(t)
		started := u.agentStatus().StartedAt
		id, r := u.AddRelation("logging", "loki")
		u.runs("created", r)
		u.runs("joined", u.JoinUnit(id, "loki/0", map[string]string{"endpoint": fmt.Sprintf(`{"url": %q}`, loki.url())})...)
		rel := u.Relation(id)
		if leader {
			var meta map[string]string
			if err := json.Unmarshal([]byte(rel.LocalApp["metadata"]), &meta); err != nil || meta["application"] != "falco-k8s" {
				t.Errorf("metadata %q", rel.LocalApp["metadata"])
			}
			if !strings.Contains(rel.LocalApp["alert_rules"], "count_over_time") {
				t.Errorf("alert_rules %q", rel.LocalApp["alert_rules"])
			}
		} else if len(rel.LocalApp) != 0 {
			t.Errorf("non-leader wrote application data")
		}
		targets, _ := u.plan()["log-targets"].(map[string]any)
		tgt, _ := targets["loki-loki-0"].(map[string]any)
		if tgt["location"] != loki.url() || fmt.Sprint(tgt["services"]) != "[agent]" {
			t.Fatalf("log target %v", targets)
		}
		if !u.agentStatus().StartedAt.Equal(started) {
			t.Errorf("a Loki unit joining restarted the agent")
		}
		postPrivilegedPod(t, u, "default", "loki-1")
		waitUntil(t, "the alert line in Loki", func() bool { _, ok := loki.find("privileged"); return ok }, loki.dump)
		l, _ := loki.find("privileged")
		for k, want := range map[string]string{"juju_model": "audit", "juju_application": "falco-k8s", "juju_unit": "falco-k8s/0", "juju_charm": "falco-k8s"} {
			if l.Labels[k] != want {
				t.Errorf("Loki label %s = %q, want %q (labels %v)", k, l.Labels[k], want, l.Labels)
			}
		}
		checkLokiRuleFilter(t, l.Line)

		// Malformed remote data: the relation is ignored with a status naming it; no failed hook.
		u.runs("changed", u.SetRemoteUnitData(id, "loki/0", map[string]string{"endpoint": "not json"}))
		u.wantStatus("blocked", fmt.Sprintf("logging:%d (loki) loki/0 endpoint is not JSON", id))
		u.runs("changed", u.SetRemoteUnitData(id, "loki/0", map[string]string{"endpoint": `{"url": "ftp://x"}`}))
		u.wantStatus("blocked", "not an http(s) URL")
		u.runs("changed", u.SetRemoteUnitData(id, "loki/0", map[string]string{"endpoint": fmt.Sprintf(`{"url": %q}`, loki.url())}))
		u.wantStatus("active", "rules")

		// Departed: the target stops receiving (services -all); broken leaves no live target.
		u.runs("departed", u.DepartUnit(id, "loki/0"))
		targets, _ = u.plan()["log-targets"].(map[string]any)
		if tgt, _ := targets["loki-loki-0"].(map[string]any); fmt.Sprint(tgt["services"]) != "[-all]" {
			t.Errorf("departed Loki unit still a target: %v", targets)
		}
		u.runs("broken", u.RemoveRelation(id)...)
		u.wantStatus("active", "rules")
	})

	t.Run("http-endpoint", func(t *testing.T) {
		sink := newAlertSink(t)
		id, r := u.AddRelation("http-endpoint", "falcosidekick")
		u.runs("created", r)
		u.runs("joined", u.JoinUnit(id, "falcosidekick/0", nil)...)
		// The provider's leader publishes the URL in application data (a plain string, as
		// falcosidekick-k8s writes it).
		u.runs("changed", u.SetRemoteAppData(id, map[string]string{"url": sink.srv.URL}))
		u.wantStatus("active", "rules")
		out := u.agentConfig()["outputs"].(map[string]any)["http"].(map[string]any)
		if fmt.Sprint(out["extra_urls"]) != "["+sink.srv.URL+"]" {
			t.Fatalf("http output %v", out)
		}
		postPrivilegedPod(t, u, "default", "sidekick-1")
		waitUntil(t, "the alert at falcosidekick", func() bool { return sink.count() > 0 })
		sink.mu.Lock()
		f, _ := sink.alerts[0]["output_fields"].(map[string]any)
		sink.mu.Unlock()
		if f["juju_model"] != "audit" || f["juju_unit"] != "falco-k8s/0" {
			t.Errorf("alert output_fields %v", f)
		}
		// A JSON-encoded string is accepted too; a URL that is not one is refused by name.
		u.runs("changed", u.SetRemoteAppData(id, map[string]string{"url": fmt.Sprintf("%q", sink.srv.URL)}))
		u.wantStatus("active", "rules")
		u.runs("changed", u.SetRemoteAppData(id, map[string]string{"url": "not a url"}))
		u.wantStatus("blocked", fmt.Sprintf("http-endpoint:%d (falcosidekick) url: not an http(s) URL", id))
		u.runs("departed", u.DepartUnit(id, "falcosidekick/0"))
		u.runs("broken", u.RemoveRelation(id)...)
		u.wantStatus("active", "rules")
		out = u.agentConfig()["outputs"].(map[string]any)["http"].(map[string]any)
		if fmt.Sprint(out["extra_urls"]) != "[]" {
			t.Errorf("http output after broken: %v", out)
		}
	})

	// stop and remove never touch the terminating pod.
	before := u.agentStatus().StartedAt
	u.hook("stop")
	u.hook("remove")
	u.wantStatus("maintenance", "")
	if !u.agentStatus().StartedAt.Equal(before) {
		t.Errorf("stop/remove restarted the agent")
	}
	for _, call := range u.State().Calls[len(u.State().Calls)-2:] {
		if !strings.HasPrefix(call, "status-set") {
			t.Errorf("stop/remove ran %q", call)
		}
	}
}

// TestRelationsDeclared: metadata.yaml declares the relations with the interfaces the COS and
// falcosidekick charms use, Juju would send their hooks, and charmcraft.yaml builds for Ubuntu
// 22.04 and 24.04 on amd64 and arm64 like make charm's manifests.
func TestRelationsDeclared(t *testing.T) {
	f, err := os.Open(filepath.Join(repoRoot, "metadata.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := jujucharm.ReadMeta(f)
	if err != nil {
		t.Fatal(err)
	}
	for ep, want := range map[string]struct {
		iface string
		role  jujucharm.RelationRole
	}{
		charm.EndpointMetrics: {"prometheus_scrape", jujucharm.RoleProvider}, charm.EndpointDashboard: {"grafana_dashboard", jujucharm.RoleProvider},
		charm.EndpointLogging: {"loki_push_api", jujucharm.RoleRequirer}, charm.EndpointHTTP: {"falcosidekick_http_endpoint", jujucharm.RoleRequirer},
	} {
		rels := m.Provides
		if want.role == jujucharm.RoleRequirer {
			rels = m.Requires
		}
		if r, ok := rels[ep]; !ok || r.Interface != want.iface {
			t.Errorf("endpoint %s: %+v, want %s %s", ep, r, want.role, want.iface)
		}
		for _, kind := range []string{"created", "joined", "changed", "departed", "broken"} {
			if !m.Hooks()[ep+"-relation-"+kind] {
				t.Errorf("Juju would not send %s-relation-%s", ep, kind)
			}
		}
	}
	if m.Requires[charm.EndpointHTTP].Limit != 1 {
		t.Errorf("http-endpoint limit %d, want 1 (one falcosidekick)", m.Requires[charm.EndpointHTTP].Limit)
	}
	b, err := os.ReadFile(filepath.Join(repoRoot, "charmcraft.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var cc struct {
		Type  string `yaml:"type"`
		Bases []struct {
			RunOn []struct {
				Name, Channel string
				Architectures []string
			} `yaml:"run-on"`
		} `yaml:"bases"`
	}
	if err := yaml.Unmarshal(b, &cc); err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, base := range cc.Bases {
		for _, r := range base.RunOn {
			for _, a := range r.Architectures {
				got[r.Name+"@"+r.Channel+"/"+a] = true
			}
		}
	}
	for _, want := range []string{"ubuntu@22.04/amd64", "ubuntu@24.04/amd64", "ubuntu@22.04/arm64", "ubuntu@24.04/arm64"} {
		if !got[want] {
			t.Errorf("charmcraft.yaml lacks %s (has %v)", want, got)
		}
		arch := want[strings.Index(want, "/")+1:]
		channel := want[len("ubuntu@"):strings.Index(want, "/")]
		if !strings.Contains(string(charmpack.Manifest(arch)), `channel: "`+channel+`"`) {
			t.Errorf("make charm's manifest for %s lacks %s", arch, channel)
		}
	}
	if cc.Type != "charm" {
		t.Errorf("charmcraft.yaml type %q", cc.Type)
	}
}

// TestJujuLogAndCleanActionStdout: what the charm does at INFO reaches juju-log, a steady-state
// hook makes no juju-log call, and an action's stdout (returned to the user) stays empty.
func TestJujuLogAndCleanActionStdout(t *testing.T) {
	u := newUnit(t, unitOpts{})
	for _, h := range []string{"install", "config-changed", "falco-pebble-ready"} {
		u.hook(h)
	}
	info := false
	for _, l := range u.State().Logs {
		info = info || (l.Level == "INFO" && strings.Contains(l.Message, "workload files updated"))
	}
	if !info {
		t.Errorf("pushing the workload was not logged at INFO through juju-log: %+v", u.State().Logs)
	}
	// Termination fits Kubernetes' 30 s: the agent drains 20 s, Pebble kills 5 s later; only the
	// slow alive check is the liveness probe, Pebble restarts the agent on agent-restart.
	plan := u.plan()
	svc := plan["services"].(map[string]any)["agent"].(map[string]any)
	wh := u.agentConfig()["webhook"].(map[string]any)
	if svc["kill-delay"] != "25s" || wh["shutdown_timeout"] != "20s" {
		t.Errorf("kill-delay %v, shutdown_timeout %v", svc["kill-delay"], wh["shutdown_timeout"])
	}
	checks := plan["checks"].(map[string]any)
	levels := map[string]any{}
	for name, c := range checks {
		levels[name] = c.(map[string]any)["level"]
	}
	if levels["agent-alive"] != "alive" || levels["agent-ready"] != "ready" || (levels["agent-restart"] != nil && levels["agent-restart"] != "unset") {
		t.Errorf("check levels %v", levels)
	}
	if fmt.Sprint(svc["on-check-failure"]) != "map[agent-restart:restart]" {
		t.Errorf("on-check-failure %v", svc["on-check-failure"])
	}
	n := len(u.State().Calls)
	u.hook("update-status")
	for _, c := range u.State().Calls[n:] {
		if strings.HasPrefix(c, "juju-log") {
			t.Errorf("steady-state hook called %q", c)
		}
	}
	r, a, err := u.Action("show-rules", map[string]any{"format": "json", "filter": "shell"})
	if err != nil || r.Code != 0 || a.Failed {
		t.Fatalf("show-rules: %v %s %+v", err, r, a)
	}
	if r.Stdout != "" {
		t.Errorf("action stdout %q, want empty (it is returned to the user)", r.Stdout)
	}
	if a.Results["return-code"] != "0" {
		t.Errorf("results %v", a.Results)
	}
}

// checkLokiRuleFilter applies the LogQL alert rule's line filter (RE2, as Loki evaluates it) to a
// line as Pebble delivered it to Loki: it must match exactly the Critical-or-worse alerts.
func checkLokiRuleFilter(t *testing.T, line string) {
	t.Helper()
	rules := charm.LokiRules(charm.Topology{Model: "audit", App: "falco-k8s", Charm: charm.CharmName})
	parts := strings.Split(rules.Groups[0].Rules[0].Expr, "`")
	if len(parts) != 3 {
		t.Fatalf("no line filter in %s", rules.Groups[0].Rules[0].Expr)
	}
	filter := regexp.MustCompile(parts[1])
	var prio string
	if doc := map[string]any{}; json.Unmarshal([]byte(line), &doc) == nil {
		prio, _ = doc["priority"].(string)
	} else if _, after, ok := strings.Cut(line, ": "); ok {
		prio, _, _ = strings.Cut(after, " ")
	}
	if prio == "" {
		t.Fatalf("no priority in the alert line %q", line)
	}
	want := prio == "Critical" || prio == "Alert" || prio == "Emergency"
	if got := filter.MatchString(line); got != want {
		t.Errorf("Loki rule filter on a %s alert line: matched %v, want %v\n%s", prio, got, want, line)
	}
}
