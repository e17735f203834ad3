package agent

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"flag"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
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
	"k8s.io/apiserver/plugin/pkg/audit/buffered"
	"k8s.io/apiserver/plugin/pkg/audit/webhook"
	"k8s.io/klog/v2"
)

func init() {
	// The webhook client logs every retry through klog; keep test output readable.
	fs := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(fs)
	fs.Set("logtostderr", "false")     //nolint:errcheck // known flag
	fs.Set("stderrthreshold", "FATAL") //nolint:errcheck // known flag
	klog.SetOutput(io.Discard)
}

// tlsFiles writes a CA and a 127.0.0.1 serving certificate; it returns the file paths and the
// CA PEM for the kubeconfig.
func tlsFiles(t testing.TB, dir string) (certFile, keyFile string, caPEM []byte) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test-ca"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "falco-k8s"}, NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	certFile, keyFile = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600)
	return certFile, keyFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
}

// apiserverClient is kube-apiserver's audit webhook backend, wired as kube-apiserver wires it in
// batch mode (buffered.NewBackend around webhook.NewBackend), posting to url.
type apiserverClient struct {
	audit.Backend
	stop chan struct{}
}

func newAPIServerClient(t testing.TB, dir, url string, caPEM []byte, token string, maxBatch int, wait time.Duration) *apiserverClient {
	t.Helper()
	kubeconfig := filepath.Join(dir, "webhook-kubeconfig.yaml")
	kc := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: falco-k8s
  cluster:
    server: %s
    certificate-authority-data: %s
users:
- name: kube-apiserver
  user:
    token: %s
contexts:
- name: default
  context: {cluster: falco-k8s, user: kube-apiserver}
current-context: default
`, url, base64.StdEncoding.EncodeToString(caPEM), token)
	if err := os.WriteFile(kubeconfig, []byte(kc), 0o600); err != nil {
		t.Fatal(err)
	}
	wb, err := webhook.NewBackend(kubeconfig, auditv1.SchemeGroupVersion, utilwebhook.DefaultRetryBackoffWithInitialDelay(wait), nil)
	if err != nil {
		t.Fatal(err)
	}
	b := buffered.NewBackend(wb, buffered.BatchConfig{BufferSize: 10000, MaxBatchSize: maxBatch, MaxBatchWait: 50 * time.Millisecond,
		ThrottleEnable: true, ThrottleQPS: 100, ThrottleBurst: 15, AsyncDelegate: true})
	c := &apiserverClient{Backend: b, stop: make(chan struct{})}
	if err := b.Run(c.stop); err != nil {
		t.Fatal(err)
	}
	return c
}

// shutdown flushes the buffer (Shutdown waits for in-flight batches, retries included).
func (c *apiserverClient) shutdown() {
	close(c.stop)
	c.Shutdown()
}

// podCreate is a real-shaped RequestResponse audit event for a pod create; every third pod is
// privileged.
func podCreate(prefix string, i int) *auditinternal.Event {
	privileged := i%3 == 0
	pod := fmt.Sprintf(`{"kind":"Pod","apiVersion":"v1","metadata":{"name":"%s-%d","namespace":"default","creationTimestamp":null,"labels":{"app":"demo"}},"spec":{"containers":[{"name":"c","image":"busybox:1.36","resources":{},"terminationMessagePath":"/dev/termination-log","terminationMessagePolicy":"File","imagePullPolicy":"IfNotPresent","securityContext":{"privileged":%t}}],"restartPolicy":"Always","terminationGracePeriodSeconds":30,"dnsPolicy":"ClusterFirst","securityContext":{},"schedulerName":"default-scheduler","enableServiceLinks":true},"status":{}}`, prefix, i, privileged)
	now := metav1.NewMicroTime(time.Now())
	return &auditinternal.Event{
		Level: auditinternal.LevelRequestResponse, AuditID: types.UID(fmt.Sprintf("%s-%d", prefix, i)), Stage: auditinternal.StageResponseComplete,
		RequestURI: "/api/v1/namespaces/default/pods?fieldManager=kubectl-client-side-apply", Verb: "create",
		User:      authnv1.UserInfo{Username: "admin", UID: "uid-admin", Groups: []string{"system:masters", "system:authenticated"}},
		SourceIPs: []string{"10.0.0.7"}, UserAgent: "kubectl/v1.31.4 (linux/amd64) kubernetes/test",
		ObjectRef:                &auditinternal.ObjectReference{Resource: "pods", Namespace: "default", Name: fmt.Sprintf("%s-%d", prefix, i), APIVersion: "v1"},
		ResponseStatus:           &metav1.Status{Code: 201},
		RequestObject:            &runtime.Unknown{Raw: []byte(pod), ContentType: runtime.ContentTypeJSON},
		ResponseObject:           &runtime.Unknown{Raw: []byte(pod), ContentType: runtime.ContentTypeJSON},
		RequestReceivedTimestamp: now, StageTimestamp: now,
		Annotations: map[string]string{"authorization.k8s.io/decision": "allow", "authorization.k8s.io/reason": ""},
	}
}

// apiserverAgent starts an agent with TLS and a bearer token, the built-in rules plus the
// counting rule, rule_matching all (so each event gives one counting alert and privileged pods
// also a built-in one).
func apiserverAgent(t testing.TB, dir string, ln net.Listener, extra []string, opts Options) (*testAgent, []byte) {
	t.Helper()
	cert, key, caPEM := tlsFiles(t, dir)
	tokenFile := filepath.Join(dir, "token")
	os.WriteFile(tokenFile, []byte("s3cret-token\n"), 0o600)
	opts.WebhookListener = ln
	ta := startAgent(t, append([]string{"rules.builtin=true", "rules.rule_matching=all", "webhook.tls.cert_file=" + cert,
		"webhook.tls.key_file=" + key, "webhook.bearer_token_file=" + tokenFile}, extra...), opts)
	return ta, caPEM
}

func TestAPIServerWebhookClient(t *testing.T) {
	dir := t.TempDir()
	ta, caPEM := apiserverAgent(t, dir, nil, nil, Options{})
	c := newAPIServerClient(t, dir, ta.url+"/k8s-audit", caPEM, "s3cret-token", 400, 100*time.Millisecond)
	const n = 1000
	for i := range n {
		if !c.ProcessEvents(podCreate("pod", i)) {
			t.Fatal("ProcessEvents refused an event")
		}
	}
	c.shutdown()
	ta.stop(t)
	ids, _, _ := alertIDs(t, filterCount(t, ta.alerts))
	assertExactlyOnce(t, ids, "pod", n)
	if priv := countLines(t, ta.alerts, "privileged container"); priv != (n+2)/3 {
		t.Fatalf("%d privileged-pod alerts, want %d", priv, (n+2)/3)
	}
	st := ta.Status()
	t.Logf("rejected requests: %v", st.Events.RejectedRequests)
	if st.Events.Received != n || st.Events.Evaluated != n || st.Events.RejectedRequests["401"] != 0 {
		t.Fatalf("events %+v", st.Events)
	}
}

func TestAPIServerWrongTokenIsRefused(t *testing.T) {
	dir := t.TempDir()
	ta, caPEM := apiserverAgent(t, dir, nil, nil, Options{})
	c := newAPIServerClient(t, dir, ta.url+"/k8s-audit", caPEM, "wrong", 400, time.Millisecond)
	c.ProcessEvents(podCreate("x", 0))
	c.shutdown()
	st := ta.Status()
	if st.Events.Received != 0 || st.Events.RejectedRequests["401"] == 0 {
		t.Fatalf("events %+v", st.Events)
	}
}

// slowWriter makes the stdout output (and so evaluation) slow enough to fill a tiny queue.
type slowWriter struct{ d time.Duration }

func (s slowWriter) Write(p []byte) (int, error) { time.Sleep(s.d); return len(p), nil }

func TestAPIServerFullQueueRetries(t *testing.T) {
	dir := t.TempDir()
	ta, caPEM := apiserverAgent(t, dir, nil, []string{"webhook.queue.capacity=60", "rules.workers=1", "outputs.stdout.enabled=true",
		"outputs.stdout.min_priority=warning", "webhook.retry_after=1s"}, Options{Stdout: slowWriter{200 * time.Microsecond}})
	c := newAPIServerClient(t, dir, ta.url+"/k8s-audit", caPEM, "s3cret-token", 50, 100*time.Millisecond)
	const n = 500
	for i := range n {
		c.ProcessEvents(podCreate("full", i))
	}
	c.shutdown()
	ta.stop(t)
	ids, _, _ := alertIDs(t, filterCount(t, ta.alerts))
	assertExactlyOnce(t, ids, "full", n)
	st := ta.Status()
	if st.Queue.Throttled == 0 || st.Events.RejectedRequests["429"] == 0 {
		t.Fatalf("queue never filled: %+v %+v", st.Queue, st.Events)
	}
	t.Logf("429 answers: %d", st.Events.RejectedRequests["429"])
}

func TestAPIServerAgentRestart(t *testing.T) {
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ta1, caPEM := apiserverAgent(t, dir, ln, nil, Options{})
	// Initial backoff 500ms: the retries span ~15s, far longer than the restart gap even on a
	// loaded CI machine under -race (a batch that runs out of retries would be lost for good).
	c := newAPIServerClient(t, dir, ta1.url+"/k8s-audit", caPEM, "s3cret-token", 100, 500*time.Millisecond)
	const n = 3000
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range n {
			c.ProcessEvents(podCreate("rs", i))
			if i%100 == 99 {
				time.Sleep(20 * time.Millisecond)
			}
		}
	}()
	// Stop once the first agent has taken some of the stream (not after a fixed sleep: on a
	// loaded machine the first batch may take longer than any sleep chosen here).
	for deadline := time.Now().Add(20 * time.Second); ta1.Status().Events.Received == 0; {
		if time.Now().After(deadline) {
			t.Fatal("the first agent received nothing in 20s")
		}
		time.Sleep(2 * time.Millisecond)
	}
	ta1.stop(t) // graceful: in-flight batches finish, the queue drains
	var ln2 net.Listener
	for range 100 {
		if ln2, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	// The restarted agent serves the same certificate and token.
	ta2 := startAgent(t, []string{"rules.builtin=true", "rules.rule_matching=all", "webhook.tls.cert_file=" + filepath.Join(dir, "tls.crt"),
		"webhook.tls.key_file=" + filepath.Join(dir, "tls.key"), "webhook.bearer_token_file=" + filepath.Join(dir, "token")},
		Options{WebhookListener: ln2})
	wg.Wait()
	c.shutdown()
	ta2.stop(t)
	ids1, _, _ := alertIDs(t, filterCount(t, ta1.alerts))
	ids2, _, _ := alertIDs(t, filterCount(t, ta2.alerts))
	all := map[string]int{}
	for id, k := range ids1 {
		all[id] += k
	}
	for id, k := range ids2 {
		all[id] += k
	}
	assertExactlyOnce(t, all, "rs", n)
	if len(ids1) == 0 || len(ids2) == 0 {
		t.Fatalf("restart not mid-stream: %d before, %d after", len(ids1), len(ids2))
	}
	t.Logf("%d events before the restart, %d after", len(ids1), len(ids2))
}

// filterCount writes the counting rule's alerts (the lines with id=) to a side file.
func filterCount(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var keep []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, " id=") {
			keep = append(keep, l)
		}
	}
	out := path + ".count"
	os.WriteFile(out, []byte(strings.Join(keep, "\n")), 0o600)
	return out
}

func countLines(t testing.TB, path, substr string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), substr)
}

func assertExactlyOnce(t testing.TB, ids map[string]int, prefix string, n int) {
	t.Helper()
	missing, dup := 0, 0
	for i := range n {
		switch ids[fmt.Sprintf("%s-%d", prefix, i)] {
		case 0:
			missing++
		case 1:
		default:
			dup++
		}
	}
	if missing > 0 || dup > 0 || len(ids) != n {
		t.Fatalf("of %d events: %d missing, %d evaluated more than once, %d distinct", n, missing, dup, len(ids))
	}
}

// TestSharedPortGuardsSensitiveEndpoints: on the webhook's port the journal, the rule list and
// the state-changing endpoints need the webhook's bearer token; probes, metrics and status do not.
func TestSharedPortGuardsSensitiveEndpoints(t *testing.T) {
	dir := t.TempDir()
	ta, caPEM := apiserverAgent(t, dir, nil, nil, Options{})
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	cases := []struct {
		method, path, token string
		want                int
	}{
		{"GET", "/healthz", "", http.StatusOK},
		{"GET", "/readyz", "", http.StatusOK},
		{"GET", "/metrics", "", http.StatusOK},
		{"GET", "/status", "", http.StatusOK},
		{"GET", "/alerts", "", http.StatusUnauthorized},
		{"GET", "/alerts", "wrong", http.StatusUnauthorized},
		{"GET", "/alerts", "s3cret-token", http.StatusOK},
		{"GET", "/rules", "", http.StatusUnauthorized},
		{"GET", "/rules", "s3cret-token", http.StatusOK},
		{"POST", "/reload", "", http.StatusUnauthorized},
		{"POST", "/sync", "", http.StatusUnauthorized},
	}
	for _, c := range cases {
		req, _ := http.NewRequest(c.method, ta.url+c.path, nil)
		if c.token != "" {
			req.Header.Set("Authorization", "Bearer "+c.token)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("%s %s token=%q: %d %s, want %d", c.method, c.path, c.token, resp.StatusCode, body, c.want)
		}
		if strings.Contains(string(body), "s3cret") {
			t.Errorf("%s %s leaks the token: %s", c.method, c.path, body)
		}
	}
}
