package charmtest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/falco-k8s/falco-k8s/artifact/auth"
	"github.com/falco-k8s/falco-k8s/artifact/oci"
	"github.com/falco-k8s/falco-k8s/artifact/ref"
	"github.com/falco-k8s/falco-k8s/charm"
	"github.com/falco-k8s/falco-k8s/internal/testregistry"
)

func TestFreshInstall(t *testing.T) {
	u := newUnit(t, unitOpts{})
	for _, h := range []string{"install", "leader-elected", "config-changed", "start", "falco-pebble-ready"} {
		u.hook(h)
	}
	u.wantStatus("active", "rules (built-in)")
	st := u.State()
	if want := fmt.Sprintf("%d/tcp", u.port); len(st.OpenedPorts) != 1 || st.OpenedPorts[0] != want {
		t.Errorf("opened ports %v, want [%s]", st.OpenedPorts, want)
	}
	if st.AppVersion != "charmtest" {
		t.Errorf("application version %q", st.AppVersion)
	}
	// The agent answers: health, readiness, and the audit webhook itself.
	for _, p := range []string{"/healthz", "/readyz"} {
		resp, err := http.Get(u.statusURL(p))
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("GET %s: %v %v", p, resp, err)
		}
		resp.Body.Close()
	}
	if code := postAudit(t, http.DefaultClient, fmt.Sprintf("http://127.0.0.1:%d/k8s-audit", u.port)); code != 200 {
		t.Errorf("webhook answered %d", code)
	}
	// Files in the workload: the agent binary and its config, nothing else.
	for _, f := range []string{charm.BinaryPath, charm.AgentConfigPath} {
		if _, err := os.Stat(u.root + f); err != nil {
			t.Errorf("workload file: %v", err)
		}
	}

	// Hooks without a change do not restart the agent; a change restarts it once.
	started := u.agentStatus().StartedAt
	u.hook("config-changed")
	u.hook("update-status")
	if s := u.agentStatus(); !s.StartedAt.Equal(started) {
		t.Errorf("agent restarted by a hook that changed nothing")
	}
	u.config(map[string]any{"minimum-priority": "warning"})
	u.hook("config-changed")
	s := u.agentStatus()
	if s.StartedAt.Equal(started) || s.Ruleset.MinPriority != "Warning" && !strings.EqualFold(s.Ruleset.MinPriority, "warning") {
		t.Errorf("config change not applied: started %v→%v, min priority %q", started, s.StartedAt, s.Ruleset.MinPriority)
	}
	u.wantStatus("active", "rules (built-in)")
}

func TestPebbleNotReady(t *testing.T) {
	u := newUnit(t, unitOpts{noPebble: true})
	u.hook("install")
	u.wantStatus("waiting", "Pebble not reachable")
	if len(u.State().OpenedPorts) != 0 {
		t.Errorf("port opened before the workload exists")
	}
	// The container comes up: pebble-ready converges.
	p := startPebble(t)
	u.pebble = p
	u.Extra[0] = "FALCO_K8S_PEBBLE_SOCKET=" + p.Socket
	u.hook("falco-pebble-ready")
	u.wantStatus("active", "rules (built-in)")
}

