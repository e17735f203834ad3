package charmtest

import (
	"context"
	"crypto/tls"
	"encoding/pem"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	auditinternal "k8s.io/apiserver/pkg/apis/audit"
	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"
	"k8s.io/apiserver/pkg/audit"
	utilwebhook "k8s.io/apiserver/pkg/util/webhook"
	"k8s.io/apiserver/plugin/pkg/audit/webhook"
	"k8s.io/klog/v2"

	"github.com/falco-k8s/falco-k8s/agent/apiclient"
	"github.com/falco-k8s/falco-k8s/alerts"
	"github.com/falco-k8s/falco-k8s/charm"
	"github.com/falco-k8s/falco-k8s/internal/falcooracle"
	"github.com/falco-k8s/falco-k8s/internal/testregistry"
)

func init() {
	// kube-apiserver's webhook client logs every retry through klog; keep test output readable.
	fs := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(fs)
	fs.Set("logtostderr", "false")     //nolint:errcheck // known flag
	fs.Set("stderrthreshold", "FATAL") //nolint:errcheck // known flag
	klog.SetOutput(io.Discard)
}

// newFalcoUnit is a unit with engine=falco whose workload runs the real Falco 0.44.1 from
// ../shared/falco (a failure with CI=true when it is missing or cannot run).
func newFalcoUnit(tb testing.TB) *unit {
	tb.Helper()
	dir := filepath.Dir(falcooracle.Require(tb).Path)
	u := newUnit(tb, unitOpts{})
	u.Extra = append(u.Extra, "FALCO_K8S_FALCO_BINARY="+filepath.Join(dir, "bin", "falco"),
		"FALCO_K8S_FALCO_PLUGINS_DIR="+filepath.Join(dir, "plugins"))
	u.config(map[string]any{"engine": "falco"})
	return u
}

