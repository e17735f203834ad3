package charmtest

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/falco-k8s/falco-k8s/agent/status"
	"github.com/falco-k8s/falco-k8s/internal/fakejuju/harness"
)

// Binaries built once by TestMain.
var (
	repoRoot  string
	charmBin  string // cmd/falco-k8s, static, as make charm builds it
	toolBin   string // internal/fakejuju/cmd/fakejuju
	pebbleBin string // go tool pebble
	buildErr  error
)

func TestMain(m *testing.M) {
	code := func() int {
		dir, err := os.MkdirTemp("", "charmtest-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		wd, _ := os.Getwd()
		repoRoot = filepath.Clean(filepath.Join(wd, "..", ".."))
		charmBin = filepath.Join(dir, "falco-k8s")
		toolBin = filepath.Join(dir, "fakejuju")
		build := func(args ...string) error {
			cmd := exec.Command("go", args...)
			cmd.Dir = repoRoot
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
			if out, err := cmd.CombinedOutput(); err != nil {
				return fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, out)
			}
			return nil
		}
		if buildErr = build("build", "-trimpath", "-ldflags", "-X main.version=charmtest", "-o", charmBin, "./cmd/falco-k8s"); buildErr == nil {
			buildErr = build("build", "-o", toolBin, "./internal/fakejuju/cmd/fakejuju")
		}
		if buildErr == nil {
			cmd := exec.Command("go", "tool", "-n", "pebble")
			cmd.Dir = repoRoot
			out, err := cmd.Output()
			if err != nil {
				buildErr = fmt.Errorf("go tool -n pebble: %v", err)
			}
			pebbleBin = strings.TrimSpace(string(out))
		}
		if buildErr != nil {
			fmt.Fprintln(os.Stderr, buildErr)
			return 1
		}
		return m.Run()
	}()
	os.Exit(code)
}

