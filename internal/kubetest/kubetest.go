// Package kubetest runs a real control plane for tests: Debian's etcd and a kube-apiserver
// built from the pinned k8s.io/kubernetes (scripts/build-kube-apiserver.sh), as separate
// processes on 127.0.0.1, with token authentication, AlwaysAllow authorisation and, optionally,
// the audit webhook pointed at a receiver.
//
// The tier is opt-in so that `go test ./...` stays fast:
//
//   - FALCO_K8S_E2E=1 requests it. Assets are then looked up in $FALCO_K8S_E2E_ASSETS, else in
//     the build script's cache directory; etcd may also be on PATH. Missing assets skip the test
//     on a developer machine and fail it when CI=true.
//   - FALCO_K8S_E2E_ASSETS pointing at a directory with the assets also runs it.
//   - -short always skips it.
package kubetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// KubeVersion is the kube-apiserver version the build script produces (e2e/kube-apiserver/go.mod).
const KubeVersion = "v1.31.4"

// Assets are the control-plane binaries.
type Assets struct {
	KubeAPIServer string
	Etcd          string
}

// DefaultAssetsDir is where scripts/build-kube-apiserver.sh caches the binary.
func DefaultAssetsDir() string {
	base := os.Getenv("XDG_CACHE_HOME")
	if base == "" {
		home, _ := os.UserHomeDir()
		base = filepath.Join(home, ".cache")
	}
	return filepath.Join(base, "falco-k8s", "k8s-"+KubeVersion)
}

// FindAssets looks for kube-apiserver in dir and etcd in dir or on PATH.
func FindAssets(dir string) (Assets, error) {
	var a Assets
	var missing []string
	if p := filepath.Join(dir, "kube-apiserver"); isExecutable(p) {
		a.KubeAPIServer = p
	} else {
		missing = append(missing, fmt.Sprintf("kube-apiserver (scripts/build-kube-apiserver.sh builds it into %s)", dir))
	}
	if p := filepath.Join(dir, "etcd"); isExecutable(p) {
		a.Etcd = p
	} else if p, err := exec.LookPath("etcd"); err == nil {
		a.Etcd = p
	} else {
		missing = append(missing, "etcd (apt-get install -y etcd-server)")
	}
	if len(missing) > 0 {
		return a, fmt.Errorf("end-to-end assets missing: %s", strings.Join(missing, "; "))
	}
	return a, nil
}

func isExecutable(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0
}

// Require returns the assets or ends the test: skipped unless the tier is requested, failed
// when it is requested in CI and the assets are missing.
func Require(tb testing.TB) Assets {
	tb.Helper()
	if testing.Short() {
		tb.Skip("end-to-end tier skipped in -short mode")
	}
	dir := os.Getenv("FALCO_K8S_E2E_ASSETS")
	requested := os.Getenv("FALCO_K8S_E2E") == "1"
	if dir == "" {
		if !requested {
			tb.Skip("end-to-end tier not requested: set FALCO_K8S_E2E=1 (make e2e-kube)")
		}
		dir = DefaultAssetsDir()
	}
	a, err := FindAssets(dir)
	if err != nil {
		if requested && os.Getenv("CI") == "true" {
			tb.Fatalf("%v", err)
		}
		tb.Skipf("%v", err)
	}
	return a
}

// Options configure a control plane.
type Options struct {
	// AuditPolicyFile and AuditWebhookConfigFile turn the audit webhook on (batch mode, 1 s
	// batches, 1 s initial retry backoff) when both are set.
	AuditPolicyFile        string
	AuditWebhookConfigFile string
	// ExtraArgs are appended to kube-apiserver's flags.
	ExtraArgs []string
	// Logs receives both processes' output (nil discards it; on failure the tail is reported).
	Logs io.Writer
}

// ControlPlane is a running etcd and kube-apiserver.
type ControlPlane struct {
	// Dir holds the data, certificates and the admin kubeconfig.
	Dir string
	// Kubeconfig is the path of an admin kubeconfig (token user in group system:masters).
	Kubeconfig string
	// Config is the same as a rest.Config.
	Config *rest.Config
	// URL is the apiserver's https URL.
	URL string

	etcd, apiserver *exec.Cmd
	logs            *tailBuffer
	stopOnce        sync.Once
}

// AdminUser is the user of the admin token.
const AdminUser = "e2e-admin"

// Start starts etcd and kube-apiserver and waits until the apiserver is ready and its system
// namespaces exist. Stop it with Stop.
func Start(ctx context.Context, a Assets, dir string, o Options) (*ControlPlane, error) {
	cp := &ControlPlane{Dir: dir, logs: &tailBuffer{max: 64 << 10}}
	var logs io.Writer = cp.logs
	if o.Logs != nil {
		logs = io.MultiWriter(cp.logs, o.Logs)
	}
	if err := cp.start(ctx, a, o, logs); err != nil {
		cp.Stop()
		return nil, fmt.Errorf("%w\n--- control plane log (tail) ---\n%s", err, cp.logs.String())
	}
	return cp, nil
}