// waitFalcoWebhook waits until Falco's k8saudit webhook accepts connections.
func waitFalcoWebhook(tb testing.TB, u *unit) {
	tb.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", u.port), time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("Falco's webhook never listened on %d: %v", u.port, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// auditClient is kube-apiserver's own audit webhook backend posting to Falco's k8saudit
// webhook (batch of events, retries, its EventList encoding).
type auditClient struct{ b audit.Backend }

func newAuditClient(tb testing.TB, url string) *auditClient {
	tb.Helper()
	kubeconfig := filepath.Join(tb.TempDir(), "audit-webhook.kubeconfig")
	kc := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters: [{name: falco, cluster: {server: %q}}]
users: [{name: kube-apiserver, user: {}}]
contexts: [{name: default, context: {cluster: falco, user: kube-apiserver}}]
current-context: default
`, url)
	if err := os.WriteFile(kubeconfig, []byte(kc), 0o600); err != nil {
		tb.Fatal(err)
	}
	b, err := webhook.NewBackend(kubeconfig, auditv1.SchemeGroupVersion, utilwebhook.DefaultRetryBackoffWithInitialDelay(100*time.Millisecond), nil)
	if err != nil {
		tb.Fatal(err)
	}
	return &auditClient{b: b}
}

func (c *auditClient) send(tb testing.TB, evs ...*auditinternal.Event) {
	tb.Helper()
	if !c.b.ProcessEvents(evs...) {
		tb.Fatalf("kube-apiserver's webhook client could not deliver %d events", len(evs))
	}
}

// podCreate is a RequestResponse audit event of a pod created by alice in ns, privileged or not.
func podCreate(ns, id string, privileged bool) *auditinternal.Event {
	pod := fmt.Sprintf(`{"kind":"Pod","apiVersion":"v1","metadata":{"name":"debug-%s","namespace":%q},"spec":{"containers":[{"name":"c","image":"registry.example/tools/debug:1.2","securityContext":{"privileged":%t}}]}}`, id, ns, privileged)
	now := metav1.NewMicroTime(time.Now())
	return &auditinternal.Event{
		Level: auditinternal.LevelRequestResponse, AuditID: types.UID(id), Stage: auditinternal.StageResponseComplete,
		RequestURI: "/api/v1/namespaces/" + ns + "/pods", Verb: "create",
		User:      authnv1.UserInfo{Username: "alice", Groups: []string{"system:authenticated"}},
		SourceIPs: []string{"10.0.0.7"}, UserAgent: "kubectl/v1.31.4",
		ObjectRef:                &auditinternal.ObjectReference{Resource: "pods", Namespace: ns, Name: "debug-" + id, APIVersion: "v1"},
		ResponseStatus:           &metav1.Status{Code: 201},
		RequestObject:            &runtime.Unknown{Raw: []byte(pod), ContentType: runtime.ContentTypeJSON},
		ResponseObject:           &runtime.Unknown{Raw: []byte(pod), ContentType: runtime.ContentTypeJSON},
		RequestReceivedTimestamp: now, StageTimestamp: now,
	}
}

// configMapCreate is the event the followed artifact's rule (rulesArtifact) alerts on.
func configMapCreate(id string) *auditinternal.Event {
	now := metav1.NewMicroTime(time.Now())
	return &auditinternal.Event{
		Level: auditinternal.LevelMetadata, AuditID: types.UID(id), Stage: auditinternal.StageResponseComplete,
		RequestURI: "/api/v1/namespaces/default/configmaps", Verb: "create",
		User:                     authnv1.UserInfo{Username: "bob"},
		ObjectRef:                &auditinternal.ObjectReference{Resource: "configmaps", Namespace: "default", Name: "charm-test", APIVersion: "v1"},
		ResponseStatus:           &metav1.Status{Code: 201},
		RequestReceivedTimestamp: now, StageTimestamp: now,
	}
}

// journaled returns the journal's alerts of rule in ns (the agent's GET /alerts).
func journaled(tb testing.TB, u *unit, rule, ns string) []*alerts.Alert {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	as, _, err := apiclient.Local(u.port+1).Alerts(ctx, alerts.Filter{Rule: rule, Namespace: ns})
	if err != nil {
		tb.Fatalf("GET /alerts: %v", err)
	}
	return as
}

// waitJournaled waits until the journal holds n alerts of rule in ns.
func waitJournaled(tb testing.TB, u *unit, rule, ns string, n int) []*alerts.Alert {
	tb.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		as := journaled(tb, u, rule, ns)
		if len(as) >= n {
			return as
		}
		if time.Now().After(deadline) {
			tb.Fatalf("journal holds %d alerts of %q in %q, want %d", len(as), rule, ns, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// refusedByFalco loads in falco-k8s (a syscall rule is skipped with a warning) but not in this
// Falco: its output needs the container plugin, which a Kubernetes-audit Falco does not load.
const refusedByFalco = `- rule: Shell In Container
  desc: a syscall rule that needs the container plugin
  condition: evt.type = execve and proc.name = bash
  output: "shell (container=%container.id)"
  priority: WARNING
  source: syscall
`

// TestFalcoEngine drives engine=falco end to end: the real charm binary through fake Juju, the
// real Pebble running the real agent and the real Falco 0.44.1, kube-apiserver's own audit
// webhook client posting to Falco's k8saudit webhook, and the reference OCI registry.
func TestFalcoEngine(t *testing.T) {
	u := newFalcoUnit(t)
	for _, h := range []string{"install", "leader-elected", "config-changed", "start", "falco-pebble-ready"} {
		u.hook(h)
	}
	waitFalcoWebhook(t, u)
	waitActive(t, u, "falco 0.44.1: ")
	u.wantStatus("active", "rules (built-in)")
	st := u.agentStatus()
	if st.Engine.Name != "falco" || st.Engine.Version != "0.44.1" {
		t.Fatalf("/status engine = %+v", st.Engine)
	}
	// What the charm wrote: Falco's configuration, the alerts token (0600), the same port.
	for path, mode := range map[string]os.FileMode{charm.FalcoConfigPath: 0o644, charm.FalcoAlertsTokenPath: 0o600} {
		fi, err := os.Stat(u.root + path)
		if err != nil || fi.Mode().Perm() != mode {
			t.Errorf("%s: %v, mode %v, want %v", path, err, fi.Mode().Perm(), mode)
		}
	}
	if op := u.State().OpenedPorts; len(op) != 1 || op[0] != fmt.Sprintf("%d/tcp", u.port) {
		t.Errorf("opened ports %v", op)
	}

	// kube-apiserver's webhook client → Falco → forwarder → the agent's journal.
	client := newAuditClient(t, fmt.Sprintf("http://127.0.0.1:%d/k8s-audit", u.port))
	const privileged = "Privileged Container Started in Pod"
	client.send(t, podCreate("team-a", "a1", true), podCreate("team-b", "b1", true), podCreate("team-b", "quiet", false))
	got := waitJournaled(t, u, privileged, "team-a", 1)[0]
	if got.Source != "k8s_audit" || got.Hostname != u.Unit || got.Fields["juju_unit"] != u.Unit || got.Fields["juju_model"] == nil {
		t.Errorf("Falco's alert in the journal: source %q host %q fields %v", got.Source, got.Hostname, got.Fields)
	}
	waitJournaled(t, u, privileged, "team-b", 1)
	rev := u.action("review-alerts", map[string]any{"rule": privileged})
	if rev["alerts"] != "2" {
		t.Fatalf("review-alerts = %v", rev)
	}

	// show-rules names the engine; webhook-config is the engine's too (the same webhook).
	if sr := u.action("show-rules", map[string]any{"format": "yaml"}); !strings.Contains(fmt.Sprint(sr), "falco 0.44.1") {
		t.Errorf("show-rules does not name the engine: %.300v", sr)
	}

	falcoWebhookConfig := u.action("webhook-config", map[string]any{"server": "10.0.0.1"})

	// A followed artifact: validated, switched in, Falco reloads and alerts on its new rule.
	reg := testregistry.New(t, testregistry.Options{})
	dgst := pushRules(t, reg, "", "", "acme/k8s-rules:1", map[string]string{"k8s_audit_rules.yaml": rulesArtifact})
	pushed := time.Now()
	u.config(map[string]any{"rules-artifacts": reg.Host + "/acme/k8s-rules:1", "plain-http-registries": reg.Host})
	u.hook("config-changed")
	waitActive(t, u, "k8s-rules@"+dgst[:len("sha256:")+12])
	const followed = "Charm Test ConfigMap Created"
	waitFalcoAlert(t, u, client, followed)
	t.Logf("push to Falco alerting on the new rule: %v (hooks included)", time.Since(pushed).Round(time.Millisecond))

	// An artifact Falco would refuse never reaches Falco: ignored, the rules directory and
	// Falco's rules unchanged, Falco still alerting on the accepted rule.
	before := rulesDirSnapshot(t, u)
	bad := pushRules(t, reg, "", "", "acme/k8s-rules:1", map[string]string{"k8s_audit_rules.yaml": rulesArtifact + refusedByFalco})
	res := u.action("sync-rules", map[string]any{})
	if !strings.Contains(fmt.Sprint(res), "ignored") {
		t.Fatalf("sync-rules with a set Falco refuses = %v", res)
	}
	waitActive(t, u, "ignored k8s-rules@"+bad[:len("sha256:")+12])
	if after := rulesDirSnapshot(t, u); after != before {
		t.Fatalf("Falco's rules directory changed for a refused set:\nbefore %s\nafter %s", before, after)
	}
	waitFalcoAlert(t, u, client, followed)

	// tune-rules: the exception reaches Falco, which stops alerting for team-a only.
	reloads := falcoOpens(u)
	tr := u.action("tune-rules", map[string]any{"scope": "namespace", "namespace": "team-a", "rule": privileged})
	if tr["written"] != "true" {
		t.Fatalf("tune-rules = %v", tr)
	}
	// The agent switched Falco's rules when the action returned; Falco reloads them itself
	// (watch_config_files) a moment later.
	waitFalcoOpens(t, u, reloads)
	client.send(t, podCreate("team-a", "a2", true))
	client.send(t, podCreate("team-b", "b2", true))
	waitJournaled(t, u, privileged, "team-b", 2)
	// Falco evaluates a batch in order, and the forwarder posts in order: b2 journaled means
	// a2 was evaluated before it.
	if n := len(journaled(t, u, privileged, "team-a")); n != 1 {
		t.Fatalf("team-a after tuning: %d alerts, want still 1", n)
	}

	// A crashed Falco: the status says so, Pebble restarts it, and it alerts again.
	pid := falcoPID(t, u)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	u.hook("update-status")
	if s := u.State().UnitStatus; s.Status != "maintenance" || !strings.Contains(s.Message, "falco crashed; Pebble is restarting it") {
		// Pebble may have restarted it already (its first backoff is short).
		t.Logf("status right after the kill: %s %q", s.Status, s.Message)
	}
	waitFalcoWebhook(t, u)
	waitActive(t, u, "falco 0.44.1: ")
	if falcoPID(t, u) == pid {
		t.Fatal("Falco was not restarted")
	}
	client.send(t, podCreate("team-b", "b3", true))
	waitJournaled(t, u, privileged, "team-b", 3)

	// Back to engine=falco-k8s: Falco is stopped for good and the agent serves the webhook.
	u.config(map[string]any{"engine": "falco-k8s"})
	u.hook("config-changed")
	waitActive(t, u, "k8s-rules@")
	if s := u.State().UnitStatus; strings.Contains(s.Message, "falco 0.44.1") {
		t.Fatalf("status still names Falco: %q", s.Message)
	}
	client.send(t, podCreate("team-b", "b4", true))
	waitJournaled(t, u, privileged, "team-b", 4)
	if e := u.agentStatus().Engine; e.Name != "falco-k8s" {
		t.Fatalf("engine after the switch back = %+v", e)
	}
	// kube-apiserver is configured the same for both engines.
	if wc := u.action("webhook-config", map[string]any{"server": "10.0.0.1"}); fmt.Sprint(wc) != fmt.Sprint(falcoWebhookConfig) {
		t.Fatalf("webhook-config differs between engines:\nfalco: %v\nfalco-k8s: %v", falcoWebhookConfig, wc)
	}
	u.hook("update-status")
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, running := findFalco(u); !running {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Falco still runs with engine=falco-k8s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitFalcoAlert posts the followed rule's event until Falco (reloaded) alerts on it.
func waitFalcoAlert(tb testing.TB, u *unit, client *auditClient, rule string) {
	tb.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for i := 0; ; i++ {
		n := len(journaled(tb, u, rule, ""))
		client.send(tb, configMapCreate(fmt.Sprintf("cm-%d", i)))
		for range 25 {
			if len(journaled(tb, u, rule, "")) > n {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		if time.Now().After(deadline) {
			tb.Fatalf("Falco never alerted on %q", rule)
		}
	}
}

// falcoOpens counts the times Falco opened its event source (each start and hot reload), from
// Falco's log in Pebble's.
func falcoOpens(u *unit) int {
	return strings.Count(u.pebble.logs.String(), "Opening 'k8s_audit' source with plugin 'k8saudit'")
}

func waitFalcoOpens(tb testing.TB, u *unit, after int) {
	tb.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for falcoOpens(u) <= after {
		if time.Now().After(deadline) {
			tb.Fatal("Falco did not reload its rules")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// rulesDirSnapshot lists Falco's rules directory with each file's size.
func rulesDirSnapshot(tb testing.TB, u *unit) string {
	tb.Helper()
	ents, err := os.ReadDir(u.root + charm.FalcoRulesDir)
	if err != nil {
		tb.Fatal(err)
	}
	var b strings.Builder
	for _, e := range ents {
		fi, _ := e.Info()
		fmt.Fprintf(&b, "%s:%d ", e.Name(), fi.Size())
	}
	return b.String()
}

// falcoPID finds the Falco process Pebble runs for this unit (its command line names the
// unit's configuration file).
func falcoPID(tb testing.TB, u *unit) int {
	tb.Helper()
	pid, ok := findFalco(u)
	if !ok {
		tb.Fatalf("no Falco process with %s", u.root+charm.FalcoConfigPath)
	}
	return pid
}

func findFalco(u *unit) (int, bool) {
	want := u.root + charm.FalcoConfigPath
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		var pid int
		if _, err := fmt.Sscanf(e.Name(), "%d", &pid); err != nil {
			continue
		}
		cmd, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(string(cmd), "\x00")
		if strings.HasSuffix(args[0], "/falco") && strings.Contains(string(cmd), want) {
			return pid, true
		}
	}
	return 0, false
}

// TestFalcoFailureModes: Falco's own failures are the unit's status, with Falco's reason: the
// webhook port taken by another process, and a plugin that does not load.
func TestFalcoFailureModes(t *testing.T) {
	t.Run("webhook port taken", func(t *testing.T) {
		u := newFalcoUnit(t)
		ln, err := net.Listen("tcp", fmt.Sprintf(":%d", u.port))
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		u.hook("install")
		waitStatus(t, u, "maintenance", "falco crashed; Pebble is restarting it: Error: listen tcp :"+fmt.Sprint(u.port)+": bind: address already in use")
		// Freed, Pebble's next restart listens and the unit comes back.
		ln.Close()
		waitFalcoWebhook(t, u)
		waitActive(t, u, "falco 0.44.1: ")
	})
	t.Run("plugin does not load", func(t *testing.T) {
		u := newFalcoUnit(t)
		empty := t.TempDir()
		u.Extra = append(u.Extra, "FALCO_K8S_FALCO_PLUGINS_DIR="+empty)
		u.hook("install")
		waitStatus(t, u, "maintenance", "falco crashed; Pebble is restarting it: Runtime error: cannot load plugin "+empty+"/libk8saudit.so")
	})
}

// waitStatus runs update-status until the unit status is st (any when "") and contains want.
func waitStatus(t *testing.T, u *unit, st, want string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		u.hook("update-status")
		got := u.State().UnitStatus
		if (st == "" || got.Status == st) && strings.Contains(got.Message, want) {
			t.Logf("unit status: %s %q", got.Status, got.Message)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("unit status %s %q, want %s containing %q", got.Status, got.Message, st, want)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestFalcoEngineTLS: with webhook-tls, Falco's k8saudit webhook serves https with the secret's
// certificate; kube-apiserver's webhook client configured from the webhook-config action's own
// kubeconfig delivers to it; a renewed certificate (secret-changed) is served after Falco's
// reload, without restarting the agent.
func TestFalcoEngineTLS(t *testing.T) {
	u := newFalcoUnit(t)
	certPEM, keyPEM := selfSigned(t)
	uri := u.AddSecret("d0nhl5nmp25c7f2pu3d0", map[string]string{"certificate": string(certPEM), "private-key": string(keyPEM)}, true)
	u.config(map[string]any{"webhook-tls": uri})
	u.hook("install")
	waitFalcoWebhook(t, u)
	waitActive(t, u, "falco 0.44.1: ")
	if fi, err := os.Stat(u.root + charm.FalcoTLSPath); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("%s: %v %v", charm.FalcoTLSPath, fi, err)
	}
	if served := servedCert(t, u); served != string(certPEM) {
		t.Fatal("Falco does not serve the webhook-tls certificate")
	}

	res := u.action("webhook-config", map[string]any{"server": fmt.Sprintf("127.0.0.1:%d", u.port)})
	kubeconfig := filepath.Join(t.TempDir(), "audit-webhook.kubeconfig")
	if err := os.WriteFile(kubeconfig, []byte(res["kubeconfig"].(string)), 0o600); err != nil {
		t.Fatal(err)
	}
	b, err := webhook.NewBackend(kubeconfig, auditv1.SchemeGroupVersion, utilwebhook.DefaultRetryBackoffWithInitialDelay(100*time.Millisecond), nil)
	if err != nil {
		t.Fatal(err)
	}
	client := &auditClient{b: b}
	client.send(t, podCreate("tls", "t1", true))
	waitJournaled(t, u, "Privileged Container Started in Pod", "tls", 1)

	// Renewal: a new revision of the secret, secret-changed; Falco reloads it on SIGHUP.
	started := u.agentStatus().StartedAt
	cert2, key2 := selfSigned(t)
	u.AddSecret("d0nhl5nmp25c7f2pu3d0", map[string]string{"certificate": string(cert2), "private-key": string(key2)}, true)
	if r := u.Hook("secret-changed", "JUJU_SECRET_ID="+uri, "JUJU_SECRET_LABEL="); r.Code != 0 {
		t.Fatal(r)
	}
	deadline := time.Now().Add(30 * time.Second)
	for servedCert(t, u) != string(cert2) {
		if time.Now().After(deadline) {
			t.Fatal("Falco never served the renewed certificate")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !u.agentStatus().StartedAt.Equal(started) {
		t.Error("the agent was restarted for a certificate only Falco serves")
	}
}

// servedCert is the PEM certificate the webhook port serves ("" while it does not answer).
func servedCert(tb testing.TB, u *unit) string {
	tb.Helper()
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", fmt.Sprintf("127.0.0.1:%d", u.port), &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // reading the served certificate only
	if err != nil {
		return ""
	}
	defer conn.Close()
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: conn.ConnectionState().PeerCertificates[0].Raw}))
}