func TestBadConfig(t *testing.T) {
	u := newUnit(t, unitOpts{})
	u.hook("install")
	u.wantStatus("active", "")
	started := u.agentStatus().StartedAt
	for _, tc := range []struct {
		set  map[string]any
		want string
	}{
		{map[string]any{"webhook-port": int64(99999)}, "invalid config webhook-port: must be 1-65535, got 99999 (fix: juju config falco-k8s webhook-port=9765)"},
		{map[string]any{"minimum-priority": "loud"}, `invalid config minimum-priority: "loud" is not one of`},
		{map[string]any{"follow-interval": "5s"}, `invalid config follow-interval: "5s" is not a duration of at least 1m`},
		{map[string]any{"rules-artifacts": "ghcr.io/acme/rules:1", "rule-files": ""}, "invalid config rule-files: required when rules-artifacts is set"},
		{map[string]any{"rules-artifacts": "k8saudit-rules:0.7"}, `invalid config rules-artifacts: "k8saudit-rules:0.7" is an index name but no indexes are configured`},
		{map[string]any{"rules-artifacts": "ghcr.io/acme/Rules:1"}, "invalid config rules-artifacts:"},
		{map[string]any{"rule-files": "../etc/passwd"}, `invalid config rule-files: "../etc/passwd" must be a clean relative path`},
		{map[string]any{"http-output": "ftp://x"}, `invalid config http-output: "ftp://x" is not an http(s) URL`},
		{map[string]any{"http-output": "https://user:hunter22@x/"}, "credentials in the URL are not supported"},
		{map[string]any{"log-level": "chatty"}, `invalid config log-level: "chatty"`},
		{map[string]any{"plain-http-registries": "http://reg:5000"}, `invalid config plain-http-registries: "http://reg:5000" is not a registry host`},
		{map[string]any{"registry-ca": "reg:5000: not-a-pem"}, "invalid config registry-ca: the CA for reg:5000 is not a PEM certificate bundle"},
		{map[string]any{"registry-auth-secret": "Bad_Name"}, `invalid config registry-auth-secret: "Bad_Name" is not a Kubernetes Secret name`},
		{map[string]any{"indexes": "falcosecurity"}, "invalid config indexes: entry 1 must be NAME,URL[,BACKEND]"},
	} {
		u.config(tc.set)
		u.hook("config-changed")
		u.wantStatus("blocked", tc.want)
		if strings.Contains(u.State().UnitStatus.Message, "hunter22") {
			t.Errorf("password in status")
		}
		reset := map[string]any{}
		for k := range tc.set {
			reset[k] = nil
		}
		reset["webhook-port"] = int64(u.port)
		u.config(reset)
	}
	// The agent kept running the last good configuration throughout, and fixing the config
	// clears blocked.
	if s := u.agentStatus(); !s.StartedAt.Equal(started) {
		t.Errorf("an invalid config touched the running agent")
	}
	u.hook("config-changed")
	u.wantStatus("active", "rules (built-in)")

	// Juju itself refuses unknown options and wrongly typed values before any hook runs.
	if err := u.SetConfig(map[string]any{"webhook_port": int64(1)}); err == nil {
		t.Errorf("fake juju accepted an unknown option")
	}
	if err := u.SetConfig(map[string]any{"webhook-port": "x"}); err == nil {
		t.Errorf("fake juju accepted a string for an int option")
	}
}

func TestRegistryAuthSecret(t *testing.T) {
	k := newFakeKube(t)
	u := newUnit(t, unitOpts{kube: k})
	u.config(map[string]any{"registry-auth-secret": "regauth"})
	u.hook("config-changed")
	u.wantStatus("blocked", "secret regauth is expected in namespace audit")

	k.setSecret("audit", "regauth", map[string][]byte{"token": []byte("x")})
	u.hook("update-status")
	u.wantStatus("blocked", "secret regauth has no key falcoctl")

	k.setSecret("audit", "regauth", map[string][]byte{"falcoctl": []byte("ghcr.io,bob")})
	u.hook("update-status")
	u.wantStatus("blocked", "secret regauth key falcoctl: FALCOCTL_REGISTRY_AUTH_BASIC: entry 1 has 2 comma-separated fields")

	k.setSecret("audit", "regauth", map[string][]byte{"falcoctl": []byte("ghcr.io,bob,s3cr3t-pw")})
	u.hook("update-status")
	u.wantStatus("active", "rules (built-in)")
	fi, err := os.Stat(u.root + charm.RegistryAuthPath)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("registry auth file: %v %v", fi, err)
	}

	// Clearing the option removes the credentials from the workload.
	u.config(map[string]any{"registry-auth-secret": nil})
	u.hook("config-changed")
	if _, err := os.Stat(u.root + charm.RegistryAuthPath); !os.IsNotExist(err) {
		t.Errorf("credentials left in the workload: %v", err)
	}
	assertNoSecret(t, u, "s3cr3t-pw")
}

func TestRegistryAuthSecretWithoutCluster(t *testing.T) {
	u := newUnit(t, unitOpts{}) // no kubeconfig, not in a pod
	u.config(map[string]any{"registry-auth-secret": "regauth"})
	u.hook("config-changed")
	u.wantStatus("blocked", "registry-auth-secret regauth needs the Kubernetes API: deploy with --trust")
}

