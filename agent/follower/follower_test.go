package follower

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/falco-k8s/falco-k8s/agent"
	"github.com/falco-k8s/falco-k8s/agent/config"
	"github.com/falco-k8s/falco-k8s/agent/status"
	"github.com/falco-k8s/falco-k8s/artifact/auth"
	"github.com/falco-k8s/falco-k8s/artifact/oci"
	"github.com/falco-k8s/falco-k8s/artifact/ref"
	"github.com/falco-k8s/falco-k8s/internal/testregistry"
)

// genRule alerts on every audit event, tagged with gen, so alerts tell which ruleset
// evaluated an event.
func genRule(gen string) string {
	return fmt.Sprintf(`- rule: Every event
  desc: alerts on every audit event
  condition: ka.auditid != ""
  output: id=%%ka.auditid gen=%s
  priority: WARNING
  source: k8s_audit
`, gen)
}

const brokenRule = `- rule: Broken
  desc: broken
  condition: ka.verb = create and
  output: x
  priority: WARNING
`

// pusher pushes rulesfile artifacts to a test registry.
type pusher struct {
	t   testing.TB
	reg *testregistry.Registry
	c   *oci.Client
	n   int
	// config, when set, edits each artifact's config blob before the push.
	config func(*oci.ArtifactConfig)
}

func newPusher(t testing.TB, reg *testregistry.Registry, user, pass string) *pusher {
	var cred auth.Basic
	if user != "" {
		cred = auth.Basic{Registry: reg.Host, User: user, Password: pass}
	}
	res, err := auth.NewResolver(context.Background(), auth.Sources{Basic: []auth.Basic{cred}, DisableDockerCfg: true})
	if err != nil {
		t.Fatal(err)
	}
	c, err := oci.NewClient(oci.Options{PlainHTTP: true, Credential: res.Credential})
	if err != nil {
		t.Fatal(err)
	}
	return &pusher{t: t, reg: reg, c: c}
}

// push uploads files (path -> content) as one rulesfile artifact at repo:tag and returns its
// digest.
func (p *pusher) push(repoTag string, files map[string]string) string {
	p.t.Helper()
	return p.pushLayer(repoTag, tarGz(p.t, files))
}

// pushLayer pushes raw layer bytes (not necessarily a valid archive) as a rulesfile.
func (p *pusher) pushLayer(repoTag string, layer []byte) string {
	p.t.Helper()
	p.n++
	path := filepath.Join(p.t.TempDir(), "rules.tar.gz")
	if err := os.WriteFile(path, layer, 0o644); err != nil {
		p.t.Fatal(err)
	}
	r, err := ref.Parse(p.reg.Host + "/" + repoTag)
	if err != nil {
		p.t.Fatal(err)
	}
	cfg := oci.ArtifactConfig{Name: "k8s-rules", Version: fmt.Sprintf("1.0.%d", p.n)}
	if p.config != nil {
		p.config(&cfg)
	}
	res, err := p.c.Push(context.Background(), r, oci.PushOptions{Type: oci.Rulesfile, Layers: []oci.Layer{{Path: path}}, Config: cfg})
	if err != nil {
		p.t.Fatal(err)
	}
	return res.Root.Digest.String()
}

// tarGz is files (path -> content) as a gzip-compressed tar.
func tarGz(t testing.TB, files map[string]string) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for name, body := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(body)) //nolint:errcheck // bytes.Buffer
	}
	tw.Close()
	zw.Close()
	return buf.Bytes()
}

// env is an agent with a follower, on a test registry.
type env struct {
	t        testing.TB
	reg      *testregistry.Registry
	push     *pusher
	ref      string
	stateDir string
	alerts   string
	a        *agent.Agent
	f        *Follower
	url      string
	cancel   context.CancelFunc
	done     chan error
	seq      atomic.Int64
}

type envOpts struct {
	reg       *testregistry.Registry
	stateDir  string
	ruleFiles []string
	follow    func(*Options)
	overrides []string
}

