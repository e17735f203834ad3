package charm

import (
	"bytes"
	"crypto/sha3"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"sync"

	"github.com/ulikunitz/xz"
)

// The databags of the COS interfaces, as Canonical's charm libraries write them
// (charm-relation-interfaces: prometheus_scrape v0, grafana_dashboard v0, loki_push_api v1):
// every value is a JSON document in a string.

// ScrapeAppData is prometheus_scrape's application data: one job scraping every unit's metrics
// listener ("*" is replaced by each unit's prometheus_scrape_unit_address by Prometheus' charm),
// the topology, and the alert rules (no topology selectors: the Prometheus side injects them).
func ScrapeAppData(t Topology, metricsPort int, followIntervalSeconds float64) (map[string]string, error) {
	jobs := []map[string]any{{
		"metrics_path":   "/metrics",
		"static_configs": []map[string]any{{"targets": []string{fmt.Sprintf("*:%d", metricsPort)}}},
	}}
	meta := map[string]string{"model": t.Model, "model_uuid": t.ModelUUID, "application": t.App, "unit": t.Unit, "charm_name": t.Charm}
	return jsonValues(map[string]any{
		"scrape_jobs":     jobs,
		"scrape_metadata": meta,
		"alert_rules":     PrometheusRules(t, followIntervalSeconds),
	})
}

// RuleGroups is a Prometheus or Loki rules file.
type RuleGroups struct {
	Groups []RuleGroup `json:"groups" yaml:"groups"`
}

// RuleGroup is one group of alerting rules.
type RuleGroup struct {
	Name  string `json:"name" yaml:"name"`
	Rules []Rule `json:"rules" yaml:"rules"`
}

// Rule is one alerting rule.
type Rule struct {
	Alert       string            `json:"alert" yaml:"alert"`
	Expr        string            `json:"expr" yaml:"expr"`
	For         string            `json:"for,omitempty" yaml:"for,omitempty"`
	Labels      map[string]string `json:"labels" yaml:"labels"`
	Annotations map[string]string `json:"annotations" yaml:"annotations"`
}

// groupPrefix is how the libraries name rule groups: the topology identifier first, so groups
// of several applications never collide in one Prometheus or Loki.
func groupPrefix(t Topology) string {
	uuid := t.ModelUUID
	if len(uuid) > 8 {
		uuid = uuid[:8]
	}
	return fmt.Sprintf("%s_%s_%s", t.Model, uuid, t.App)
}

// PrometheusRules are the agent's alerts: each names the condition it fires on.
func PrometheusRules(t Topology, followIntervalSeconds float64) RuleGroups {
	rule := func(name, expr, forDur, severity, summary, desc string) Rule {
		return Rule{Alert: name, Expr: expr, For: forDur, Labels: map[string]string{"severity": severity},
			Annotations: map[string]string{"summary": summary, "description": desc}}
	}
	if followIntervalSeconds <= 0 {
		followIntervalSeconds = 6 * 3600
	}
	return RuleGroups{Groups: []RuleGroup{{Name: groupPrefix(t) + "_falco_k8s_alerts", Rules: []Rule{
		rule("FalcoK8sNoAuditEvents", "increase(falco_k8s_events_received_total[15m]) == 0", "", "warning",
			"No audit events received for 15 minutes",
			"{{ $labels.juju_unit }} received no kube-apiserver audit events in 15 minutes: check the API server's --audit-webhook-config-file and audit policy (juju run <unit> webhook-config)."),
		rule("FalcoK8sEventsDropped", "increase(falco_k8s_events_dropped_total[5m]) > 0", "", "warning",
			"Audit events dropped before evaluation",
			"{{ $labels.juju_unit }} dropped audit events ({{ $labels.reason }}): they were not evaluated against the rules."),
		rule("FalcoK8sWebhookThrottled", "increase(falco_k8s_queue_throttled_total[5m]) > 0", "", "warning",
			"Audit webhook answering 429",
			"{{ $labels.juju_unit }} answered 429 to kube-apiserver: the evaluation queue or request slots were full; the API server retries, but its audit buffer may overflow."),
		rule("FalcoK8sRulesCandidateIgnored", `increase(falco_k8s_ruleset_reloads_total{result="ignored"}[10m]) > 0`, "", "warning",
			"A rules candidate was ignored",
			"{{ $labels.juju_unit }} ignored a new ruleset ({{ $labels.origin }}): it did not validate; the previous rules keep running. See the unit's status or /status."),
		rule("FalcoK8sFollowerFailing", fmt.Sprintf("time() - falco_k8s_follow_last_success_timestamp_seconds > %g", 2*followIntervalSeconds), "", "warning",
			"Rules follower failing for more than two intervals",
			"{{ $labels.juju_unit }} has not checked {{ $labels.ref }} successfully for more than two follow intervals."),
		rule("FalcoK8sJournalDrops", "increase(falco_k8s_journal_dropped_total[10m]) > 0", "", "warning",
			"Alerts dropped from the alert journal",
			"{{ $labels.juju_unit }} could not keep every alert in its journal (disk slow or full): review-alerts and tune-rules miss them."),
		rule("FalcoK8sOutputDeliveryFailures", "increase(falco_k8s_output_dropped_total[5m]) > 0", "", "critical",
			"Alerts not delivered",
			"{{ $labels.juju_unit }} gave up delivering alerts to output {{ $labels.output }} (buffer full or retries exhausted)."),
	}}}}
}