func TestJujuSecretNotGranted(t *testing.T) {
	u := newUnit(t, unitOpts{})
	uri := u.AddSecret("d0nhl5nmp25c7f2pu3a0", map[string]string{"registry": "ghcr.io", "username": "bob", "password": "pw-123456"}, false)
	u.config(map[string]any{"registry-credentials": uri})
	u.hook("config-changed")
	u.wantStatus("blocked", "registry-credentials: secret not granted (juju grant-secret "+uri+" falco-k8s)")
}

// rulesArtifact is a one-rule rulesfile.
const rulesArtifact = `- rule: Charm Test ConfigMap Created
  desc: a configmap named charm-test was created
  condition: ka.verb=create and ka.target.resource=configmaps and ka.target.name=charm-test
  output: charm test configmap created (user=%ka.user.name)
  priority: WARNING
  source: k8s_audit
  tags: [charm-test]
`

// pushRules pushes files as a rulesfile artifact and returns its digest.
func pushRules(t testing.TB, reg *testregistry.Registry, user, pass, repoTag string, files map[string]string) string {
	t.Helper()
	res, err := auth.NewResolver(context.Background(), auth.Sources{Basic: []auth.Basic{{Registry: reg.Host, User: user, Password: pass}}, DisableDockerCfg: true})
	if err != nil {
		t.Fatal(err)
	}
	c, err := oci.NewClient(oci.Options{PlainHTTP: true, Credential: res.Credential})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for name, body := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		io.WriteString(tw, body) //nolint:errcheck // bytes.Buffer
	}
	tw.Close()
	zw.Close()
	path := filepath.Join(t.TempDir(), "rules.tar.gz")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := ref.Parse(reg.Host + "/" + repoTag)
	if err != nil {
		t.Fatal(err)
	}
	pr, err := c.Push(context.Background(), r, oci.PushOptions{Type: oci.Rulesfile, Layers: []oci.Layer{{Path: path}},
		Config: oci.ArtifactConfig{Name: "charm-test-rules", Version: "1.0.0"}})
	if err != nil {
		t.Fatal(err)
	}
	return pr.Root.Digest.String()
}