func newEnv(t testing.TB, o envOpts) *env {
	t.Helper()
	if o.reg == nil {
		o.reg = testregistry.New(t, testregistry.Options{})
	}
	if o.stateDir == "" {
		o.stateDir = t.TempDir()
	}
	if o.ruleFiles == nil {
		o.ruleFiles = []string{"k8s.yaml"}
	}
	e := &env{t: t, reg: o.reg, push: newPusher(t, o.reg, "", ""), ref: o.reg.Host + "/rules/k8s:1", stateDir: o.stateDir,
		alerts: filepath.Join(t.TempDir(), "alerts.log")}
	fo := Options{Refs: []string{e.ref}, RuleFiles: o.ruleFiles, Interval: 100 * time.Millisecond, StateDir: o.stateDir,
		Registry: RegistryOptions{PlainHTTP: []string{o.reg.Host}}, Debounce: 50 * time.Millisecond, InitialBackoff: 50 * time.Millisecond,
		Log: testLogger(t)}
	if o.follow != nil {
		o.follow(&fo)
	}
	f, err := New(fo)
	if err != nil {
		t.Fatal(err)
	}
	e.f = f
	e.start(o.overrides)
	return e
}

func testLogger(t testing.TB) zerolog.Logger {
	if os.Getenv("FOLLOWER_TEST_LOG") == "" {
		return zerolog.Nop()
	}
	return zerolog.New(zerolog.NewTestWriter(t)).With().Timestamp().Logger()
}