// LokiAppData is loki_push_api's requirer application data: our topology and LogQL alert
// rules over the agent's JSON alert lines.
func LokiAppData(t Topology) (map[string]string, error) {
	meta := map[string]string{"model": t.Model, "model_uuid": t.ModelUUID, "application": t.App, "unit": t.Unit, "charm_name": t.Charm}
	return jsonValues(map[string]any{"metadata": meta, "alert_rules": LokiRules(t)})
}

// LokiRules alert on the agent's JSON alert lines forwarded by Pebble. LogQL needs a stream
// selector, so (as the library does when it expands %%juju_topology%%) the topology is in it.
func LokiRules(t Topology) RuleGroups {
	sel := fmt.Sprintf(`{juju_model=%q, juju_model_uuid=%q, juju_application=%q}`, t.Model, t.ModelUUID, t.App)
	labels := func(sev string) map[string]string {
		return map[string]string{"severity": sev, "juju_model": t.Model, "juju_model_uuid": t.ModelUUID, "juju_application": t.App, "juju_charm": t.Charm}
	}
	return RuleGroups{Groups: []RuleGroup{{Name: groupPrefix(t) + "_falco_k8s_alert_lines", Rules: []Rule{
		{Alert: "FalcoK8sCriticalAlert",
			// Matches the alert whether stdout carries Falco's text line ("<time>: Critical ...",
			// anchored: the output text after it may say ": Critical " too) or its JSON object
			// ("priority":"Critical", which a JSON string value cannot contain unescaped), i.e.
			// whatever json-output says.
			Expr:        fmt.Sprintf(`sum by (juju_unit) (count_over_time(%s |~ %s [5m])) > 0`, sel, "`"+`^[^ {]+: (Critical|Alert|Emergency) |"priority":"(Critical|Alert|Emergency)"`+"`"),
			Labels:      labels("critical"),
			Annotations: map[string]string{"summary": "Critical Falco alert", "description": "{{ $labels.juju_unit }} raised a Critical (or more severe) alert on the Kubernetes audit log in the last 5 minutes."}},
	}}}}
}

// dashboardTemplate is the library's key for a dashboard shipped as a file.
const dashboardTemplate = "file:falco-k8s"

var (
	dashOnce    sync.Once
	dashContent string
	dashErr     error
)

// DashboardAppData is grafana_dashboard's application data: templates keyed file:<name>, the
// content base64 of the xz-compressed dashboard JSON (cosl's LZMABase64), and a uuid. The
// library writes a random uuid to force an update; a hash of the content does the same when the
// dashboard changes and keeps the bag stable otherwise, so Grafana is not reloaded every hook.
func DashboardAppData(t Topology) (map[string]string, error) {
	dashOnce.Do(func() {
		var b []byte
		if b, dashErr = json.Marshal(Dashboard()); dashErr != nil {
			return
		}
		var buf bytes.Buffer
		// A 64 KiB dictionary holds the whole dashboard (~6 KB of JSON): the default 8 MiB one
		// compresses it no better and allocating it cost ~10 ms of every hook that publishes.
		w, err := xz.WriterConfig{DictCap: 64 << 10}.NewWriter(&buf)
		if err != nil {
			dashErr = err
			return
		}
		if _, err := w.Write(b); err != nil {
			dashErr = err
			return
		}
		if dashErr = w.Close(); dashErr == nil {
			dashContent = base64.StdEncoding.EncodeToString(buf.Bytes())
		}
	})
	if dashErr != nil {
		return nil, fmt.Errorf("dashboard: %w", dashErr)
	}
	topo := map[string]string{"model": t.Model, "model_uuid": t.ModelUUID, "application": t.App, "unit": t.Unit}
	altUID := sha3.SumSHAKE256([]byte(t.Charm+"-"+dashboardTemplate), 8)
	sum := sha3.Sum256([]byte(dashContent + t.Model + t.ModelUUID + t.App))
	h := hex.EncodeToString(sum[:16])
	uuid := h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
	return jsonValues(map[string]any{"dashboards": map[string]any{
		"templates": map[string]any{dashboardTemplate: map[string]any{
			"charm": t.Charm, "content": dashContent, "juju_topology": topo, "inject_dropdowns": true,
			"dashboard_alt_uid": hex.EncodeToString(altUID),
		}},
		"uuid": uuid,
	}})
}

