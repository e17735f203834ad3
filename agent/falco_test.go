package agent

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/falco-k8s/falco-k8s/agent/config"
	"github.com/falco-k8s/falco-k8s/agent/status"
	"github.com/falco-k8s/falco-k8s/alerts"
	"github.com/falco-k8s/falco-k8s/engine"
	"github.com/falco-k8s/falco-k8s/internal/falcooracle"
	"github.com/falco-k8s/falco-k8s/internal/testshared"
	"github.com/falco-k8s/falco-k8s/rules"
)

// falcoSetup is a real Falco (../shared/falco/bin/falco) configured by the test: the k8saudit
// plugin's webhook on an ephemeral port, rules_files listing the agent's rules directory,
// watch_config_files on.
type falcoSetup struct {
	dir, bin, config, rulesDir, tokenFile, token string
	webhook                                      string // the k8saudit plugin's URL
}

// newFalcoSetup writes Falco's configuration. plugins are the plugin names to load (k8saudit
// first); extra is appended to the configuration (outputs); rulesFiles are listed after
// the rules directory.
func newFalcoSetup(t testing.TB, plugins []string, extra string, rulesFiles ...string) *falcoSetup {
	t.Helper()
	oracle := falcooracle.Require(t)
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	fs := &falcoSetup{dir: dir, bin: oracle.Binary(), config: filepath.Join(dir, "falco.yaml"),
		rulesDir: filepath.Join(dir, "falco-rules"), tokenFile: filepath.Join(dir, "alerts-token"), token: "s3cret-alerts-token",
		webhook: fmt.Sprintf("http://127.0.0.1:%d/k8s-audit", port)}
	if err := oracle.WriteConfig(fs.config, falcooracle.Config{Plugins: plugins, Webhook: fs.webhook,
		RulesFiles: append([]string{fs.rulesDir}, rulesFiles...), Extra: extra}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(fs.tokenFile, []byte(fs.token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return fs
}

// startFalcoAgent starts the agent with engine: falco on fs; it returns the agent and its API
// URL.
func startFalcoAgent(t testing.TB, fs *falcoSetup, overrides []string, opts Options) (*testAgent, string) {
	t.Helper()
	state := t.TempDir()
	alerts := filepath.Join(state, "alerts.log")
	local := filepath.Join(state, "local.yaml")
	if err := os.WriteFile(local, []byte("- list: local_list\n  items: [a]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	base := []string{"rules.files=[" + local + "]", "engine=falco", "falco.binary=" + fs.bin, "falco.config_file=" + fs.config, "falco.rules_dir=" + fs.rulesDir,
		"falco.alerts_token_file=" + fs.tokenFile, "rules.builtin=false", "outputs.file.path=" + alerts,
		"observability.listen=127.0.0.1:0", "rules.state_dir=" + state, "webhook.shutdown_timeout=20s"}
	cfg, err := config.Parse(nil, append(base, overrides...))
	if err != nil {
		t.Fatal(err)
	}
	if opts.ObservabilityListener == nil {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		opts.ObservabilityListener = ln
	}
	api := "http://" + opts.ObservabilityListener.Addr().String()
	a, err := New(context.Background(), cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ta := &testAgent{Agent: a, alerts: alerts, cancel: cancel, done: make(chan error, 1)}
	go func() { ta.done <- a.Run(ctx) }()
	if a.WebhookAddr() != nil {
		t.Fatal("engine: falco must not listen on the webhook port")
	}
	t.Cleanup(func() { ta.stop(t) })
	return ta, api
}

// dirFiles maps the names of rules_dir's files to their content.
func dirFiles(t testing.TB, dir string) map[string]string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = string(b)
	}
	return out
}

func sortedNames(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

const (
	macroFile = "- macro: cm_create\n  condition: ka.verb=create and ka.target.resource=configmaps\n"
	ruleFile  = "- rule: ConfigMap Created\n  desc: a configmap was created\n  condition: cm_create\n  output: cm created (user=%ka.user.name name=%ka.target.name)\n  priority: WARNING\n  source: k8s_audit\n"
	// jsonRule loads in the agent's engine (which implements the json plugin) but not in a Falco
	// that does not load the json plugin.
	jsonRule = "- rule: JSON Verb\n  desc: by the json plugin\n  condition: json.value[/verb] = create\n  output: json verb\n  priority: NOTICE\n  source: k8s_audit\n"
)

// TestFalcoRefusedCandidateNeverReachesRulesDir: a candidate the agent's engine accepts but the
// configured Falco refuses (its configuration does not load the json plugin) is ignored with
// Falco's own message, and Falco's rules directory keeps the previous set byte for byte.
func TestFalcoRefusedCandidateNeverReachesRulesDir(t *testing.T) {
	fs := newFalcoSetup(t, []string{"k8saudit"}, "")
	src := &fakeSource{sink: make(chan RuleSink, 1), initial: []SourceFile{{Name: "rules/macros.yaml", Content: []byte(macroFile), Ref: "reg/x:1", Digest: "sha256:aa"}}}
	ta, _ := startFalcoAgent(t, fs, nil, Options{Sources: []RuleSource{src}})
	<-src.sink
	before := dirFiles(t, fs.rulesDir)
	if got := sortedNames(before); len(got) != 2 || got[0] != "000-rules_macros.yaml" || !strings.HasSuffix(got[1], "_local.yaml") {
		t.Fatalf("rules_dir at start-up: %v", got)
	}

	// Valid for both: accepted and written in load order.
	v2 := []SourceFile{{Name: "rules/macros.yaml", Content: []byte(macroFile), Ref: "reg/x:2", Digest: "sha256:bb"},
		{Name: "rules/rules.yaml", Content: []byte(ruleFile), Ref: "reg/x:2", Digest: "sha256:bb"}}
	if _, err := ta.Offer("follower", v2); err != nil {
		t.Fatalf("valid candidate: %v", err)
	}
	after := dirFiles(t, fs.rulesDir)
	if got := sortedNames(after); len(got) != 3 || got[1] != "001-rules_rules.yaml" || after[got[1]] != ruleFile {
		t.Fatalf("rules_dir after the valid candidate: %v", got)
	}

	// The agent's engine accepts json.value; this Falco does not load the json plugin.
	v3 := append(v2[:2:2], SourceFile{Name: "rules/json.yaml", Content: []byte(jsonRule), Ref: "reg/x:3", Digest: "sha256:cc"})
	if _, _, err := engine.Load([]engine.File{{Name: "json.yaml", Content: []byte(jsonRule)}}, engine.DefaultOptions()); err != nil {
		t.Fatalf("the agent's own engine must accept the json rule: %v", err)
	}
	_, err := ta.Offer("follower", v3)
	if err == nil {
		t.Fatal("candidate Falco refuses was accepted")
	}
	st := ta.Status()
	if st.LastIgnored == nil || !strings.Contains(st.LastIgnored.Reason, "refused by Falco") ||
		!strings.Contains(st.LastIgnored.Reason, "rules/json.yaml") || !strings.Contains(st.LastIgnored.Reason, "(LOAD_ERR_COMPILE_CONDITION)") {
		t.Fatalf("ignored reason %+v, want Falco's message naming rules/json.yaml", st.LastIgnored)
	}
	t.Logf("ignored: %s", st.LastIgnored.Reason)
	if got := dirFiles(t, fs.rulesDir); fmt.Sprint(got) != fmt.Sprint(after) {
		t.Fatalf("rules_dir changed by a refused candidate: %v", sortedNames(got))
	}
	if st.Engine.Name != EngineFalco || st.Engine.Version != "0.44.1" || st.Engine.RulesDir != fs.rulesDir {
		t.Fatalf("engine %+v", st.Engine)
	}
}

// TestFalcoRefusedReloadRollsBack: Falco's configuration lists another rules file after the
// agent's directory, which uses a macro the running set defines. A candidate without the macro
// passes `falco -V` on its own but Falco's reload check (--dry-run) refuses it: the directory
// is switched back, /status and the ignored record carry Falco's message.
func TestFalcoRefusedReloadRollsBack(t *testing.T) {
	other := filepath.Join(t.TempDir(), "charm-extra.yaml")
	if err := os.WriteFile(other, []byte("- rule: Extra\n  desc: uses the followed macro\n  condition: cm_create\n  output: extra\n  priority: INFO\n  source: k8s_audit\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	fs := newFalcoSetup(t, []string{"k8saudit", "json"}, "", other)
	src := &fakeSource{sink: make(chan RuleSink, 1), initial: []SourceFile{{Name: "macros.yaml", Content: []byte(macroFile), Ref: "reg/x:1", Digest: "sha256:aa"}}}
	var changes []string
	ta, _ := startFalcoAgent(t, fs, nil, Options{Sources: []RuleSource{src}, OnChange: func(c status.Change) {
		changes = append(changes, fmt.Sprintf("%v %s", c.Accepted, c.Reason))
	}})
	<-src.sink
	before := dirFiles(t, fs.rulesDir)
	gen := ta.Status().Ruleset.Generation
	v2 := []SourceFile{{Name: "macros.yaml", Content: []byte("- macro: other\n  condition: ka.verb=delete\n"), Ref: "reg/x:2", Digest: "sha256:bb"}}
	if _, err := ta.Offer("follower", v2); err == nil || !strings.Contains(err.Error(), "Falco refused to reload") {
		t.Fatalf("Offer = %v, want Falco's reload refusal", err)
	}
	if got := dirFiles(t, fs.rulesDir); fmt.Sprint(got) != fmt.Sprint(before) {
		t.Fatalf("rules_dir not rolled back: %v", got)
	}
	st := ta.Status()
	if st.Ruleset.Generation != gen || st.Engine.LastRefusal == nil || !st.Engine.LastRefusal.RolledBack ||
		!strings.Contains(st.Engine.LastRefusal.Reason, "cm_create") {
		t.Fatalf("status: generation %d (was %d), refusal %+v", st.Ruleset.Generation, gen, st.Engine.LastRefusal)
	}
	if st.LastIgnored == nil || st.LastIgnored.Digest != "sha256:bb" || !strings.Contains(st.LastIgnored.Reason, "charm-extra.yaml") {
		t.Fatalf("ignored record %+v", st.LastIgnored)
	}
	if len(changes) == 0 || !strings.HasPrefix(changes[len(changes)-1], "false ") {
		t.Fatalf("no ignored change for the Kubernetes Event: %v", changes)
	}
	t.Logf("rolled back: %s", st.Engine.LastRefusal.Reason)
}

// TestFalcoAlertIngestion: Falco's JSON alerts posted to /falco/alerts/<token> reach the journal,
// the metrics and the file output (not stdout); a wrong or missing token gets 401, an oversize
// body 413, and the token never appears in the logs.
func TestFalcoAlertIngestion(t *testing.T) {
	fs := newFalcoSetup(t, []string{"k8saudit", "json"}, "")
	logs := &syncWriter{w: &bytes.Buffer{}}
	var stdout bytes.Buffer
	ta, api := startFalcoAgent(t, fs, []string{"falco.max_alert_size=4KiB"}, Options{Logger: zerolog.New(logs), Stdout: &stdout})
	alert := `{"hostname":"vm","output":"15:00:00.100000000: Warning cm created (user=alice name=cm1)","output_fields":{"evt.time":1796310000100000000,"ka.target.name":"cm1","ka.user.name":"alice"},"priority":"Warning","rule":"ConfigMap Created","source":"k8s_audit","tags":["k8s"],"time":"2026-12-03T15:00:00.100000000Z"}`
	postAlert := func(path, body string) int {
		t.Helper()
		resp, err := http.Post(api+path, "application/x-www-form-urlencoded", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, tc := range []struct {
		name, path, body string
		want             int
	}{
		{"wrong token", "/falco/alerts/nope", alert, http.StatusUnauthorized},
		{"missing token", "/falco/alerts/", alert, http.StatusUnauthorized},
		{"no slash", "/falco/alerts", alert, http.StatusUnauthorized},
		{"oversize", "/falco/alerts/" + fs.token, strings.Repeat(" ", 5000) + alert, http.StatusRequestEntityTooLarge},
		{"not an alert", "/falco/alerts/" + fs.token, `{"rule":"x"}`, http.StatusBadRequest},
		{"one alert", "/falco/alerts/" + fs.token, alert, http.StatusNoContent},
		{"two lines", "/falco/alerts/" + fs.token, alert + "\n" + strings.Replace(alert, "cm1", "cm2", -1) + "\n", http.StatusNoContent},
	} {
		if got := postAlert(tc.path, tc.body); got != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, got, tc.want)
		}
	}
	if err := ta.Journal().Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := fetch(t, api, alerts.Filter{})
	if len(got) != 3 || got[0].Rule != "ConfigMap Created" {
		t.Fatalf("journal: %d alerts %+v", len(got), got)
	}
	if n := ta.Metrics().Snapshot().Alerts; n != 3 {
		t.Fatalf("alerts metric %d", n)
	}
	resp, err := http.Get(api + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	m, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(m), `falco_k8s_alerts_total{priority="Warning",rule="ConfigMap Created"} 3`) {
		t.Errorf("metrics lack the per-rule count:\n%s", grepLines(string(m), "alerts_total"))
	}
	ta.stop(t)
	file, _ := os.ReadFile(ta.alerts)
	if strings.Count(string(file), "cm created") != 3 || stdout.Len() != 0 {
		t.Errorf("file output %q, stdout %q", file, stdout.String())
	}
	if strings.Contains(logs.String(), fs.token) {
		t.Error("the alerts token appears in the log")
	}
}

// TestFalcoEngineAdmissionUnavailable: admission enforcement asked for with engine: falco is
// not served, and /status says why; a staging directory a killed agent left is cleared.
func TestFalcoEngineAdmissionUnavailable(t *testing.T) {
	fs := newFalcoSetup(t, []string{"k8saudit", "json"}, "")
	left := filepath.Join(fs.dir, ".falco-rules.staging", "set-123")
	if err := os.MkdirAll(left, 0o755); err != nil {
		t.Fatal(err)
	}
	ta, api := startFalcoAgent(t, fs, []string{"admission.mode=deny", "admission.enforce.min_priority=Warning"}, Options{})
	var st status.Status
	if code := getJSON(t, api+"/status", &st); code != http.StatusOK {
		t.Fatalf("/status %d", code)
	}
	if st.Engine.Name != EngineFalco || !strings.Contains(st.Engine.Admission, "falco-k8s-engine feature") {
		t.Fatalf("engine %+v", st.Engine)
	}
	resp, err := http.Post(api+"/k8s-admission", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound && resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("admission served with engine: falco: %d", resp.StatusCode)
	}
	if _, err := os.Stat(left); err == nil {
		t.Error("stale staging directory left in place")
	}
	_ = ta
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// syncWriter serialises writes to a buffer (the logger writes from many goroutines).
type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

func (s *syncWriter) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.String()
}

// configMapCreate is an audit event the ConfigMap Created rule matches.
func configMapCreate(name string) []byte {
	return []byte(fmt.Sprintf(`{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":%q,"stage":"ResponseComplete","requestURI":"/api/v1/namespaces/default/configmaps","verb":"create","user":{"username":"alice"},"objectRef":{"resource":"configmaps","namespace":"default","name":%q,"apiVersion":"v1"},"responseStatus":{"code":201},"requestReceivedTimestamp":"2026-12-03T15:00:00.000000Z","stageTimestamp":"2026-12-03T15:00:00.100000Z"}`, "id-"+name, name))
}

// TestRealFalcoReloadsAfterPromotion runs the real Falco as the workload: its k8saudit webhook on
// an ephemeral port, rules_files = the agent's rules directory, watch_config_files, and its alerts
// sent to the agent's /falco/alerts/<token> (program_output with curl: the shared Falco is a
// MINIMAL_BUILD without http_output; the charm uses falco-k8s falco-forward). A promoted rule
// set makes Falco reload and alert on the new rule; the time from the promotion to the first
// alert is logged (a figure, not an assertion).
func TestRealFalcoReloadsAfterPromotion(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		testshared.Missing(t, "curl not installed (Falco's program_output posts alerts with it here): %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	api := "http://" + ln.Addr().String()
	const token = "s3cret-alerts-token" // newFalcoSetup's
	fs := newFalcoSetup(t, []string{"k8saudit", "json"}, fmt.Sprintf(
		"program_output: {enabled: true, keep_alive: false, program: \"%s -sf -o /dev/null --data-binary @- %s/falco/alerts/%s\"}\n", curl, api, token))
	src := &fakeSource{sink: make(chan RuleSink, 1), initial: []SourceFile{{Name: "macros.yaml", Content: []byte(macroFile), Ref: "reg/x:1", Digest: "sha256:aa"}}}
	ta, _ := startFalcoAgent(t, fs, nil, Options{Sources: []RuleSource{src}, ObservabilityListener: ln})
	<-src.sink

	falcoLog := &syncWriter{w: &bytes.Buffer{}}
	cmd := exec.Command(fs.bin, "-c", fs.config, "--disable-source=syscall")
	cmd.Stdout, cmd.Stderr = falcoLog, falcoLog
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
		if t.Failed() {
			t.Logf("Falco's output:\n%s", falcoLog.String())
		}
	})
	postEvent := func(name string) int {
		resp, err := http.Post(fs.webhook, "application/json", bytes.NewReader(configMapCreate(name)))
		if err != nil {
			return 0 // Falco (re)starting: its webhook is not listening
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	waitFor(t, func() bool { return postEvent("warm-up") == http.StatusOK })
	if n := ta.Metrics().Snapshot().Alerts; n != 0 {
		t.Fatalf("%d alerts before the rule exists", n)
	}

	v2 := []SourceFile{{Name: "macros.yaml", Content: []byte(macroFile), Ref: "reg/x:2", Digest: "sha256:bb"},
		{Name: "rules.yaml", Content: []byte(ruleFile), Ref: "reg/x:2", Digest: "sha256:bb"}}
	offered := time.Now()
	if _, err := ta.Offer("follower", v2); err != nil {
		t.Fatal(err)
	}
	promoted := time.Now()
	t.Logf("promotion (agent engine + falco -V, switch, falco --dry-run): %s", promoted.Sub(offered).Round(time.Millisecond))
	var first time.Duration
	for i := 0; ; i++ {
		if ta.Metrics().Snapshot().Alerts > 0 {
			first = time.Since(promoted)
			break
		}
		if time.Since(promoted) > 60*time.Second {
			t.Fatal("Falco never alerted on the promoted rule")
		}
		postEvent(fmt.Sprintf("cm-%d", i))
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("promotion to the first alert from the real Falco on the new rule: %s", first.Round(time.Millisecond))
	if err := ta.Journal().Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := fetch(t, api, alerts.Filter{})
	if len(got) == 0 || got[0].Rule != "ConfigMap Created" || got[0].Source != "k8s_audit" {
		t.Fatalf("journal %+v", got)
	}

	// Falco reporting a refused reload the agent's own check accepts (as when its watcher
	// checked mid-switch): the agent asks Falco to check again, once per set.
	loads := func() int { return strings.Count(falcoLog.String(), "Loading rules from") }
	before := loads()
	internal := fmt.Sprintf(`{"hostname":"vm","output":"Falco internal: hot restart failure: x.yaml: Invalid","output_fields":{},"priority":"Critical","rule":%q,"source":"internal","time":"2026-12-03T15:44:56.134970644Z"}`, HotRestartFailureRule)
	for i, want := range []string{"Falco asked to check the rules again", "already asked"} {
		resp, err := http.Post(api+"/falco/alerts/"+token, "application/json", strings.NewReader(internal))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		r := ta.Status().Engine.LastRefusal
		if resp.StatusCode != http.StatusNoContent || r == nil || !r.FromFalco || !strings.Contains(r.Recheck, want) {
			t.Fatalf("report %d: %d, refusal %+v", i, resp.StatusCode, r)
		}
	}
	waitFor(t, func() bool { return loads() > before })
}

// TestFalcoTuningSuppressesInRealFalco: the real Falco evaluates the example audit events with
// the built-in rules; `alerts tune` turns its alerts in namespace payments into exceptions; the
// agent (engine: falco) accepts the tuning file only after Falco validated the whole set (-V) and
// writes it last into Falco's rules directory; Falco, loading that directory, no longer alerts
// in payments and still alerts elsewhere.
func TestFalcoTuningSuppressesInRealFalco(t *testing.T) {
	oracle := falcooracle.Require(t)
	ctx := context.Background()
	events := filepath.Join(t.TempDir(), "events.jsonl")
	if err := os.WriteFile(events, bytes.Join(exampleEvents(t), []byte("\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	fs := newFalcoSetup(t, []string{"k8saudit", "json"}, "")
	state := t.TempDir()
	ta, _ := startFalcoAgent(t, fs, []string{"rules.builtin=true", "rules.files=[]", "rules.state_dir=" + state}, Options{})
	falcoAlerts := func() []*alerts.Alert {
		t.Helper()
		run, err := oracle.Evaluate(ctx, t.TempDir(), []string{fs.rulesDir}, events)
		if err != nil {
			t.Fatal(err)
		}
		var out []*alerts.Alert
		for _, raw := range run.Alerts {
			a, err := alerts.Parse(raw)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, a)
		}
		return out
	}
	before := falcoAlerts()
	var payments []*alerts.Alert
	for _, a := range before {
		if a.Namespace() == "payments" {
			payments = append(payments, a)
		}
	}
	if len(payments) == 0 || len(payments) == len(before) {
		t.Fatalf("Falco's alerts: %d, in payments %d: want some in and some out of payments", len(before), len(payments))
	}
	tuning := filepath.Join(state, "tuning.yaml")
	res, err := alerts.Tune(payments, alerts.TuneOptions{Scope: alerts.ScopeNamespace,
		Base: []engine.File{{Name: rules.DefaultName, Content: rules.Default()}}, Path: tuning, Now: time.Now()})
	if err != nil || len(res.Added) == 0 {
		t.Fatalf("tune: %+v %v", res, err)
	}
	if err := alerts.WriteFile(tuning, res.Content, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := ta.Reload(ctx); err != nil {
		t.Fatalf("tuning file refused: %v", err)
	}
	files := dirFiles(t, fs.rulesDir)
	names := sortedNames(files)
	if last := names[len(names)-1]; !strings.HasSuffix(last, "_tuning.yaml") || files[last] != string(res.Content) {
		t.Fatalf("rules_dir %v: want the tuning file last", names)
	}
	after := falcoAlerts()
	for _, a := range after {
		if a.Namespace() == "payments" {
			t.Errorf("Falco still alerts in payments after tuning: %s", a.Rule)
		}
	}
	if len(after) != len(before)-len(payments) {
		t.Fatalf("Falco's alerts after tuning: %d, want %d", len(after), len(before)-len(payments))
	}
	t.Logf("Falco: %d alerts, %d in payments; after tuning %d (%d exceptions added)", len(before), len(payments), len(after), len(res.Added))
}