func (cp *ControlPlane) start(ctx context.Context, a Assets, o Options, logs io.Writer) error {
	if err := os.MkdirAll(cp.Dir, 0o700); err != nil {
		return fmt.Errorf("control plane directory: %w", err)
	}
	ports, err := freePorts(3)
	if err != nil {
		return err
	}
	etcdClient, etcdPeer, apiPort := ports[0], ports[1], ports[2]
	cp.etcd = exec.Command(a.Etcd,
		"--name=e2e", "--data-dir="+filepath.Join(cp.Dir, "etcd"),
		"--listen-client-urls=http://127.0.0.1:"+strconv.Itoa(etcdClient),
		"--advertise-client-urls=http://127.0.0.1:"+strconv.Itoa(etcdClient),
		"--listen-peer-urls=http://127.0.0.1:"+strconv.Itoa(etcdPeer),
		"--initial-advertise-peer-urls=http://127.0.0.1:"+strconv.Itoa(etcdPeer),
		"--initial-cluster=e2e=http://127.0.0.1:"+strconv.Itoa(etcdPeer),
		// Tests need no durability; skipping fsync keeps a contended CI disk out of the timings.
		"--unsafe-no-fsync",
	)
	cp.etcd.Stdout, cp.etcd.Stderr = prefixed(logs, "etcd: "), prefixed(logs, "etcd: ")
	cp.etcd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cp.etcd.Start(); err != nil {
		return fmt.Errorf("start etcd: %w", err)
	}

	token, err := randomHex(16)
	if err != nil {
		return err
	}
	tokenFile := filepath.Join(cp.Dir, "tokens.csv")
	// token,user,uid,"groups"
	if err := os.WriteFile(tokenFile, []byte(token+","+AdminUser+",e2e-admin-uid,\"system:masters\"\n"), 0o600); err != nil {
		return err
	}
	saKey := filepath.Join(cp.Dir, "sa.key")
	if err := writeRSAKey(saKey); err != nil {
		return err
	}
	certDir := filepath.Join(cp.Dir, "certs")
	args := []string{
		"--etcd-servers=http://127.0.0.1:" + strconv.Itoa(etcdClient),
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(apiPort), "--cert-dir=" + certDir,
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + saKey, "--service-account-signing-key-file=" + saKey,
		"--service-cluster-ip-range=10.0.0.0/24",
		"--token-auth-file=" + tokenFile, "--authorization-mode=AlwaysAllow",
		// No controller manager runs, so no default service account would ever appear.
		"--disable-admission-plugins=ServiceAccount",
		"--allow-privileged=true", "--endpoint-reconciler-type=none",
	}
	if o.AuditPolicyFile != "" && o.AuditWebhookConfigFile != "" {
		args = append(args,
			"--audit-policy-file="+o.AuditPolicyFile,
			"--audit-webhook-config-file="+o.AuditWebhookConfigFile,
			"--audit-webhook-mode=batch",
			"--audit-webhook-batch-max-wait=1s",
			"--audit-webhook-initial-backoff=1s",
		)
	}
	args = append(args, o.ExtraArgs...)
	if err := waitTCP(ctx, "127.0.0.1:"+strconv.Itoa(etcdClient), 30*time.Second); err != nil {
		return fmt.Errorf("etcd not listening: %w", err)
	}
	cp.apiserver = exec.Command(a.KubeAPIServer, args...)
	cp.apiserver.Stdout, cp.apiserver.Stderr = prefixed(logs, "kube-apiserver: "), prefixed(logs, "kube-apiserver: ")
	cp.apiserver.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cp.apiserver.Start(); err != nil {
		return fmt.Errorf("start kube-apiserver: %w", err)
	}

	cp.URL = "https://127.0.0.1:" + strconv.Itoa(apiPort)
	cp.Kubeconfig = filepath.Join(cp.Dir, "admin.kubeconfig")
	// The serving certificate is generated into --cert-dir at start-up; until it exists the
	// client cannot trust it, so the kubeconfig is written once it does.
	crt := filepath.Join(certDir, "apiserver.crt")
	if err := waitFile(ctx, crt, 60*time.Second, cp.apiserver); err != nil {
		return fmt.Errorf("kube-apiserver serving certificate: %w", err)
	}
	ca, err := os.ReadFile(crt)
	if err != nil {
		return err
	}
	kc := clientcmdapi.NewConfig()
	kc.Clusters["e2e"] = &clientcmdapi.Cluster{Server: cp.URL, CertificateAuthorityData: ca}
	kc.AuthInfos[AdminUser] = &clientcmdapi.AuthInfo{Token: token}
	kc.Contexts["e2e"] = &clientcmdapi.Context{Cluster: "e2e", AuthInfo: AdminUser, Namespace: "default"}
	kc.CurrentContext = "e2e"
	if err := clientcmd.WriteToFile(*kc, cp.Kubeconfig); err != nil {
		return fmt.Errorf("write kubeconfig: %w", err)
	}
	if cp.Config, err = clientcmd.BuildConfigFromFlags("", cp.Kubeconfig); err != nil {
		return fmt.Errorf("load kubeconfig: %w", err)
	}
	return cp.waitReady(ctx, 90*time.Second)
}