// pebble is a running Pebble daemon, as Juju starts it in the workload container
// (run --hold --create-dirs: nothing starts until the charm replans).
type pebble struct {
	Dir, Socket string
	cmd         *exec.Cmd
	logs        *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func startPebble(tb testing.TB) *pebble {
	tb.Helper()
	dir := tb.TempDir()
	p := &pebble{Dir: dir, Socket: filepath.Join(dir, ".pebble.socket"), logs: &syncBuffer{}}
	// As Juju starts it (spec/juju.md §3.1); --verbose puts the agent's logs in ours.
	p.cmd = exec.Command(pebbleBin, "run", "--hold", "--create-dirs", "--verbose")
	p.cmd.Env = append(os.Environ(), "PEBBLE="+dir)
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	if err := p.cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		p.cmd.Process.Signal(syscall.SIGTERM) //nolint:errcheck // may be gone
		done := make(chan struct{})
		go func() { p.cmd.Wait(); close(done) }() //nolint:errcheck // exit status is irrelevant
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			p.cmd.Process.Kill() //nolint:errcheck
			<-done
		}
		if tb.Failed() {
			tb.Logf("pebble and agent logs:\n%s", p.logs.String())
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for {
		if c, err := net.Dial("unix", p.Socket); err == nil {
			c.Close()
			return p
		}
		if time.Now().After(deadline) {
			tb.Fatalf("pebble did not come up:\n%s", p.logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// freePorts returns a free port whose three successors are free too (webhook, status, metrics
// and peer API ports).
func freePorts(tb testing.TB) int {
	tb.Helper()
	for range 50 {
		l1, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatal(err)
		}
		p := l1.Addr().(*net.TCPAddr).Port
		l2, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p+1))
		if err != nil {
			l1.Close()
			continue
		}
		l3, err := net.Listen("tcp", fmt.Sprintf(":%d", p+2))
		l1.Close()
		l2.Close()
		if err == nil {
			l3.Close()
			l4, err := net.Listen("tcp", fmt.Sprintf(":%d", p+3))
			if err == nil {
				l4.Close()
				if p+3 <= 65535 {
					return p
				}
			}
		}
	}
	tb.Fatal("no free port pair")
	return 0
}

// unit is a fake Juju unit with its workload.
type unit struct {
	*harness.Env
	tb     testing.TB
	pebble *pebble
	root   string // FALCO_K8S_WORKLOAD_ROOT
	port   int
	kube   *fakeKube
	// outputs collects every hook's and action's stdout and stderr (what Juju logs).
	outputs strings.Builder
}

type unitOpts struct {
	noPebble bool
	kube     *fakeKube
	charmBin string
}

func newUnit(tb testing.TB, o unitOpts) *unit {
	tb.Helper()
	bin := charmBin
	if o.charmBin != "" {
		bin = o.charmBin
	}
	u := &unit{Env: harness.New(tb, toolBin, bin, repoRoot), tb: tb, port: freePorts(tb), kube: o.kube}
	u.root = filepath.Join(u.Dir, "workload")
	sock := filepath.Join(u.Dir, "no-pebble", "pebble.socket")
	if !o.noPebble {
		u.pebble = startPebble(tb)
		sock = u.pebble.Socket
	}
	u.Extra = []string{"FALCO_K8S_PEBBLE_SOCKET=" + sock, "FALCO_K8S_WORKLOAD_ROOT=" + u.root}
	if o.kube != nil {
		u.Extra = append(u.Extra, "FALCO_K8S_KUBECONFIG="+o.kube.kubeconfig)
	}
	if err := u.SetConfig(map[string]any{"webhook-port": int64(u.port)}); err != nil {
		tb.Fatal(err)
	}
	return u
}

// hook runs a hook and fails the test on a non-zero exit.
func (u *unit) hook(name string) harness.Run {
	u.tb.Helper()
	r := u.Hook(name)
	u.outputs.WriteString(r.Stdout + r.Stderr)
	if r.Code != 0 {
		u.tb.Fatalf("hook %s: %s", name, r)
	}
	return r
}

func (u *unit) config(v map[string]any) {
	u.tb.Helper()
	if err := u.SetConfig(v); err != nil {
		u.tb.Fatal(err)
	}
}

func (u *unit) wantStatus(st, msgPart string) {
	u.tb.Helper()
	got := u.State().UnitStatus
	if got.Status != st || !strings.Contains(got.Message, msgPart) {
		u.tb.Fatalf("unit status = %s %q, want %s containing %q", got.Status, got.Message, st, msgPart)
	}
}

func (u *unit) statusURL(path string) string {
	return fmt.Sprintf("http://127.0.0.1:%d%s", u.port+1, path)
}

func (u *unit) agentStatus() status.Status {
	u.tb.Helper()
	resp, err := http.Get(u.statusURL("/status"))
	if err != nil {
		u.tb.Fatalf("agent /status: %v", err)
	}
	defer resp.Body.Close()
	var s status.Status
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		u.tb.Fatal(err)
	}
	return s
}

func (u *unit) action(name string, params map[string]any) map[string]any {
	u.tb.Helper()
	r, a, err := u.Action(name, params)
	if err != nil {
		u.tb.Fatal(err)
	}
	u.outputs.WriteString(r.Stdout + r.Stderr)
	if r.Code != 0 || a.Failed {
		u.tb.Fatalf("action %s failed: %q\n%s", name, a.Message, r)
	}
	return a.Results
}

// fakeKube answers the few kube-apiserver reads the charm makes (GET Secret, GET Service), in
// the API's JSON, so the real client-go client in internal/kube is exercised.
type fakeKube struct {
	mu         sync.Mutex
	secrets    map[string]map[string][]byte // ns/name → data
	services   map[string]string            // ns/name → clusterIP
	kubeconfig string
}

func newFakeKube(tb testing.TB) *fakeKube {
	k := &fakeKube{secrets: map[string]map[string][]byte{}, services: map[string]string{}}
	srv := httptest.NewServer(http.HandlerFunc(k.serve))
	tb.Cleanup(srv.Close)
	k.kubeconfig = filepath.Join(tb.TempDir(), "kubeconfig")
	kc := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters: [{name: fake, cluster: {server: %q}}]
users: [{name: charm, user: {token: fake-token}}]
contexts: [{name: fake, context: {cluster: fake, user: charm}}]
current-context: fake
`, srv.URL)
	if err := os.WriteFile(k.kubeconfig, []byte(kc), 0o600); err != nil {
		tb.Fatal(err)
	}
	return k
}

func (k *fakeKube) serve(w http.ResponseWriter, r *http.Request) {
	k.mu.Lock()
	defer k.mu.Unlock()
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/") // api v1 namespaces NS KIND NAME
	w.Header().Set("Content-Type", "application/json")
	if r.Method != http.MethodGet || len(parts) != 6 || parts[0] != "api" || parts[2] != "namespaces" {
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprint(w, `{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"NotFound","code":404}`)
		return
	}
	ns, kind, name := parts[3], parts[4], parts[5]
	notFound := func() {
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprintf(w, `{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"%s %q not found","reason":"NotFound","details":{"name":%q,"kind":%q},"code":404}`, kind, name, name, kind)
	}
	switch kind {
	case "secrets":
		data, ok := k.secrets[ns+"/"+name]
		if !ok {
			notFound()
			return
		}
		enc := map[string]string{}
		for key, v := range data {
			enc[key] = base64.StdEncoding.EncodeToString(v)
		}
		json.NewEncoder(w).Encode(map[string]any{"kind": "Secret", "apiVersion": "v1", //nolint:errcheck
			"metadata": map[string]any{"name": name, "namespace": ns}, "type": "Opaque", "data": enc})
	case "services":
		ip, ok := k.services[ns+"/"+name]
		if !ok {
			notFound()
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"kind": "Service", "apiVersion": "v1", //nolint:errcheck
			"metadata": map[string]any{"name": name, "namespace": ns},
			"spec":     map[string]any{"clusterIP": ip, "type": "ClusterIP", "ports": []any{map[string]any{"name": "juju-9765-tcp", "port": 9765, "protocol": "TCP"}}}})
	default:
		notFound()
	}
}

func (k *fakeKube) setSecret(ns, name string, data map[string][]byte) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.secrets[ns+"/"+name] = data
}

func (k *fakeKube) setService(ns, name, ip string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.services[ns+"/"+name] = ip
}

// postAudit sends one audit event to the webhook and returns the HTTP status.
func postAudit(tb testing.TB, client *http.Client, url string) int {
	tb.Helper()
	body := `{"kind":"EventList","apiVersion":"audit.k8s.io/v1","metadata":{},"items":[{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"a1","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/default/configmaps","verb":"create","user":{"username":"alice"},"objectRef":{"resource":"configmaps","namespace":"default","name":"x","apiVersion":"v1"},"responseStatus":{"code":201}}]}`
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		tb.Fatalf("post audit: %v", err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