func (e *env) start(overrides []string) {
	t := e.t
	base := []string{"rules.builtin=false", "outputs.stdout.enabled=false", "outputs.file.path=" + e.alerts,
		"webhook.listen=127.0.0.1:0", "follow.refs=[" + e.ref + "]", "follow.rule_files=[k8s.yaml]", "rules.state_dir=" + e.stateDir}
	cfg, err := config.Parse(nil, append(base, overrides...))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var sources []agent.RuleSource
	if e.f != nil {
		sources = append(sources, e.f)
	}
	a, err := agent.New(context.Background(), cfg, agent.Options{WebhookListener: ln, Sources: sources, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	e.a, e.cancel, e.done = a, cancel, make(chan error, 1)
	go func() { e.done <- a.Run(ctx) }()
	if addr := a.WebhookAddr(); addr != nil { // nil with engine: falco
		e.url = "http://" + addr.String()
	}
	t.Cleanup(e.stop)
}

func (e *env) stop() {
	if e.cancel == nil {
		return
	}
	e.cancel()
	if err := <-e.done; err != nil {
		e.t.Errorf("agent Run: %v", err)
	}
	e.cancel = nil
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitAccepted waits until digest is the running follower set.
func (e *env) waitAccepted(digest string) {
	e.t.Helper()
	waitFor(e.t, "accepted "+digest, func() bool { return e.runningDigest() == digest })
}

func (e *env) runningDigest() string {
	for _, f := range e.a.Status().Ruleset.Files {
		if f.Origin == SourceName {
			return f.Digest
		}
	}
	return ""
}

// fire posts n events and returns how many alerts each gen tag produced for them.
func (e *env) fire(n int) map[string]int {
	e.t.Helper()
	prefix := fmt.Sprintf("ev%d", e.seq.Add(1))
	items := make([]string, n)
	for i := range items {
		items[i] = fmt.Sprintf(`{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"%s-%d","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/default/pods","verb":"create","user":{"username":"admin"},"objectRef":{"resource":"pods","namespace":"default","name":"p","apiVersion":"v1"},"responseStatus":{"code":201},"stageTimestamp":"2024-05-01T10:00:00.123456Z"}`, prefix, i)
	}
	body := `{"kind":"EventList","apiVersion":"audit.k8s.io/v1","metadata":{},"items":[` + strings.Join(items, ",") + `]}`
	resp, err := http.Post(e.url+"/k8s-audit", "application/json", strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body) //nolint:errcheck
	resp.Body.Close()
	if resp.StatusCode != 200 {
		e.t.Fatalf("post: %d", resp.StatusCode)
	}
	gens := map[string]int{}
	waitFor(e.t, "alerts", func() bool {
		clear(gens)
		total := 0
		f, err := os.Open(e.alerts)
		if err != nil {
			return false
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			line := sc.Text()
			if i := strings.Index(line, "id="+prefix+"-"); i >= 0 {
				fields := strings.Fields(line[i:])
				gens[strings.TrimPrefix(fields[1], "gen=")]++
				total++
			}
		}
		return total == n
	})
	return gens
}

func TestFollowAcceptIgnoreKeepsServing(t *testing.T) {
	reg := testregistry.New(t, testregistry.Options{})
	p := newPusher(t, reg, "", "")
	d1 := p.push("rules/k8s:1", map[string]string{"k8s.yaml": genRule("v1")})
	e := newEnv(t, envOpts{reg: reg})
	e.waitAccepted(d1)
	if g := e.fire(5); g["v1"] != 5 {
		t.Fatalf("v1 alerts %v", g)
	}
	d2 := p.push("rules/k8s:1", map[string]string{"k8s.yaml": genRule("v2")})
	e.waitAccepted(d2)
	if g := e.fire(5); g["v2"] != 5 {
		t.Fatalf("v2 alerts %v", g)
	}
	d3 := p.push("rules/k8s:1", map[string]string{"k8s.yaml": genRule("v2") + brokenRule})
	waitFor(t, "v3 ignored", func() bool { li := e.a.Status().LastIgnored; return li != nil && li.Digest == d3 })
	st := e.a.Status()
	if !strings.Contains(st.LastIgnored.Reason, "k8s.yaml:9:") || !strings.Contains(st.LastIgnored.Reason, "LOAD_ERR_COMPILE_CONDITION") ||
		st.LastIgnored.Origin != SourceName || st.LastAccepted.Digest != d2 {
		t.Fatalf("last ignored %+v, last accepted %+v", st.LastIgnored, st.LastAccepted)
	}
	// Still serving v2, in memory and on disk.
	if g := e.fire(5); g["v2"] != 5 || len(g) != 1 {
		t.Fatalf("after v3: alerts %v, want v2 only", g)
	}
	if b, _ := os.ReadFile(e.f.ActivePath(e.ref, "k8s.yaml")); string(b) != genRule("v2") {
		t.Fatalf("active file on disk: %q", b)
	}
	// The ignored digest is not pulled again at every check: only HEADs until it changes.
	reg.Reset()
	time.Sleep(400 * time.Millisecond)
	for _, l := range reg.Log() {
		if !strings.HasPrefix(l, "HEAD ") {
			t.Fatalf("ignored digest re-fetched: %v", reg.Log())
		}
	}
	if len(reg.Log()) < 2 {
		t.Fatalf("no checks in 400ms at a 100ms interval: %v", reg.Log())
	}
	if len(st.Sources) != 1 || st.Sources[0].Ref != e.ref || st.Sources[0].LastSuccess.IsZero() || st.Sources[0].LastError != "" {
		t.Fatalf("sources %+v", st.Sources)
	}
	if n := followChecks(t, e, e.ref, "ok"); n < 3 {
		t.Fatalf("follow_checks_total{result=ok} = %v after three accepted digests", n)
	}
	// The persisted state names v2.
	s, _ := e.f.store.Load()
	if rs, ok := s.Ref(e.ref); !ok || rs.Digest != d2 {
		t.Fatalf("persisted state %+v", s)
	}
}

func TestWrongPasswordKeepsServing(t *testing.T) {
	reg := testregistry.New(t, testregistry.Options{User: "bob", Password: "right"})
	p := newPusher(t, reg, "bob", "right")
	d1 := p.push("rules/k8s:1", map[string]string{"k8s.yaml": genRule("v1")})
	authFile := filepath.Join(t.TempDir(), "auth")
	os.WriteFile(authFile, []byte(reg.Host+",bob,right\n"), 0o600) //nolint:errcheck
	stateDir := t.TempDir()
	basic, err := ReadAuthFile(authFile)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, envOpts{reg: reg, stateDir: stateDir, follow: func(o *Options) { o.Registry.Basic = basic }})
	e.waitAccepted(d1)
	e.stop()

	// Restart with a wrong password: a clear error naming the registry, v1 still served.
	e2 := newEnv(t, envOpts{reg: reg, stateDir: stateDir, follow: func(o *Options) {
		o.Registry.Basic = []auth.Basic{{Registry: reg.Host, User: "bob", Password: "wrong"}}
		o.Interval = time.Hour
	}})
	res := e2.f.Sync(context.Background(), false)
	want := fmt.Sprintf("registry %s refused the credentials (401): check", reg.Host)
	if len(res) != 1 || res[0].Result != ResultError || !strings.HasPrefix(res[0].Reason, want) || strings.Contains(res[0].Reason, "wrong") {
		t.Fatalf("sync = %+v, want error starting %q without the password", res, want)
	}
	st := e2.a.Status()
	if len(st.Sources) != 1 || !strings.HasPrefix(st.Sources[0].LastError, want) || st.Sources[0].Digest != d1 {
		t.Fatalf("sources %+v", st.Sources)
	}
	if g := e2.fire(3); g["v1"] != 3 {
		t.Fatalf("alerts %v", g)
	}
	if n := followChecks(t, e2, e.ref, "error"); n < 1 {
		t.Fatalf("follow_checks_total{result=error} = %v after a refused check", n)
	}
	// No credentials at all: told to add them.
	f, err := New(Options{Refs: []string{e.ref}, RuleFiles: []string{"k8s.yaml"}, Interval: time.Hour, StateDir: t.TempDir(),
		Registry: RegistryOptions{PlainHTTP: []string{reg.Host}}, DisableWatch: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.resolve(context.Background(), 0); err == nil || !strings.Contains(err.Error(), "requires authentication (401): add credentials for "+reg.Host) {
		t.Fatalf("anonymous resolve = %v", err)
	}
}

func TestRegistryOutageBackoff(t *testing.T) {
	tests := []struct {
		name       string
		status     int
		retryAfter string
		want       string
		maxChecks  int64 // during the outage
	}{
		// Retry-After: 1 wins over the 50ms backoff: at most the first check and one retry.
		{"429 with Retry-After", http.StatusTooManyRequests, "1", "rate limiting requests (429)", 2},
		{"503 with Retry-After", http.StatusServiceUnavailable, "1", "answered 503", 2},
		// Connection dropped: backoff 50, 100, 200, 400ms... 8 checks at most in 1.2s.
		{"down", 0, "", "is unreachable", 8},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			reg := testregistry.New(t, testregistry.Options{})
			p := newPusher(t, reg, "", "")
			d1 := p.push("rules/k8s:1", map[string]string{"k8s.yaml": genRule("v1")})
			reg.Fail(tc.status, tc.retryAfter)
			reg.Reset()
			e := newEnv(t, envOpts{reg: reg, follow: func(o *Options) { o.Interval = time.Hour; o.MaxBackoff = 10 * time.Second }})
			waitFor(t, "error in status", func() bool {
				s := e.a.Status().Sources
				return len(s) == 1 && strings.Contains(s[0].LastError, tc.want) && strings.Contains(s[0].LastError, reg.Host)
			})
			time.Sleep(1200 * time.Millisecond)
			if n := reg.Requests(); n > tc.maxChecks || n < 1 {
				t.Fatalf("%d requests during the outage, want 1..%d", n, tc.maxChecks)
			}
			if e.a.Status().Ruleset.Generation != 1 {
				t.Fatal("ruleset changed during the outage")
			}
			reg.Recover()
			e.waitAccepted(d1)
			// The source's health is published right after the swap.
			waitFor(t, "healthy source", func() bool { s := e.a.Status().Sources[0]; return s.LastError == "" && s.Digest == d1 })
		})
	}
}

func TestArtifactFiles(t *testing.T) {
	reg := testregistry.New(t, testregistry.Options{})
	p := newPusher(t, reg, "", "")
	// Extra files, even invalid ones, are not loaded.
	d1 := p.push("rules/k8s:1", map[string]string{"k8s.yaml": genRule("v1"), "more.yaml": "- list: more\n  items: [a]\n",
		"extra.yaml": brokenRule, "README.md": "hello"})
	e := newEnv(t, envOpts{reg: reg, ruleFiles: []string{"k8s.yaml", "more.yaml"}})
	e.waitAccepted(d1)
	var names []string
	for _, f := range e.a.Status().Ruleset.Files {
		names = append(names, f.Name)
	}
	if strings.Join(names, ",") != "k8s.yaml,more.yaml" {
		t.Fatalf("loaded files %v", names)
	}
	if _, err := os.Stat(e.f.ActivePath(e.ref, "extra.yaml")); err == nil {
		t.Fatal("unlisted file written to the rules directory")
	}
	// A listed file missing from the new version: ignored with the reason, v1 kept.
	d2 := p.push("rules/k8s:1", map[string]string{"k8s.yaml": genRule("v2")})
	waitFor(t, "v2 ignored", func() bool { li := e.a.Status().LastIgnored; return li != nil && li.Digest == d2 })
	if r := e.a.Status().LastIgnored.Reason; !strings.Contains(r, `follow.rule_files entry "more.yaml" is missing from `+e.ref+"@"+d2) {
		t.Fatalf("reason %q", r)
	}
	if g := e.fire(2); g["v1"] != 2 {
		t.Fatalf("alerts %v", g)
	}
	// An artifact with none of the listed files, and one with a path-traversal entry.
	d3 := p.push("rules/k8s:1", map[string]string{"other.yaml": genRule("v3")})
	waitFor(t, "v3 ignored", func() bool { li := e.a.Status().LastIgnored; return li != nil && li.Digest == d3 })
	if r := e.a.Status().LastIgnored.Reason; !strings.Contains(r, "contains none of follow.rule_files") {
		t.Fatalf("reason %q", r)
	}
	d4 := p.push("rules/k8s:1", map[string]string{"../k8s.yaml": genRule("v4"), "k8s.yaml": genRule("v4"), "more.yaml": "[]"})
	waitFor(t, "v4 ignored", func() bool { li := e.a.Status().LastIgnored; return li != nil && li.Digest == d4 })
	if r := e.a.Status().LastIgnored.Reason; !strings.Contains(r, "path traversal") {
		t.Fatalf("reason %q", r)
	}
	if e.runningDigest() != d1 {
		t.Fatal("v1 no longer running")
	}
}

func TestWatchDeleteAndEdit(t *testing.T) {
	reg := testregistry.New(t, testregistry.Options{})
	p := newPusher(t, reg, "", "")
	d1 := p.push("rules/k8s:1", map[string]string{"k8s.yaml": genRule("v1")})
	e := newEnv(t, envOpts{reg: reg, follow: func(o *Options) { o.Interval = time.Hour }})
	e.waitAccepted(d1)
	active := e.f.ActivePath(e.ref, "k8s.yaml")
	waitFor(t, "active file", func() bool { b, _ := os.ReadFile(active); return string(b) == genRule("v1") })

	// Deleted: restored.
	if err := os.Remove(active); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "restore", func() bool { b, _ := os.ReadFile(active); return string(b) == genRule("v1") })
	gen := e.a.Status().Ruleset.Generation

	// Edited, valid: accepted as a local edit.
	if err := os.WriteFile(active, []byte(genRule("edit")), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "edit accepted", func() bool { return e.a.Status().Ruleset.Generation > gen })
	st := e.a.Status()
	if st.LastAccepted.Ref != e.ref+LocalEditSuffix || st.LastAccepted.Digest != d1 {
		t.Fatalf("last accepted %+v", st.LastAccepted)
	}
	if g := e.fire(3); g["edit"] != 3 {
		t.Fatalf("alerts %v", g)
	}
	gen = st.Ruleset.Generation

	// Edited, invalid: ignored with the reason, and the accepted (edited) content restored.
	if err := os.WriteFile(active, []byte(genRule("edit")+brokenRule), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "edit ignored", func() bool { li := e.a.Status().LastIgnored; return li != nil && li.Ref == e.ref+LocalEditSuffix })
	if r := e.a.Status().LastIgnored.Reason; !strings.Contains(r, "k8s.yaml:9:") {
		t.Fatalf("reason %q", r)
	}
	waitFor(t, "restore after invalid edit", func() bool { b, _ := os.ReadFile(active); return string(b) == genRule("edit") })
	if e.a.Status().Ruleset.Generation != gen {
		t.Fatal("invalid edit changed the ruleset")
	}

	// The edit survives a restart; a new upstream digest replaces it.
	e.stop()
	e2 := newEnv(t, envOpts{reg: reg, stateDir: e.stateDir, follow: func(o *Options) { o.Interval = time.Hour }})
	if g := e2.fire(2); g["edit"] != 2 {
		t.Fatalf("after restart: alerts %v", g)
	}
	d2 := p.push("rules/k8s:1", map[string]string{"k8s.yaml": genRule("v2")})
	res := e2.f.Sync(context.Background(), false)
	if len(res) != 1 || res[0].Result != ResultAccepted || res[0].Digest != d2 {
		t.Fatalf("sync %+v", res)
	}
	waitFor(t, "v2 on disk", func() bool { b, _ := os.ReadFile(active); return string(b) == genRule("v2") })
}

func TestRestartLoadsAcceptedSet(t *testing.T) {
	reg := testregistry.New(t, testregistry.Options{})
	p := newPusher(t, reg, "", "")
	p.push("rules/k8s:1", map[string]string{"k8s.yaml": genRule("v1")})
	d2 := p.push("rules/k8s:1", map[string]string{"k8s.yaml": genRule("v2")})
	e := newEnv(t, envOpts{reg: reg})
	e.waitAccepted(d2)
	e.stop()
	// The registry is gone for good: the accepted set still loads at start-up.
	reg.Fail(0, "")
	e2 := newEnv(t, envOpts{reg: reg, stateDir: e.stateDir, follow: func(o *Options) { o.Interval = time.Hour }})
	files, err := e2.f.Initial(context.Background())
	if err != nil || len(files) != 1 || string(files[0].Content) != genRule("v2") || files[0].Digest != d2 {
		t.Fatalf("Initial = %+v, %v", files, err)
	}
	if e2.runningDigest() != d2 {
		t.Fatalf("running digest %q", e2.runningDigest())
	}
	if g := e2.fire(2); g["v2"] != 2 {
		t.Fatalf("alerts %v", g)
	}
}

func TestSyncEndpoint(t *testing.T) {
	reg := testregistry.New(t, testregistry.Options{})
	p := newPusher(t, reg, "", "")
	d1 := p.push("rules/k8s:1", map[string]string{"k8s.yaml": genRule("v1")})
	e := newEnv(t, envOpts{reg: reg, follow: func(o *Options) { o.Interval = time.Hour }})
	e.waitAccepted(d1)
	sync := func(query string) (int, status.SyncResponse) {
		resp, err := http.Post(e.url+"/sync"+query, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body status.SyncResponse
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, body
	}
	d2 := p.push("rules/k8s:1", map[string]string{"k8s.yaml": genRule("v2")})
	d3 := ""
	tests := []struct {
		name   string
		query  string
		before func()
		want   status.SyncResult
		gen    uint64 // generations added by the call
	}{
		{name: "dry run validates only", query: "?dry_run=true", want: status.SyncResult{Result: ResultAccepted, Digest: d2}},
		{name: "apply", want: status.SyncResult{Result: ResultAccepted, Digest: d2}, gen: 1},
		{name: "unchanged", want: status.SyncResult{Result: ResultUnchanged, Digest: d2}},
		{name: "invalid dry run", query: "?dry_run=1", before: func() {
			d3 = p.push("rules/k8s:1", map[string]string{"k8s.yaml": brokenRule})
		}, want: status.SyncResult{Result: ResultIgnored}},
		{name: "invalid", want: status.SyncResult{Result: ResultIgnored}},
	}
	gen := e.a.Status().Ruleset.Generation
	for _, tc := range tests {
		if tc.before != nil {
			tc.before()
		}
		code, body := sync(tc.query)
		if code != 200 || len(body.Results) != 1 {
			t.Fatalf("%s: %d %+v", tc.name, code, body)
		}
		r := body.Results[0]
		if r.Ref != e.ref || r.Result != tc.want.Result || (tc.want.Digest != "" && r.Digest != tc.want.Digest) {
			t.Fatalf("%s: result %+v, want %+v", tc.name, r, tc.want)
		}
		if r.Result == ResultIgnored && (r.Digest != d3 || !strings.Contains(r.Reason, "k8s.yaml:3:")) {
			t.Fatalf("%s: ignored without file:line: %+v", tc.name, r)
		}
		gen += tc.gen
		if g := e.a.Status().Ruleset.Generation; g != gen {
			t.Fatalf("%s: generation %d, want %d", tc.name, g, gen)
		}
		if tc.name == "invalid dry run" && e.a.Status().LastIgnored != nil {
			t.Fatalf("dry run recorded an ignored candidate")
		}
	}
	// The dry run of the invalid candidate recorded nothing; the real one did.
	if li := e.a.Status().LastIgnored; li == nil || li.Digest != d3 {
		t.Fatalf("last ignored %+v", li)
	}
	if code, _ := sync("?dry_run=maybe"); code != http.StatusBadRequest {
		t.Fatalf("bad dry_run: %d", code)
	}
}

func TestSyncWithoutFollower(t *testing.T) {
	e := &env{t: t, ref: "reg.example/rules/k8s:1", stateDir: t.TempDir(), alerts: filepath.Join(t.TempDir(), "alerts")}
	e.start([]string{"rules.builtin=true"})
	resp, err := http.Post(e.url+"/sync", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body status.SyncResponse
	json.NewDecoder(resp.Body).Decode(&body) //nolint:errcheck
	if resp.StatusCode != http.StatusNotFound || !strings.Contains(body.Error, "no rules follower is configured") {
		t.Fatalf("%d %+v", resp.StatusCode, body)
	}
}

// TestTokenCacheReused checks that repeated checks against a token-protected registry (ghcr.io
// style) reuse the bearer token instead of fetching one per check, as falcoctl's follower does.
func TestTokenCacheReused(t *testing.T) {
	reg := testregistry.New(t, testregistry.Options{Token: true})
	p := newPusher(t, reg, "", "")
	d1 := p.push("rules/k8s:1", map[string]string{"k8s.yaml": genRule("v1")})
	e := newEnv(t, envOpts{reg: reg, follow: func(o *Options) { o.Interval = 50 * time.Millisecond }})
	e.waitAccepted(d1)
	reg.Reset()
	waitFor(t, "10 checks", func() bool { return reg.Requests() >= 10 })
	tokens := 0
	for _, l := range reg.Log() {
		if strings.Contains(l, "/token") {
			tokens++
		}
	}
	if tokens > 1 {
		t.Fatalf("%d token requests for %d requests: the token cache is not reused", tokens, len(reg.Log()))
	}
}

// TestTwoReferences follows two artifacts that each provide one listed file: they are first
// accepted together, and load in follow.refs order.
func TestTwoReferences(t *testing.T) {
	reg := testregistry.New(t, testregistry.Options{})
	p := newPusher(t, reg, "", "")
	da := p.push("rules/base:1", map[string]string{"base.yaml": "- macro: is_create\n  condition: ka.verb = create\n"})
	db := p.push("rules/local:1", map[string]string{"local.yaml": strings.Replace(genRule("two"), `ka.auditid != ""`, "is_create", 1)})
	refA, refB := reg.Host+"/rules/base:1", reg.Host+"/rules/local:1"
	e := newEnv(t, envOpts{reg: reg, ruleFiles: []string{"base.yaml", "local.yaml"}, follow: func(o *Options) {
		o.Refs = []string{refA, refB}
	}})
	waitFor(t, "both accepted", func() bool {
		got := map[string]string{}
		for _, f := range e.a.Status().Ruleset.Files {
			got[f.Ref] = f.Digest
		}
		return got[refA] == da && got[refB] == db
	})
	var names []string
	for _, f := range e.a.Status().Ruleset.Files {
		names = append(names, f.Name)
	}
	if want := refDir(refA) + "/base.yaml," + refDir(refB) + "/local.yaml"; strings.Join(names, ",") != want {
		t.Fatalf("files %v, want %s", names, want)
	}
	if g := e.fire(2); g["two"] != 2 {
		t.Fatalf("alerts %v", g)
	}
}

// followChecks reads falco_k8s_follow_checks_total{ref, result} from the agent's registry.
func followChecks(t *testing.T, e *env, ref, result string) float64 {
	t.Helper()
	mfs, err := e.a.Metrics().Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "falco_k8s_follow_checks_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["ref"] == ref && labels["result"] == result {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// TestWatcherIgnoresOwnWrites: the follower writing the active files (a new version, a
// restore) does not make the watcher examine the rules directory; someone else's change does.
func TestWatcherIgnoresOwnWrites(t *testing.T) {
	reg := testregistry.New(t, testregistry.Options{})
	p := newPusher(t, reg, "", "")
	d1 := p.push("rules/k8s:1", map[string]string{"k8s.yaml": genRule("v1"), "nested/more.yaml": "- list: more\n  items: [a]\n"})
	e := newEnv(t, envOpts{reg: reg, ruleFiles: []string{"k8s.yaml", "nested/more.yaml"}, follow: func(o *Options) { o.Interval = time.Hour }})
	e.waitAccepted(d1)
	active := e.f.ActivePath(e.ref, "k8s.yaml")
	settle := func() int64 {
		// Several debounce periods without an examination.
		n := reconciles.Load()
		time.Sleep(4 * e.f.o.Debounce)
		return reconciles.Load() - n
	}
	settle()
	for v := 2; v <= 4; v++ {
		d := p.push("rules/k8s:1", map[string]string{"k8s.yaml": genRule(fmt.Sprintf("v%d", v)), "nested/more.yaml": fmt.Sprintf("- list: more\n  items: [v%d]\n", v)})
		if r := e.f.Sync(context.Background(), false); r[0].Result != ResultAccepted || r[0].Digest != d {
			t.Fatalf("sync %+v", r)
		}
		if b, _ := os.ReadFile(active); string(b) != genRule(fmt.Sprintf("v%d", v)) {
			t.Fatalf("active file %q", b)
		}
		if n := settle(); n != 0 {
			t.Fatalf("version %d: the follower's own writes caused %d examinations", v, n)
		}
	}
	// An operator's deletion does cause one, and its restore (the follower's write) no more.
	n := reconciles.Load()
	if err := os.Remove(active); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "restore", func() bool { b, _ := os.ReadFile(active); return string(b) == genRule("v4") })
	settle()
	if got := reconciles.Load() - n; got != 1 {
		t.Fatalf("%d examinations for one deletion", got)
	}
}
