package agent

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/falco-k8s/falco-k8s/agent/config"
	"github.com/falco-k8s/falco-k8s/agent/status"
)

// countRule alerts on every event with its audit ID, so alerts can be counted per event.
func countRule(tag string) string {
	return fmt.Sprintf(`- rule: Every event
  desc: alerts on every audit event, for counting
  condition: ka.auditid != ""
  output: id=%%ka.auditid gen=%s
  priority: WARNING
  source: k8s_audit
`, tag)
}

const invalidRule = `- rule: Broken
  desc: broken
  condition: ka.verb = create and
  output: x
  priority: WARNING
`

type testAgent struct {
	*Agent
	url     string
	alerts  string // alert file path
	rules   string // local rules file path
	cancel  context.CancelFunc
	done    chan error
	stopped bool
}

func startAgent(t testing.TB, overrides []string, opts Options) *testAgent {
	t.Helper()
	dir := t.TempDir()
	rulesPath := filepath.Join(dir, "rules.yaml")
	if err := os.WriteFile(rulesPath, []byte(countRule("1")), 0o600); err != nil {
		t.Fatal(err)
	}
	alerts := filepath.Join(dir, "alerts.log")
	base := []string{"rules.builtin=false", "rules.files=[" + rulesPath + "]", "outputs.stdout.enabled=false",
		"outputs.file.path=" + alerts, "webhook.listen=127.0.0.1:0", "webhook.shutdown_timeout=20s",
		"rules.state_dir=" + dir} // keeps the alert journal (on by default) out of /var/lib
	cfg, err := config.Parse(nil, append(base, overrides...))
	if err != nil {
		t.Fatal(err)
	}
	if opts.WebhookListener == nil {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		opts.WebhookListener = ln
	}
	if opts.Logger.GetLevel() == zerolog.DebugLevel && os.Getenv("AGENT_TEST_LOG") == "" {
		opts.Logger = zerolog.Nop()
	}
	a, err := New(context.Background(), cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ta := &testAgent{Agent: a, alerts: alerts, rules: rulesPath, cancel: cancel, done: make(chan error, 1)}
	go func() { ta.done <- a.Run(ctx) }()
	scheme := "http"
	if cfg.Webhook.TLS.Enabled() {
		scheme = "https"
	}
	ta.url = scheme + "://" + a.WebhookAddr().String()
	t.Cleanup(func() { ta.stop(t) })
	return ta
}

func (ta *testAgent) stop(t testing.TB) {
	t.Helper()
	if ta.stopped {
		return
	}
	ta.stopped = true
	ta.cancel()
	if err := <-ta.done; err != nil {
		t.Errorf("agent Run: %v", err)
	}
}

func auditEvent(id string) string {
	return fmt.Sprintf(`{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":%q,"stage":"ResponseComplete","requestURI":"/api/v1/namespaces/default/pods","verb":"create","user":{"username":"admin","groups":["system:masters"]},"objectRef":{"resource":"pods","namespace":"default","name":"p","apiVersion":"v1"},"responseStatus":{"code":201},"stageTimestamp":"2024-05-01T10:00:00.123456Z"}`, id)
}

func batch(prefix string, from, n int) []byte {
	items := make([]string, n)
	for i := range n {
		items[i] = auditEvent(fmt.Sprintf("%s-%d", prefix, from+i))
	}
	return []byte(`{"kind":"EventList","apiVersion":"audit.k8s.io/v1","metadata":{},"items":[` + strings.Join(items, ",") + `]}`)
}

func post(t testing.TB, url string, body []byte) int {
	t.Helper()
	resp, err := http.Post(url+"/k8s-audit?timeout=30s", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// postRetrying posts until accepted, as kube-apiserver does on 429.
func postRetrying(t testing.TB, url string, body []byte) {
	t.Helper()
	for range 2000 {
		switch code := post(t, url, body); code {
		case http.StatusOK:
			return
		case http.StatusTooManyRequests:
			time.Sleep(2 * time.Millisecond)
		default:
			t.Errorf("post: %d", code)
			return
		}
	}
	t.Errorf("batch never accepted")
}

// alertIDs counts alerts per audit ID (and per gen tag) in the alert file.
func alertIDs(t testing.TB, path string) (ids map[string]int, gens map[string]int, internal []string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ids, gens = map[string]int{}, map[string]int{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.Contains(line, "Falco internal") {
			internal = append(internal, line)
			continue
		}
		i := strings.Index(line, "id=")
		if i < 0 {
			t.Fatalf("unexpected alert line %q", line)
		}
		fields := strings.Fields(line[i:])
		ids[strings.TrimPrefix(fields[0], "id=")]++
		gens[strings.TrimPrefix(fields[1], "gen=")]++
	}
	return ids, gens, internal
}

func getJSON(t testing.TB, url string, v any) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if v != nil {
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			t.Fatal(err)
		}
	}
	return resp.StatusCode
}

func TestEndToEndAndObservability(t *testing.T) {
	ta := startAgent(t, nil, Options{Version: "test"})
	if code := getJSON(t, ta.url+"/readyz", nil); code != 200 {
		t.Fatalf("readyz %d", code)
	}
	for i := range 3 {
		if code := post(t, ta.url, batch("e2e", i*10, 10)); code != 200 {
			t.Fatalf("post %d", code)
		}
	}
	ta.stop(t)
	ids, _, _ := alertIDs(t, ta.alerts)
	if len(ids) != 30 {
		t.Fatalf("%d distinct alerts, want 30", len(ids))
	}
	st := ta.Status()
	if st.Events.Received != 30 || st.Events.Evaluated != 30 || st.Events.Alerts != 30 || st.Ruleset.Generation != 1 ||
		st.Ruleset.Rules.Total != 1 || st.Ruleset.Rules.Active != 1 || st.Ruleset.Files[0].Origin != OriginFile ||
		len(st.Ruleset.Files[0].SHA256) != 64 || st.Version != "test" {
		t.Fatalf("status %+v", st)
	}
	if st.Outputs[0].Name != "file" || st.Outputs[0].Sent != 30 {
		t.Fatalf("outputs %+v", st.Outputs)
	}
}

func TestObservabilityEndpoints(t *testing.T) {
	obs, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ta := startAgent(t, []string{"observability.listen=127.0.0.1:1"}, Options{ObservabilityListener: obs})
	obsURL := "http://" + obs.Addr().String()
	post(t, ta.url, batch("o", 0, 5))
	waitFor(t, func() bool { return ta.Status().Events.Evaluated == 5 })
	var st status.Status
	if code := getJSON(t, obsURL+"/status", &st); code != 200 || !st.Ready || st.Ruleset.Generation != 1 || st.Events.Evaluated != 5 {
		t.Fatalf("status %d %+v", code, st)
	}
	resp, err := http.Get(obsURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		"falco_k8s_events_received_total 5", "falco_k8s_events_evaluated_total 5",
		`falco_k8s_alerts_total{priority="Warning",rule="Every event"} 5`, "falco_k8s_ruleset_generation 1",
		"falco_k8s_webhook_request_duration_seconds_bucket", `falco_k8s_webhook_requests_total{code="200"} 1`,
		"falco_k8s_queue_events 0", `falco_k8s_ruleset_rules{state="active"} 1`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	// The webhook listener does not serve them when they have their own.
	if code := getJSON(t, ta.url+"/healthz", nil); code != 404 {
		t.Errorf("healthz on webhook listener: %d", code)
	}
	if code := getJSON(t, obsURL+"/healthz", nil); code != 200 {
		t.Errorf("healthz: %d", code)
	}
}

func waitFor(t testing.TB, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out waiting")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestReloadInvalidKeepsRunning(t *testing.T) {
	ta := startAgent(t, nil, Options{})
	post(t, ta.url, batch("a", 0, 5))
	if err := os.WriteFile(ta.rules, []byte(countRule("1")+invalidRule), 0o600); err != nil {
		t.Fatal(err)
	}
	err := ta.Reload(context.Background())
	if err == nil || !strings.Contains(err.Error(), ta.rules+":9:") {
		t.Fatalf("Reload error = %v, want file:line of the broken rule", err)
	}
	st := ta.Status()
	if st.Ruleset.Generation != 1 || st.LastIgnored == nil || st.LastIgnored.Accepted || !strings.Contains(st.LastIgnored.Reason, ta.rules+":9:") ||
		!strings.Contains(st.LastIgnored.Reason, "LOAD_ERR_COMPILE_CONDITION") {
		t.Fatalf("status after bad reload: %+v / %+v", st.Ruleset, st.LastIgnored)
	}
	post(t, ta.url, batch("b", 0, 5)) // still evaluated by generation 1
	// The webhook acknowledges once queued; the batch must be evaluated before the next swap
	// for this test to know which generation saw it.
	waitFor(t, func() bool { return ta.Status().Events.Evaluated == 10 })
	// A valid edit is picked up.
	if err := os.WriteFile(ta.rules, []byte(countRule("2")), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := ta.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	post(t, ta.url, batch("c", 0, 5))
	ta.stop(t)
	ids, gens, internal := alertIDs(t, ta.alerts)
	if len(ids) != 15 || gens["1"] != 10 || gens["2"] != 5 {
		t.Fatalf("ids %d gens %v", len(ids), gens)
	}
	if len(internal) != 1 || !strings.Contains(internal[0], "Critical Falco internal: hot restart failure: "+ta.rules+":9:") {
		t.Fatalf("internal alerts %q", internal)
	}
	if st := ta.Status(); st.Ruleset.Generation != 2 || !st.LastAccepted.Accepted || st.LastReload != st.LastAccepted {
		t.Fatalf("status %+v", st)
	}
}

func TestStartupInvalidRulesFails(t *testing.T) {
	p := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(p, []byte(invalidRule), 0o600)
	cfg, err := config.Parse(nil, []string{"rules.files=[" + p + "]", "outputs.stdout.enabled=false"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = New(context.Background(), cfg, Options{})
	if err == nil || !strings.Contains(err.Error(), p+":3:") {
		t.Fatalf("New = %v", err)
	}
}

// fakeSource is a RuleSource driven by the test.
type fakeSource struct {
	initial []SourceFile
	sink    chan RuleSink
}

func (f *fakeSource) Name() string { return "follower" }
func (f *fakeSource) Initial(context.Context) ([]SourceFile, error) {
	return f.initial, nil
}
func (f *fakeSource) Run(ctx context.Context, sink RuleSink) error {
	f.sink <- sink
	<-ctx.Done()
	return ctx.Err()
}

func TestRuleSourceSeam(t *testing.T) {
	src := &fakeSource{sink: make(chan RuleSink, 1), initial: []SourceFile{{Name: "k8s_rules.yaml", Content: []byte("- list: l1\n  items: [a]\n"), Ref: "reg/x:1", Digest: "sha256:aa"}}}
	ta := startAgent(t, nil, Options{Sources: []RuleSource{src}})
	sink := <-src.sink
	st := ta.Status()
	if len(st.Ruleset.Files) != 2 || st.Ruleset.Files[0].Origin != "follower" || st.Ruleset.Files[0].Digest != "sha256:aa" || st.Ruleset.Files[1].Origin != OriginFile {
		t.Fatalf("files %+v", st.Ruleset.Files)
	}
	// v2: valid, accepted (the local file still loads after it).
	v2 := []SourceFile{{Name: "k8s_rules.yaml", Content: []byte("- list: l2\n  items: [b]\n"), Ref: "reg/x:1", Digest: "sha256:bb"}}
	c, err := sink.Compile("follower", v2)
	if err != nil {
		t.Fatal(err)
	}
	if gen, err := sink.Accept(c); err != nil || gen != 2 {
		t.Fatalf("Accept = %d, %v", gen, err)
	}
	// v3: invalid, ignored with a precise reason.
	v3 := []SourceFile{{Name: "k8s_rules.yaml", Content: []byte(invalidRule), Ref: "reg/x:1", Digest: "sha256:cc"}}
	_, err = sink.Compile("follower", v3)
	if err == nil || !strings.Contains(Reason(err), "k8s_rules.yaml:3:") {
		t.Fatalf("Compile v3 = %v", err)
	}
	sink.Ignore("follower", v3, err)
	sink.ReportSource(status.Source{Name: "follower", Ref: "reg/x:1", LastCheck: time.Now(), Digest: "sha256:bb"})
	st = ta.Status()
	if st.Ruleset.Generation != 2 || st.Ruleset.Files[0].Digest != "sha256:bb" || st.LastAccepted.Digest != "sha256:bb" ||
		st.LastIgnored.Digest != "sha256:cc" || st.LastIgnored.Origin != "follower" || len(st.Sources) != 1 {
		t.Fatalf("status %+v", st)
	}
	// A stale candidate (local files changed after Compile) is recompiled on Accept.
	c4, err := sink.Compile("follower", v2)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(ta.rules, []byte(countRule("3")), 0o600)
	if err := ta.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := sink.Accept(c4); err != nil {
		t.Fatal(err)
	}
	post(t, ta.url, batch("s", 0, 3))
	ta.stop(t)
	_, gens, _ := alertIDs(t, ta.alerts)
	if gens["3"] != 3 {
		t.Fatalf("stale candidate dropped the newer local file: gens %v", gens)
	}
}

func TestInitialSourceFilesInvalidAreSetAside(t *testing.T) {
	src := &fakeSource{sink: make(chan RuleSink, 1), initial: []SourceFile{{Name: "old.yaml", Content: []byte(invalidRule), Ref: "r", Digest: "d"}}}
	ta := startAgent(t, nil, Options{Sources: []RuleSource{src}})
	st := ta.Status()
	if st.Ruleset.Generation != 1 || len(st.Ruleset.Files) != 1 || st.LastIgnored == nil || st.LastIgnored.Trigger != TriggerStartup {
		t.Fatalf("status %+v", st)
	}
}

// TestSwapUnderLoad swaps the ruleset while batches stream in and checks every accepted event
// is evaluated exactly once (one alert per audit ID) and by both generations.
func TestSwapUnderLoad(t *testing.T) {
	src := &fakeSource{sink: make(chan RuleSink, 1)}
	ta := startAgent(t, []string{"rules.workers=2", "webhook.queue.capacity=2000"}, Options{Sources: []RuleSource{src}})
	<-src.sink
	const posters, batches, size = 4, 25, 50
	var wg sync.WaitGroup
	var posted atomic.Int64
	for p := range posters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range batches {
				postRetrying(t, ta.url, batch(fmt.Sprintf("p%d", p), b*size, size))
				posted.Add(size)
			}
		}()
	}
	swaps := 0
	for posted.Load() < posters*batches*size && swaps < 10 {
		// The source's file is an extra list; the counting rule stays, so every generation
		// alerts once per event.
		f := []SourceFile{{Name: "extra.yaml", Content: fmt.Appendf(nil, "- list: swap_%d\n  items: [x]\n", swaps)}}
		if _, err := ta.Offer("follower", f); err != nil {
			t.Fatal(err)
		}
		swaps++
		time.Sleep(5 * time.Millisecond)
	}
	wg.Wait()
	ta.stop(t)
	ids, _, _ := alertIDs(t, ta.alerts)
	want := posters * batches * size
	if len(ids) != want {
		t.Fatalf("%d distinct events alerted, want %d", len(ids), want)
	}
	for id, n := range ids {
		if n != 1 {
			t.Fatalf("event %s evaluated %d times", id, n)
		}
	}
	st := ta.Status()
	if st.Events.Received != uint64(want) || st.Events.Evaluated != uint64(want) {
		t.Fatalf("received %d evaluated %d want %d", st.Events.Received, st.Events.Evaluated, want)
	}
	t.Logf("%d swaps, final generation %d", swaps, st.Ruleset.Generation)
}

func TestGracefulShutdownDrainsQueue(t *testing.T) {
	ta := startAgent(t, []string{"rules.workers=1"}, Options{})
	for i := range 20 {
		if code := post(t, ta.url, batch("d", i*100, 100)); code != 200 {
			t.Fatalf("post %d", code)
		}
	}
	ta.stop(t) // returns only after the queue is evaluated and outputs flushed
	if resp, err := http.Get(ta.url + "/readyz"); err == nil {
		resp.Body.Close()
		t.Fatal("still serving after shutdown")
	}
	ids, _, _ := alertIDs(t, ta.alerts)
	if len(ids) != 2000 {
		t.Fatalf("%d events alerted after shutdown, want 2000", len(ids))
	}
}

func TestHUPReopensFileAndReloads(t *testing.T) {
	ta := startAgent(t, nil, Options{})
	post(t, ta.url, batch("h", 0, 2))
	waitFor(t, func() bool { return ta.Status().Events.Evaluated == 2 })
	os.Rename(ta.alerts, ta.alerts+".1")
	os.WriteFile(ta.rules, []byte(countRule("2")), 0o600)
	ta.HUP(context.Background())
	post(t, ta.url, batch("h", 2, 3))
	ta.stop(t)
	old, _, _ := alertIDs(t, ta.alerts+".1")
	cur, gens, _ := alertIDs(t, ta.alerts)
	if len(old) != 2 || len(cur) != 3 || gens["2"] != 3 {
		t.Fatalf("old %d, current %d, gens %v", len(old), len(cur), gens)
	}
	if st := ta.Status(); st.LastReload.Trigger != TriggerSIGHUP {
		t.Fatalf("last reload %+v", st.LastReload)
	}
}

// TestOversizeEventsDroppedInWorkerToo: a batch with an event over max_event_size keeps its other
// events, and the worker (which re-measures only when the webhook dropped something) evaluates
// exactly the events the webhook counted, in that batch and in clean batches around it.
func TestOversizeEventsDroppedInWorkerToo(t *testing.T) {
	ta := startAgent(t, []string{"webhook.max_event_size=4KiB"}, Options{})
	var list struct {
		Kind       string            `json:"kind"`
		APIVersion string            `json:"apiVersion"`
		Items      []json.RawMessage `json:"items"`
	}
	if err := json.Unmarshal(batch("mix", 0, 3), &list); err != nil {
		t.Fatal(err)
	}
	var big map[string]any
	if err := json.Unmarshal(list.Items[1], &big); err != nil {
		t.Fatal(err)
	}
	big["annotations"] = map[string]string{"padding": strings.Repeat("x", 8192)}
	list.Items[1], _ = json.Marshal(big)
	mixed, _ := json.Marshal(list)

	post(t, ta.url, batch("clean", 0, 4))
	if code := post(t, ta.url, mixed); code != http.StatusOK {
		t.Fatalf("batch with an oversize event: %d", code)
	}
	post(t, ta.url, batch("after", 0, 4))
	ta.stop(t)
	st := ta.Status()
	if st.Events.Received != 10 || st.Events.Evaluated != 10 || st.Events.Dropped["oversize"] != 1 {
		t.Fatalf("events %+v, want 10 received and evaluated, 1 oversize dropped", st.Events)
	}
	ids, _, _ := alertIDs(t, ta.alerts)
	if len(ids) != 10 || ids["mix-1"] != 0 || ids["mix-0"] != 1 || ids["mix-2"] != 1 {
		t.Fatalf("alerted ids %v", ids)
	}
}

// slowSyncSource is a follower whose Sync takes longer than the server's write timeout, as a
// sync against slow registries does.
type slowSyncSource struct {
	fakeSource
	took time.Duration
}

func (s *slowSyncSource) Sync(ctx context.Context, dryRun bool) []status.SyncResult {
	select {
	case <-time.After(s.took):
	case <-ctx.Done():
	}
	return []status.SyncResult{{Ref: "reg/x:1", Result: "unchanged", Digest: "sha256:aa"}}
}

// TestSyncOutlivesWriteTimeout: POST /sync answers in full even when it takes longer than
// webhook.write_timeout, which is sized for webhook batches, not registry round trips.
func TestSyncOutlivesWriteTimeout(t *testing.T) {
	src := &slowSyncSource{fakeSource: fakeSource{sink: make(chan RuleSink, 1)}, took: 1500 * time.Millisecond}
	ta := startAgent(t, []string{"webhook.write_timeout=300ms"}, Options{Sources: []RuleSource{src}})
	<-src.sink
	resp, err := http.Post(ta.url+"/sync", "", nil)
	if err != nil {
		t.Fatalf("POST /sync: %v", err)
	}
	defer resp.Body.Close()
	var got status.SyncResponse
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil || resp.StatusCode != http.StatusOK || len(got.Results) != 1 || got.Results[0].Result != "unchanged" {
		t.Fatalf("POST /sync = %d %+v (%v), want the full result", resp.StatusCode, got, err)
	}
}