// waitActive runs update-status until the unit status contains want (the follower works in
// the background after the hook that started it).
func waitActive(t *testing.T, u *unit, want string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		u.hook("update-status")
		got := u.State().UnitStatus
		if got.Status == "active" && strings.Contains(got.Message, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("unit status %s %q, want active containing %q", got.Status, got.Message, want)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func TestRegistryRefusesCredentials(t *testing.T) {
	reg := testregistry.New(t, testregistry.Options{User: "ci", Password: "right-pass"})
	pushRules(t, reg, "ci", "right-pass", "acme/k8s-rules:1", map[string]string{"k8s_audit_rules.yaml": rulesArtifact})
	k := newFakeKube(t)
	k.setSecret("audit", "regauth", map[string][]byte{"falcoctl": []byte(reg.Host + ",ci,wrong-pass")})
	u := newUnit(t, unitOpts{kube: k})
	u.config(map[string]any{
		"rules-artifacts":       reg.Host + "/acme/k8s-rules:1",
		"rule-files":            "k8s_audit_rules.yaml",
		"plain-http-registries": reg.Host,
		"registry-auth-secret":  "regauth",
	})
	u.hook("install")
	// Deployment rules keep running; the message names the registry that refused.
	waitActive(t, u, "registry "+reg.Host+" refused the credentials")
	u.wantStatus("active", "rules (built-in)")
	assertNoSecret(t, u, "wrong-pass")
}

func TestFollowSyncShowAndUpgrade(t *testing.T) {
	reg := testregistry.New(t, testregistry.Options{User: "ci", Password: "right-pass"})
	dgst := pushRules(t, reg, "ci", "right-pass", "acme/k8s-rules:1", map[string]string{"k8s_audit_rules.yaml": rulesArtifact})
	// A copy of the charm binary, so that refreshing the charm can replace it.
	bin := filepath.Join(t.TempDir(), "falco-k8s")
	copyFile(t, charmBin, bin)
	u := newUnit(t, unitOpts{charmBin: bin})
	uri := u.AddSecret("d0nhl5nmp25c7f2pu3b0", map[string]string{"registry": reg.Host, "username": "ci", "password": "right-pass"}, true)
	u.config(map[string]any{
		"rules-artifacts":       reg.Host + "/acme/k8s-rules:1",
		"plain-http-registries": reg.Host,
		"registry-credentials":  uri,
	})
	u.hook("install")
	waitActive(t, u, "k8s-rules@"+dgst[:len("sha256:")+12])

	// sync-rules: nothing new.
	res := u.action("sync-rules", nil)
	refs := res["references"].(map[string]any)["ref-1"].(map[string]any)
	if refs["result"] != "unchanged" || refs["digest"] != dgst || refs["reference"] != reg.Host+"/acme/k8s-rules:1" {
		t.Errorf("sync-rules %v", res)
	}
	// A new digest, dry run: validated, reported, not applied; then applied.
	dgst2 := pushRules(t, reg, "ci", "right-pass", "acme/k8s-rules:1", map[string]string{"k8s_audit_rules.yaml": strings.ReplaceAll(rulesArtifact, "charm-test", "charm-test-2")})
	res = u.action("sync-rules", map[string]any{"dry-run": true})
	if r := res["references"].(map[string]any)["ref-1"].(map[string]any); r["result"] != "accepted" || r["digest"] != dgst2 || res["dry-run"] != "true" {
		t.Errorf("sync-rules dry-run %v", res)
	}
	res = u.action("show-rules", map[string]any{"format": "json", "filter": "charm test"})
	if !strings.Contains(res["rules"].(string), dgst) {
		t.Errorf("dry run applied the new digest: %v", res)
	}
	// An invalid artifact is ignored with the reason.
	pushRules(t, reg, "ci", "right-pass", "acme/k8s-rules:1", map[string]string{"k8s_audit_rules.yaml": "- rule: broken\n  condition: ka.verb=\n"})
	res = u.action("sync-rules", nil)
	if r := res["references"].(map[string]any)["ref-1"].(map[string]any); r["result"] != "ignored" || r["reason"] == "" {
		t.Errorf("sync-rules invalid artifact %v", res)
	}
	dgst3 := pushRules(t, reg, "ci", "right-pass", "acme/k8s-rules:1", map[string]string{"k8s_audit_rules.yaml": strings.ReplaceAll(rulesArtifact, "charm-test", "charm-test-3")})
	res = u.action("sync-rules", nil)
	if r := res["references"].(map[string]any)["ref-1"].(map[string]any); r["result"] != "accepted" || r["digest"] != dgst3 {
		t.Errorf("sync-rules %v", res)
	}
	if res["summary"] != "1 accepted, 0 unchanged, 0 ignored" {
		t.Errorf("summary %q", res["summary"])
	}

	// show-rules in every format.
	res = u.action("show-rules", map[string]any{"filter": "charm test", "format": "table"})
	tbl := res["rules"].(string)
	if res["count"] != "1" || !strings.Contains(tbl, "NAME") || !strings.Contains(tbl, "Charm Test ConfigMap Created") ||
		!strings.Contains(tbl, reg.Host+"/acme/k8s-rules:1@"+dgst3) || !strings.Contains(tbl, "charm-test") || !strings.Contains(tbl, "Warning") {
		t.Errorf("show-rules table:\n%s", tbl)
	}
	res = u.action("show-rules", map[string]any{"filter": "charm test", "format": "yaml", "condition": true})
	if y := res["rules"].(string); !strings.Contains(y, "condition: ka.verb=create") || !strings.Contains(y, "digest: "+dgst3) || !strings.Contains(y, "source: k8s_audit") {
		t.Errorf("show-rules yaml:\n%s", y)
	}
	res = u.action("show-rules", nil)
	if res["format"] != "table" || res["count"] == "0" || res["count"] == "1" {
		t.Errorf("show-rules defaults: count %v format %v", res["count"], res["format"])
	}
	if e, _ := res["engine"].(string); !strings.HasPrefix(e, "falco-k8s") {
		t.Errorf("show-rules engine %q, want falco-k8s and its version", e)
	}

	// upgrade-charm: a new charm binary is pushed and the agent restarted; the registry is down
	// by then, and the accepted rules are still what runs.
	started := u.agentStatus().StartedAt
	reg.Fail(http.StatusServiceUnavailable, "")
	time.Sleep(10 * time.Millisecond) // a different mtime for the refreshed binary
	copyFile(t, charmBin, bin)
	u.hook("upgrade-charm")
	s := u.agentStatus()
	if s.StartedAt.Equal(started) {
		t.Fatalf("upgrade-charm did not restart the agent with the new binary")
	}
	found := false
	for _, f := range s.Ruleset.Files {
		if f.Digest == dgst3 {
			found = true
		}
	}
	if !found {
		t.Errorf("accepted rules lost across upgrade: %+v", s.Ruleset.Files)
	}
	u.wantStatus("active", "k8s-rules@"+dgst3[:len("sha256:")+12])
	assertNoSecret(t, u, "right-pass")
}

func TestWebhookConfig(t *testing.T) {
	k := newFakeKube(t)
	k.setService("audit", "falco-k8s", "10.152.183.7")
	u := newUnit(t, unitOpts{kube: k})
	u.hook("install")
	res := u.action("webhook-config", nil)
	want := fmt.Sprintf("http://10.152.183.7:%d/k8s-audit", u.port)
	if res["server"] != want || !strings.Contains(res["kubeconfig"].(string), "server: "+want) {
		t.Errorf("webhook-config: %v", res)
	}
	if p := res["audit-policy"].(string); !strings.Contains(p, "kind: Policy") || !strings.Contains(p, "RequestResponse") {
		t.Errorf("audit policy: %s", p)
	}
	res = u.action("webhook-config", map[string]any{"server": "192.0.2.10:31765"})
	if res["server"] != "http://192.0.2.10:31765/k8s-audit" {
		t.Errorf("server override: %v", res["server"])
	}

	// With TLS: the agent serves HTTPS and the kubeconfig carries the CA.
	certPEM, keyPEM := selfSigned(t)
	uri := u.AddSecret("d0nhl5nmp25c7f2pu3c0", map[string]string{"certificate": string(certPEM), "private-key": string(keyPEM)}, true)
	u.config(map[string]any{"webhook-tls": uri})
	u.hook("config-changed")
	u.wantStatus("active", "")
	// secret-changed for that secret reads its latest revision (--refresh), other hooks do not.
	if r := u.Hook("secret-changed", "JUJU_SECRET_ID="+uri, "JUJU_SECRET_LABEL="); r.Code != 0 {
		t.Fatal(r)
	}
	var refreshed, plain bool
	for _, c := range u.State().Calls {
		refreshed = refreshed || c == "secret-get --format=json "+uri+" --refresh"
		plain = plain || c == "secret-get --format=json "+uri
	}
	if !refreshed || !plain {
		t.Errorf("secret-get calls: refresh %v, plain %v", refreshed, plain)
	}
	res = u.action("webhook-config", nil)
	kc := res["kubeconfig"].(string)
	if !strings.Contains(kc, "server: https://10.152.183.7:") || !strings.Contains(kc, "certificate-authority-data: ") {
		t.Errorf("TLS kubeconfig:\n%s", kc)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}}}
	if code := postAudit(t, client, fmt.Sprintf("https://127.0.0.1:%d/k8s-audit", u.port)); code != 200 {
		t.Errorf("TLS webhook answered %d", code)
	}
	fi, err := os.Stat(u.root + charm.TLSKeyPath)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("TLS key file: %v %v", fi, err)
	}
	assertNoSecret(t, u, strings.Split(string(keyPEM), "\n")[1])

	// Without a cluster and without server, the action fails with the fix.
	u2 := newUnit(t, unitOpts{})
	u2.hook("install")
	_, a, err := u2.Action("webhook-config", nil)
	if err != nil || !a.Failed || !strings.Contains(a.Message, "pass server=HOST[:PORT]") {
		t.Errorf("webhook-config without cluster: %+v %v", a, err)
	}
}