// waitReady polls /readyz, then waits for the namespaces the bootstrap controller creates
// (pods cannot be created in a namespace that does not exist yet).
func (cp *ControlPlane) waitReady(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cs, err := kubernetes.NewForConfig(cp.Config)
	if err != nil {
		return err
	}
	var last error
	for {
		if exited(cp.apiserver) {
			return errors.New("kube-apiserver exited during start-up")
		}
		_, last = cs.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		if last == nil {
			for _, ns := range []string{"default", "kube-system"} {
				if _, last = cs.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); last != nil {
					break
				}
			}
		}
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("kube-apiserver not ready after %s: %w", timeout, last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Clientset returns a clientset for the admin user.
func (cp *ControlPlane) Clientset() (*kubernetes.Clientset, error) {
	return kubernetes.NewForConfig(cp.Config)
}

// Logs returns the tail of both processes' output.
func (cp *ControlPlane) Logs() string { return cp.logs.String() }

// Stop terminates kube-apiserver, then etcd.
func (cp *ControlPlane) Stop() {
	cp.stopOnce.Do(func() {
		for _, c := range []*exec.Cmd{cp.apiserver, cp.etcd} {
			stopProcess(c, 10*time.Second)
		}
	})
}

func stopProcess(c *exec.Cmd, grace time.Duration) {
	if c == nil || c.Process == nil {
		return
	}
	done := make(chan struct{})
	go func() { c.Wait(); close(done) }() //nolint:errcheck // exit status of a killed process
	c.Process.Signal(syscall.SIGTERM)     //nolint:errcheck // may have exited already
	select {
	case <-done:
	case <-time.After(grace):
		c.Process.Kill() //nolint:errcheck
		<-done
	}
}

func exited(c *exec.Cmd) bool {
	if c == nil || c.Process == nil {
		return true
	}
	// Signal 0 checks existence; a zombie still exists, so look at the process state too.
	if err := c.Process.Signal(syscall.Signal(0)); err != nil {
		return true
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", c.Process.Pid))
	if err != nil {
		return true
	}
	if i := bytes.LastIndexByte(b, ')'); i > 0 && i+2 < len(b) {
		return b[i+2] == 'Z'
	}
	return false
}

// FreePort returns a TCP port that was free on 127.0.0.1 a moment ago.
func FreePort() (int, error) {
	p, err := freePorts(1)
	if err != nil {
		return 0, err
	}
	return p[0], nil
}

// freePorts holds all listeners open together so the ports are distinct.
func freePorts(n int) ([]int, error) {
	var lns []net.Listener
	defer func() {
		for _, l := range lns {
			l.Close()
		}
	}()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("free port: %w", err)
		}
		lns = append(lns, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func waitTCP(ctx context.Context, addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		c, err := (&net.Dialer{Timeout: time.Second}).DialContext(ctx, "tcp", addr)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func waitFile(ctx context.Context, path string, timeout time.Duration, proc *exec.Cmd) error {
	deadline := time.Now().Add(timeout)
	for {
		if st, err := os.Stat(path); err == nil && st.Size() > 0 {
			return nil
		}
		if exited(proc) {
			return errors.New("process exited")
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not written after %s", path, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func writeRSAKey(path string) error {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return fmt.Errorf("generate service account key: %w", err)
	}
	b := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)})
	return os.WriteFile(path, b, 0o600)
}

func randomHex(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
	max int
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}

// prefixed writes each line to w with a prefix, so interleaved process logs stay readable.
func prefixed(w io.Writer, prefix string) io.Writer {
	return &prefixWriter{w: w, prefix: []byte(prefix), bol: true}
}

type prefixWriter struct {
	mu     sync.Mutex
	w      io.Writer
	prefix []byte
	bol    bool
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []byte
	for _, c := range b {
		if p.bol {
			out = append(out, p.prefix...)
		}
		out = append(out, c)
		p.bol = c == '\n'
	}
	if _, err := p.w.Write(out); err != nil {
		return 0, err
	}
	return len(b), nil
}
