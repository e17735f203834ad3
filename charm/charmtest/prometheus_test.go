package charmtest

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/falco-k8s/falco-k8s/charm"
)

// needTool finds a Debian tool the test runs; with CI=true a missing one fails the test.
func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s not installed (Debian package prometheus; .ci/run installs it)", name)
		}
		t.Skipf("%s not installed (apt-get install prometheus)", name)
	}
	return p
}

// scrapeConfig expands the charm's scrape_jobs as the prometheus-k8s charm does: one job per
// entry named after the topology, the "*" host replaced by every unit's
// prometheus_scrape_unit_address, and the topology as target labels.
func scrapeConfig(t *testing.T, app map[string]string, units map[string]map[string]string) []map[string]any {
	t.Helper()
	var jobs []map[string]any
	var meta map[string]string
	if err := json.Unmarshal([]byte(app["scrape_jobs"]), &jobs); err != nil {
		t.Fatalf("scrape_jobs: %v", err)
	}
	if err := json.Unmarshal([]byte(app["scrape_metadata"]), &meta); err != nil {
		t.Fatalf("scrape_metadata: %v", err)
	}
	var out []map[string]any
	for i, j := range jobs {
		var static []map[string]any
		for _, sc := range j["static_configs"].([]any) {
			for _, target := range sc.(map[string]any)["targets"].([]any) {
				tg := target.(string)
				for unit, data := range units {
					addr := data["prometheus_scrape_unit_address"]
					if !strings.HasPrefix(tg, "*:") || addr == "" {
						continue
					}
					static = append(static, map[string]any{"targets": []string{addr + strings.TrimPrefix(tg, "*")},
						"labels": map[string]string{"juju_model": meta["model"], "juju_model_uuid": meta["model_uuid"],
							"juju_application": meta["application"], "juju_charm": meta["charm_name"], "juju_unit": unit}})
				}
			}
		}
		out = append(out, map[string]any{
			"job_name":        fmt.Sprintf("juju_%s_%s_%s_prometheus_scrape_%d", meta["model"], meta["model_uuid"][:7], meta["application"], i),
			"metrics_path":    j["metrics_path"],
			"scrape_interval": "1s",
			"static_configs":  static,
		})
	}
	return out
}