func TestActionSetKeyRules(t *testing.T) {
	// The fake enforces Juju's action-set rules, so the charm's keys are known to be valid.
	u := newUnit(t, unitOpts{})
	for _, bad := range []string{"Bad_Key=1", "stdout=x", "a..b=1", "-a=1", "novalue"} {
		cmdErr := runTool(t, u, "action-set", bad)
		if cmdErr == nil {
			t.Errorf("action-set %s accepted", bad)
		}
	}
	if err := runTool(t, u, "status-set", "error", "x"); err == nil {
		t.Errorf("status-set error accepted")
	}
	if err := runTool(t, u, "open-port", "9000-9010/tcp"); err == nil {
		t.Errorf("port range accepted on a Kubernetes model")
	}
}

func runTool(t *testing.T, u *unit, tool string, args ...string) error {
	t.Helper()
	if err := u.PrepareAction("show-rules", nil); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(u.BinDir, tool), args...)
	cmd.Env = []string{"FAKE_JUJU_STATE=" + u.StatePath, "JUJU_ACTION_NAME=show-rules"}
	return cmd.Run()
}

// assertNoSecret checks that a credential never reached Juju or a log: not in the charm's
// output, the workload's logs, any hook-tool argument (status messages, action results,
// juju-log) nor the recorded state.
func assertNoSecret(t *testing.T, u *unit, secret string) {
	t.Helper()
	if strings.Contains(u.outputs.String(), secret) {
		t.Errorf("credential in the charm's output (juju debug-log)")
	}
	if u.pebble != nil && strings.Contains(u.pebble.logs.String(), secret) {
		t.Errorf("credential in the workload's logs")
	}
	b, err := os.ReadFile(u.StatePath)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), secret) {
		// The secret content itself is stored in the fake's secret store; anything else leaks.
		st := u.State()
		for _, c := range st.Calls {
			if strings.Contains(c, secret) {
				t.Errorf("credential passed to a hook tool: %q", c)
			}
		}
		for _, l := range st.Logs {
			if strings.Contains(l.Message, secret) {
				t.Errorf("credential in juju-log: %q", l.Message)
			}
		}
		if strings.Contains(st.UnitStatus.Message, secret) {
			t.Errorf("credential in status")
		}
	}
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	tmp := dst + ".tmp"
	if err := os.WriteFile(tmp, b, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		t.Fatal(err)
	}
}

