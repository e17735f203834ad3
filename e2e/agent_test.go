package e2e

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// alert is the part of Falco's JSON alert the tests look at.
type alert struct {
	Rule         string         `json:"rule"`
	Priority     string         `json:"priority"`
	Source       string         `json:"source"`
	Hostname     string         `json:"hostname"`
	Output       string         `json:"output"`
	OutputFields map[string]any `json:"output_fields"`
	Tags         []string       `json:"tags"`
}

func (a alert) field(k string) string {
	if v, ok := a.OutputFields[k]; ok && v != nil {
		return fmt.Sprint(v)
	}
	return ""
}

// alerts collects the alerts of every agent process of a test, across restarts.
type alerts struct {
	mu      sync.Mutex
	all     []alert
	changed chan struct{}
}

func newAlerts() *alerts { return &alerts{changed: make(chan struct{})} }

func (as *alerts) add(a alert) {
	as.mu.Lock()
	as.all = append(as.all, a)
	close(as.changed)
	as.changed = make(chan struct{})
	as.mu.Unlock()
}

// wait returns the first alert matching match, waiting up to timeout.
func (as *alerts) wait(t *testing.T, timeout time.Duration, what string, match func(alert) bool) alert {
	t.Helper()
	deadline := time.After(timeout)
	for {
		as.mu.Lock()
		for _, a := range as.all {
			if match(a) {
				as.mu.Unlock()
				return a
			}
		}
		ch := as.changed
		n := len(as.all)
		as.mu.Unlock()
		select {
		case <-ch:
		case <-deadline:
			as.mu.Lock()
			var rules []string
			for _, a := range as.all {
				rules = append(rules, a.Rule+"("+a.field("ka.target.namespace")+"/"+a.field("ka.target.name")+")")
			}
			as.mu.Unlock()
			t.Fatalf("no alert for %s within %s; %d alerts seen: %s", what, timeout, n, strings.Join(rules, ", "))
		}
	}
}

// agentProc is the falco-k8s agent running as a separate process.
type agentProc struct {
	cmd    *exec.Cmd
	done   chan struct{}
	stderr *os.File
}

// agentEnv is what every start of the agent shares: binary, port, credentials, rules, config.
type agentEnv struct {
	bin      string
	dir      string
	addr     string
	certPEM  []byte
	token    string
	args     []string
	alerts   *alerts
	logPath  string
	starts   int
	logMu    sync.Mutex
	lastProc *agentProc
}

// agentBinary returns $FALCO_K8S_BIN or builds the command into dir.
func agentBinary(t *testing.T, dir string) string {
	t.Helper()
	if b := os.Getenv("FALCO_K8S_BIN"); b != "" {
		abs, err := filepath.Abs(b)
		if err != nil {
			t.Fatal(err)
		}
		return abs
	}
	out := filepath.Join(dir, "falco-k8s")
	cmd := exec.Command("go", "build", "-o", out, "./cmd/falco-k8s")
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build agent: %v\n%s", err, b)
	}
	return out
}