// promQuery runs an instant query against Prometheus' HTTP API.
func promQuery(t *testing.T, base, q string) []struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
} {
	t.Helper()
	resp, err := http.Get(base + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var r struct {
		Status string `json:"status"`
		Data   struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if json.NewDecoder(resp.Body).Decode(&r) != nil || r.Status != "success" {
		return nil
	}
	return r.Data.Result
}

// TestPrometheusScrapesAgent: Debian's Prometheus, configured from the charm's metrics-endpoint
// databags, scrapes the real agent in the real Pebble, and the evaluated-events and alert
// counters arrive with the topology labels; the charm's alert rules load into it.
func TestPrometheusScrapesAgent(t *testing.T) {
	prom := needTool(t, "prometheus")
	u := newUnit(t, unitOpts{})
	for _, h := range []string{"install", "config-changed", "falco-pebble-ready"} {
		u.hook(h)
	}
	id, r := u.AddRelation("metrics-endpoint", "prometheus")
	u.runs("created", r)
	u.runs("joined", u.JoinUnit(id, "prometheus/0", nil)...)
	rel := u.Relation(id)

	dir := t.TempDir()
	rulesFile := filepath.Join(dir, "rules.json") // JSON is YAML
	if err := os.WriteFile(rulesFile, []byte(rel.LocalApp["alert_rules"]), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := map[string]any{
		"global":         map[string]any{"scrape_interval": "1s", "evaluation_interval": "1s"},
		"rule_files":     []string{rulesFile},
		"scrape_configs": scrapeConfig(t, rel.LocalApp, map[string]map[string]string{"falco-k8s/0": rel.LocalUnit}),
	}
	b, _ := yaml.Marshal(cfg)
	cfgFile := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgFile, b, 0o600); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	logs := &syncBuffer{}
	cmd := exec.Command(prom, "--config.file="+cfgFile, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--log.level=warn")
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM) //nolint:errcheck // may be gone
		cmd.Wait()                          //nolint:errcheck // exit status irrelevant
		if t.Failed() {
			t.Logf("prometheus config:\n%s\nlogs:\n%s", b, logs.String())
		}
	})
	base := "http://" + addr
	postPrivilegedPod(t, u, "default", "prom-1")
	deadline := time.Now().Add(40 * time.Second)
	want := map[string]bool{"falco_k8s_events_evaluated_total": false, "falco_k8s_alerts_total": false}
	for q := range want {
		for !want[q] {
			for _, s := range promQuery(t, base, q) {
				if s.Metric["juju_unit"] == "falco-k8s/0" && s.Metric["juju_model"] == "audit" && s.Metric["juju_charm"] == "falco-k8s" && s.Value[1] != "0" {
					want[q] = true
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s never arrived in Prometheus with the topology labels", q)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	// The rules loaded (Prometheus refuses a rules file it cannot parse at start-up).
	resp, err := http.Get(base + "/api/v1/rules")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var rr struct {
		Data struct {
			Groups []struct {
				Rules []any `json:"rules"`
			} `json:"groups"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&rr); err != nil || len(rr.Data.Groups) != 1 || len(rr.Data.Groups[0].Rules) != 7 {
		t.Fatalf("rules in Prometheus: %+v (%v)", rr, err)
	}
}

var labelRef = regexp.MustCompile(`\{\{ \$labels\.([a-z_]+) \}\}`)

// TestAlertRulesPromtool checks the charm's alert_rules with `promtool check rules`, and with
// `promtool test rules` that each alert fires on the condition it names and not otherwise.
func TestAlertRulesPromtool(t *testing.T) {
	promtool := needTool(t, "promtool")
	topo := charm.Topology{Model: "audit", ModelUUID: "8b5d8b64-0000-4000-8000-000000000000", App: "falco-k8s", Unit: "falco-k8s/0", Charm: "falco-k8s"}
	rules := charm.PrometheusRules(topo, 3600)
	dir := t.TempDir()
	rb, _ := json.Marshal(rules)
	rulesFile := filepath.Join(dir, "rules.json")
	if err := os.WriteFile(rulesFile, rb, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(promtool, "check", "rules", rulesFile).CombinedOutput(); err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
	byName := map[string]charm.Rule{}
	for _, r := range rules.Groups[0].Rules {
		byName[r.Alert] = r
	}
	type series struct{ Series, Values string }
	type alert struct {
		Labels      map[string]string `yaml:"exp_labels"`
		Annotations map[string]string `yaml:"exp_annotations"`
	}
	expect := func(name string, labels map[string]string) alert {
		r := byName[name]
		l := map[string]string{"severity": r.Labels["severity"]}
		for k, v := range labels {
			l[k] = v
		}
		ann := map[string]string{}
		for k, v := range r.Annotations {
			ann[k] = labelRef.ReplaceAllStringFunc(v, func(m string) string { return l[labelRef.FindStringSubmatch(m)[1]] })
		}
		return alert{l, ann}
	}
	type check struct {
		EvalTime  string  `yaml:"eval_time"`
		AlertName string  `yaml:"alertname"`
		ExpAlerts []alert `yaml:"exp_alerts"`
	}
	type test struct {
		Interval    string   `yaml:"interval"`
		InputSeries []series `yaml:"input_series"`
		Alerts      []check  `yaml:"alert_rule_test"`
	}
	tests := []test{
		{"1m", []series{{`falco_k8s_events_received_total{instance="quiet"}`, "5x20"}, {`falco_k8s_events_received_total{instance="busy"}`, "0+10x20"}},
			[]check{{"16m", "FalcoK8sNoAuditEvents", []alert{expect("FalcoK8sNoAuditEvents", map[string]string{"instance": "quiet"})}}}},
		{"1m", []series{{`falco_k8s_events_dropped_total{reason="oversize"}`, "0 0 0 1 1 1"}},
			[]check{{"2m", "FalcoK8sEventsDropped", nil}, {"5m", "FalcoK8sEventsDropped", []alert{expect("FalcoK8sEventsDropped", map[string]string{"reason": "oversize"})}}}},
		{"1m", []series{{`falco_k8s_queue_throttled_total`, "0 0 2 2 2"}},
			[]check{{"1m", "FalcoK8sWebhookThrottled", nil}, {"4m", "FalcoK8sWebhookThrottled", []alert{expect("FalcoK8sWebhookThrottled", nil)}}}},
		{"1m", []series{{`falco_k8s_ruleset_reloads_total{origin="follower",result="ignored"}`, "0 1 1"}, {`falco_k8s_ruleset_reloads_total{origin="follower",result="accepted"}`, "0 1 2"}},
			[]check{{"2m", "FalcoK8sRulesCandidateIgnored", []alert{expect("FalcoK8sRulesCandidateIgnored", map[string]string{"origin": "follower", "result": "ignored"})}}}},
		// Follow interval 1h: no success for more than 2h fires, 1h does not.
		{"1m", []series{{`falco_k8s_follow_last_success_timestamp_seconds{ref="ghcr.io/acme/rules:1"}`, "0x130"}},
			[]check{{"1h", "FalcoK8sFollowerFailing", nil}, {"2h1m", "FalcoK8sFollowerFailing", []alert{expect("FalcoK8sFollowerFailing", map[string]string{"ref": "ghcr.io/acme/rules:1"})}}}},
		{"1m", []series{{`falco_k8s_journal_dropped_total{reason="full"}`, "0 3 3"}},
			[]check{{"2m", "FalcoK8sJournalDrops", []alert{expect("FalcoK8sJournalDrops", map[string]string{"reason": "full"})}}}},
		{"1m", []series{{`falco_k8s_output_dropped_total{output="http"}`, "0 0 4"}, {`falco_k8s_output_dropped_total{output="file"}`, "0 0 0"}},
			[]check{{"2m", "FalcoK8sOutputDeliveryFailures", []alert{expect("FalcoK8sOutputDeliveryFailures", map[string]string{"output": "http"})}}}},
	}
	covered := map[string]bool{}
	for _, tc := range tests {
		for _, c := range tc.Alerts {
			covered[c.AlertName] = true
		}
	}
	for name := range byName {
		if !covered[name] {
			t.Errorf("alert %s has no promtool test", name)
		}
	}
	tb, _ := yaml.Marshal(map[string]any{"rule_files": []string{rulesFile}, "evaluation_interval": "1m", "tests": tests})
	testFile := filepath.Join(dir, "tests.yml")
	if err := os.WriteFile(testFile, tb, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(promtool, "test", "rules", testFile).CombinedOutput(); err != nil {
		t.Fatalf("promtool test rules: %v\n%s\n%s", err, out, tb)
	}
}