func selfSigned(t *testing.T) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "falco-k8s"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("10.152.183.7")},
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
}

func TestIndexNames(t *testing.T) {
	reg := testregistry.New(t, testregistry.Options{})
	dgst := pushRules(t, reg, "", "", "acme/k8s-rules:2", map[string]string{"k8s_audit_rules.yaml": rulesArtifact})
	var fetches atomic.Int32
	idx := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fetches.Add(1)
		fmt.Fprintf(w, "- name: charm-rules\n  type: rulesfile\n  registry: %s\n  repository: acme/k8s-rules\n  description: test\n  home: https://example.com\n  keywords: [k8s]\n  license: apache-2.0\n  maintainers: []\n  sources: []\n", reg.Host)
	}))
	defer idx.Close()
	u := newUnit(t, unitOpts{})
	u.config(map[string]any{"rules-artifacts": "charm-rules:2", "indexes": "test," + idx.URL + "/index.yaml", "plain-http-registries": reg.Host})
	u.hook("install")
	waitActive(t, u, "k8s-rules@"+dgst[:len("sha256:")+12])
	if n := fetches.Load(); n != 1 {
		t.Errorf("index fetched %d times over several hooks, want once", n)
	}
	u.config(map[string]any{"rules-artifacts": "no-such-rules:1"})
	u.hook("config-changed")
	u.wantStatus("blocked", "rules-artifacts: cannot find no-such-rules among the configured indexes")
}

// postPrivilegedPod posts one privileged pod creation in ns by alice, stamped now so the
// actions' default since=24h window holds it.
func postPrivilegedPod(t *testing.T, u *unit, ns, id string) {
	t.Helper()
	now := time.Now().UTC().Format(time.RFC3339Nano)
	body := fmt.Sprintf(`{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"RequestResponse","auditID":%q,"stage":"ResponseComplete",`+
		`"requestURI":"/api/v1/namespaces/%s/pods","verb":"create","user":{"username":"alice"},"sourceIPs":["10.0.0.7"],`+
		`"objectRef":{"resource":"pods","namespace":%q,"name":"debug","apiVersion":"v1"},"responseStatus":{"code":201},`+
		`"requestObject":{"kind":"Pod","apiVersion":"v1","metadata":{"name":"debug","namespace":%q},"spec":{"containers":[{"name":"c","image":"registry.example/tools/debug:1.2","securityContext":{"privileged":true}}]}},`+
		`"requestReceivedTimestamp":%q,"stageTimestamp":%q}`, id, ns, ns, ns, now, now)
	resp, err := http.Post(fmt.Sprintf("http://127.0.0.1:%d/k8s-audit", u.port), "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("webhook answered %d", resp.StatusCode)
	}
}