// newAgentEnv prepares TLS, the bearer token and the webhook kubeconfig kube-apiserver uses.
func newAgentEnv(t *testing.T, dir string) (*agentEnv, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // the agent listens on it; nothing else on this host picks fixed ports
	e := &agentEnv{bin: agentBinary(t, dir), dir: dir, addr: addr, alerts: newAlerts(),
		token: "e2e-webhook-token-" + fmt.Sprint(time.Now().UnixNano()), logPath: filepath.Join(dir, "agent.log")}
	certFile, keyFile := filepath.Join(dir, "webhook.crt"), filepath.Join(dir, "webhook.key")
	e.certPEM = writeServingCert(t, certFile, keyFile)
	tokenFile := filepath.Join(dir, "webhook.token")
	if err := os.WriteFile(tokenFile, []byte(e.token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e.args = []string{"agent",
		"-o", "webhook.listen=" + addr,
		"-o", "webhook.tls.cert_file=" + certFile, "-o", "webhook.tls.key_file=" + keyFile,
		"-o", "webhook.bearer_token_file=" + tokenFile,
		"-o", "outputs.json_output=true", "-o", "outputs.hostname=e2e-host",
		"-o", "rules.state_dir=" + filepath.Join(dir, "state"),
		"-o", "log.format=json", "-o", "log.level=debug",
	}

	// The audit webhook kubeconfig, as the charm's webhook-config action produces it.
	kc := clientcmdapi.NewConfig()
	kc.Clusters["falco-k8s"] = &clientcmdapi.Cluster{Server: "https://" + addr + "/k8s-audit", CertificateAuthorityData: e.certPEM}
	kc.AuthInfos["kube-apiserver"] = &clientcmdapi.AuthInfo{Token: e.token}
	kc.Contexts["default"] = &clientcmdapi.Context{Cluster: "falco-k8s", AuthInfo: "kube-apiserver"}
	kc.CurrentContext = "default"
	whcfg := filepath.Join(dir, "audit-webhook.kubeconfig")
	if err := clientcmd.WriteToFile(*kc, whcfg); err != nil {
		t.Fatal(err)
	}
	return e, whcfg
}

// start runs the agent and waits until its webhook answers /readyz.
func (e *agentEnv) start(t *testing.T, extra ...string) *agentProc {
	t.Helper()
	e.starts++
	logf, err := os.OpenFile(e.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(logf, "=== agent start %d\n", e.starts)
	cmd := exec.Command(e.bin, append(append([]string(nil), e.args...), extra...)...)
	cmd.Stderr = logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start agent: %v", err)
	}
	p := &agentProc{cmd: cmd, done: make(chan struct{}), stderr: logf}
	e.lastProc = p
	go func() {
		// Alerts are JSON lines on stdout; anything else there would be a bug worth seeing.
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var a alert
			if err := json.Unmarshal(sc.Bytes(), &a); err != nil || a.Rule == "" {
				fmt.Fprintf(logf, "unexpected stdout line: %s\n", sc.Text())
				continue
			}
			e.alerts.add(a)
		}
		io.Copy(io.Discard, stdout) //nolint:errcheck
		cmd.Wait()                  //nolint:errcheck // the exit status is checked by stop
		logf.Close()
		close(p.done)
	}()
	if err := e.waitReady(10*time.Second, p); err != nil {
		t.Fatalf("agent not ready: %v\n%s", err, e.logTail())
	}
	return p
}

func (e *agentEnv) waitReady(timeout time.Duration, p *agentProc) error {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(e.certPEM)
	client := httpsClient(pool)
	deadline := time.Now().Add(timeout)
	for {
		select {
		case <-p.done:
			return fmt.Errorf("agent exited: %v", p.cmd.ProcessState)
		default:
		}
		resp, err := client.Get("https://" + e.addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no 200 from /readyz after %s (last: %v)", timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// kill ends the agent without any chance to flush or drain: SIGKILL.
func (p *agentProc) kill(t *testing.T) {
	t.Helper()
	p.cmd.Process.Kill() //nolint:errcheck // may have exited
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		t.Fatal("agent did not exit after SIGKILL")
	}
}

// stop ends the agent gracefully and checks it exited cleanly.
func (p *agentProc) stop(t *testing.T) {
	t.Helper()
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM) //nolint:errcheck
	select {
	case <-p.done:
	case <-time.After(40 * time.Second):
		p.cmd.Process.Kill() //nolint:errcheck
		<-p.done
		t.Error("agent did not stop within 40s of SIGTERM")
	}
	if st := p.cmd.ProcessState; st != nil && !st.Success() {
		t.Errorf("agent exited with %v", st)
	}
}

func (e *agentEnv) logTail() string {
	b, _ := os.ReadFile(e.logPath)
	if len(b) > 8<<10 {
		b = b[len(b)-8<<10:]
	}
	return "--- agent log (tail) ---\n" + string(b)
}

// writeServingCert writes a self-signed certificate for 127.0.0.1 and returns its PEM, which is
// also the CA kube-apiserver trusts for the webhook.
func writeServingCert(t *testing.T, certFile, keyFile string) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "falco-k8s e2e webhook"},
		NotBefore:    time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		IsCA: true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if err := os.WriteFile(certFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certPEM
}