func jsonValues(m map[string]any) (map[string]string, error) {
	out := make(map[string]string, len(m))
	for k, v := range m {
		b, err := json.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("relation data %s: %w", k, err)
		}
		out[k] = string(b)
	}
	return out, nil
}

// Dashboard is the Grafana dashboard: every expression is PromQL over the agent's metrics, on
// the ${prometheusds} data source Grafana's charm provides (it injects the topology dropdowns
// and label matchers).
func Dashboard() map[string]any {
	id := 0
	panel := func(title, unit string, x, y, w, h int, kind string, exprs ...string) map[string]any {
		id++
		var targets []map[string]any
		for i, e := range exprs {
			legend, expr, _ := strings.Cut(e, "|")
			targets = append(targets, map[string]any{"expr": expr, "legendFormat": legend, "refId": string(rune('A' + i)),
				"datasource": map[string]string{"type": "prometheus", "uid": "${prometheusds}"}})
		}
		return map[string]any{
			"id": id, "title": title, "type": kind, "datasource": map[string]string{"type": "prometheus", "uid": "${prometheusds}"},
			"gridPos":     map[string]int{"x": x, "y": y, "w": w, "h": h},
			"fieldConfig": map[string]any{"defaults": map[string]any{"unit": unit}, "overrides": []any{}},
			"targets":     targets,
		}
	}
	panels := []map[string]any{
		panel("Audit events per second", "ops", 0, 0, 12, 8, "timeseries",
			"received {{juju_unit}}|sum by (juju_unit) (rate(falco_k8s_events_received_total[5m]))",
			"evaluated {{juju_unit}}|sum by (juju_unit) (rate(falco_k8s_events_evaluated_total[5m]))",
			"dropped {{reason}} {{juju_unit}}|sum by (juju_unit, reason) (rate(falco_k8s_events_dropped_total[5m]))"),
		panel("Alerts by rule and priority", "short", 12, 0, 12, 8, "timeseries",
			"{{rule}} ({{priority}})|sum by (rule, priority) (increase(falco_k8s_alerts_total[5m]))"),
		panel("Webhook latency", "s", 0, 8, 12, 8, "timeseries",
			"p50|histogram_quantile(0.5, sum by (le) (rate(falco_k8s_webhook_request_duration_seconds_bucket[5m])))",
			"p99|histogram_quantile(0.99, sum by (le) (rate(falco_k8s_webhook_request_duration_seconds_bucket[5m])))",
			"batch p99|histogram_quantile(0.99, sum by (le) (rate(falco_k8s_batch_latency_seconds_bucket[5m])))"),
		panel("Queue depth", "short", 12, 8, 12, 8, "timeseries",
			"events {{juju_unit}}|falco_k8s_queue_events",
			"429 per second {{juju_unit}}|rate(falco_k8s_queue_throttled_total[5m])"),
		panel("Ruleset generation", "none", 0, 16, 6, 6, "stat",
			"{{juju_unit}}|falco_k8s_ruleset_generation"),
		panel("Rules", "none", 6, 16, 6, 6, "stat",
			"{{state}}|max by (state) (falco_k8s_ruleset_rules)"),
		panel("Last accepted / ignored candidate", "short", 12, 16, 12, 6, "timeseries",
			"{{origin}} {{result}}|sum by (origin, result) (increase(falco_k8s_ruleset_reloads_total[1h]))"),
		panel("Follower health: seconds since last successful check", "s", 0, 22, 12, 8, "timeseries",
			"{{ref}}|time() - falco_k8s_follow_last_success_timestamp_seconds",
			"{{ref}} errors|sum by (ref) (increase(falco_k8s_follow_checks_total{result=\"error\"}[1h]))"),
		panel("Output deliveries", "short", 12, 22, 12, 8, "timeseries",
			"sent {{output}}|sum by (output) (rate(falco_k8s_output_sent_total[5m]))",
			"failed {{output}}|sum by (output) (rate(falco_k8s_output_failures_total[5m]))",
			"dropped {{output}}|sum by (output) (rate(falco_k8s_output_dropped_total[5m]))",
			"journal dropped|sum (rate(falco_k8s_journal_dropped_total[5m]))"),
	}
	uidHash := sha3.Sum256([]byte(CharmName + "/src/grafana_dashboards/falco-k8s.json"))
	return map[string]any{
		"title": "Falco for Kubernetes audit", "uid": hex.EncodeToString(uidHash[:])[:40], "editable": true,
		"schemaVersion": 39, "tags": []string{"falco", "kubernetes", "charm: " + CharmName},
		"time": map[string]string{"from": "now-6h", "to": "now"}, "refresh": "1m",
		"templating": map[string]any{"list": []any{}},
		"panels":     panels,
	}
}