// TestLogOnlyRolloutActions drives review-alerts, tune-rules and reset-tuning through the real
// charm binary, Pebble and agent: a tuned namespace stops alerting, another keeps alerting, a
// second tune adds nothing, and a reset brings the alert back.
func TestLogOnlyRolloutActions(t *testing.T) {
	u := newUnit(t, unitOpts{})
	for _, h := range []string{"install", "config-changed", "falco-pebble-ready"} {
		u.hook(h)
	}
	u.wantStatus("active", "rules (built-in)")
	const rule = "Privileged Container Started in Pod"
	count := func(ns string) string {
		t.Helper()
		var res map[string]any
		for range 50 { // the journal is written just after the webhook acknowledges
			res = u.action("review-alerts", map[string]any{"rule": rule, "namespace": ns})
			if res["alerts"] != "0" {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		return fmt.Sprint(res["alerts"])
	}
	postPrivilegedPod(t, u, "team-a", "a1")
	postPrivilegedPod(t, u, "team-b", "b1")
	if n := count("team-a"); n != "1" {
		t.Fatalf("review team-a: %s alerts, want 1", n)
	}
	rev := u.action("review-alerts", map[string]any{})
	if !strings.Contains(fmt.Sprint(rev["review"]), rule) || !strings.Contains(fmt.Sprint(rev["namespaces"]), "team-b") {
		t.Fatalf("review = %v", rev)
	}

	dry := u.action("tune-rules", map[string]any{"scope": "namespace", "namespace": "team-a", "dry-run": true})
	if dry["written"] != "false" || dry["added-count"] != "1" {
		t.Fatalf("dry run = %v", dry)
	}
	res := u.action("tune-rules", map[string]any{"scope": "namespace", "namespace": "team-a"})
	if res["written"] != "true" || res["reloaded"] != "true" || res["added-count"] != "1" {
		t.Fatalf("tune = %v", res)
	}
	if again := u.action("tune-rules", map[string]any{"scope": "namespace", "namespace": "team-a"}); again["added-count"] != "0" || again["written"] != "false" {
		t.Fatalf("second tune is not a no-op: %v", again)
	}

	// The tuned namespace no longer alerts; the other one still does.
	postPrivilegedPod(t, u, "team-a", "a2")
	postPrivilegedPod(t, u, "team-b", "b2")
	if n := count("team-b"); n != "2" {
		// wait for b2 to be journaled, then a2 would have been too
		time.Sleep(200 * time.Millisecond)
		if n = count("team-b"); n != "2" {
			t.Fatalf("team-b: %s alerts, want 2", n)
		}
	}
	if n := count("team-a"); n != "1" {
		t.Fatalf("team-a after tuning: %s alerts, want still 1", n)
	}

	// Reset: the tuning file is set aside and the alert comes back.
	rs := u.action("reset-tuning", map[string]any{})
	if rs["reset"] != "true" || rs["reloaded"] != "true" || !strings.Contains(fmt.Sprint(rs["moved-to"]), "tuning.yaml.") {
		t.Fatalf("reset = %v", rs)
	}
	postPrivilegedPod(t, u, "team-a", "a3")
	back := false
	for range 50 {
		if count("team-a") == "2" {
			back = true
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !back {
		t.Fatalf("team-a after reset: %s alerts, want 2", count("team-a"))
	}

	// Tune and reset again: the second reset never overwrites the first one's copy, even within
	// the same second (the CLI's reset, alerts.ResetFile, over Pebble).
	if res := u.action("tune-rules", map[string]any{"scope": "namespace", "namespace": "team-a"}); res["written"] != "true" {
		t.Fatalf("tune after reset = %v", res)
	}
	rs2 := u.action("reset-tuning", map[string]any{})
	if rs2["reset"] != "true" || fmt.Sprint(rs2["moved-to"]) == fmt.Sprint(rs["moved-to"]) {
		t.Fatalf("second reset = %v (first moved to %v)", rs2, rs["moved-to"])
	}
}
