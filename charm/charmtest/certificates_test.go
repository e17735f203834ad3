package charmtest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"maps"
	"math/big"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/falco-k8s/falco-k8s/charm"
)

// testCA plays the tls-certificates provider (self-signed-certificates): it signs the CSRs the
// requirer publishes.
type testCA struct {
	key    *ecdsa.PrivateKey
	cert   *x509.Certificate
	pem    string
	serial int64
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return &testCA{key: k, cert: c, pem: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})), serial: 1}
}

// sign issues a certificate for a CSR (PEM) with the CSR's names.
func (ca *testCA) sign(t *testing.T, csrPEM string) (string, int64) {
	t.Helper()
	b, _ := pem.Decode([]byte(csrPEM))
	if b == nil {
		t.Fatalf("CSR is not PEM: %q", csrPEM)
	}
	r, err := x509.ParseCertificateRequest(b.Bytes)
	if err != nil || r.CheckSignature() != nil {
		t.Fatalf("CSR: %v", err)
	}
	ca.serial++
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(ca.serial), Subject: r.Subject, DNSNames: r.DNSNames,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, r.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})), ca.serial
}

// providerData is the provider's application databag for one issued certificate.
func (ca *testCA) providerData(t *testing.T, csr, cert string) map[string]string {
	t.Helper()
	b, err := json.Marshal([]map[string]any{{"certificate": cert, "certificate_signing_request": csr,
		"ca": ca.pem, "chain": []string{cert, ca.pem}}})
	if err != nil {
		t.Fatal(err)
	}
	return map[string]string{"certificates": string(b)}
}

// servedSerial connects to the webhook port trusting only ca, for the Service's DNS name, and
// returns the serial number of the certificate the agent serves (-1 when TLS fails).
func servedSerial(ca *testCA, port int, name string) (int64, error) {
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	conn, err := tls.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port), &tls.Config{RootCAs: pool, ServerName: name})
	if err != nil {
		return -1, err
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber.Int64(), nil
}

// TestCertificatesRelation: through the real charm binary, fake Juju and real Pebble, the
// certificates relation (tls-certificates v4) gets the webhook a certificate: the unit
// publishes a CSR with the Service and pod names (its key stays in the workload, 0600), the
// provider's certificate is served by the agent and its CA is webhook-config's; a renewed
// certificate is swapped in by SIGHUP without restarting the agent; removing the relation
// falls back to plain http.
func TestCertificatesRelation(t *testing.T) {
	u := newUnit(t, unitOpts{})
	for _, h := range []string{"install", "config-changed", "falco-pebble-ready"} {
		u.hook(h)
	}
	u.wantStatus("active", "rules")
	ca := newTestCA(t)

	id, r := u.AddRelation("certificates", "self-signed-certificates")
	u.runs("created", r)
	u.runs("joined", u.JoinUnit(id, "self-signed-certificates/0", nil)...)
	rel := u.Relation(id)
	var reqs []struct {
		CSR string `json:"certificate_signing_request"`
		CA  *bool  `json:"ca"`
	}
	if err := json.Unmarshal([]byte(rel.LocalUnit["certificate_signing_requests"]), &reqs); err != nil || len(reqs) != 1 ||
		reqs[0].CA == nil || *reqs[0].CA {
		t.Fatalf("certificate_signing_requests %q (%v)", rel.LocalUnit["certificate_signing_requests"], err)
	}
	csr := reqs[0].CSR
	b, _ := pem.Decode([]byte(csr))
	if b == nil || b.Type != "CERTIFICATE REQUEST" {
		t.Fatalf("CSR PEM %q", csr)
	}
	req, err := x509.ParseCertificateRequest(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	wantSANs := []string{"falco-k8s.audit.svc", "falco-k8s.audit.svc.cluster.local", "falco-k8s-0"}
	if !slices.Equal(req.DNSNames, wantSANs) {
		t.Errorf("CSR SANs %v, want %v", req.DNSNames, wantSANs)
	}
	fi, err := os.Stat(u.root + charm.RelationKeyPath)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("relation key file: %v %v", fi, err)
	}
	key, _ := os.ReadFile(u.root + charm.RelationKeyPath)
	for k, v := range rel.LocalUnit {
		if strings.Contains(v, "PRIVATE KEY") || strings.Contains(v, strings.TrimSpace(string(key))) {
			t.Errorf("private key in unit data %s", k)
		}
	}
	if strings.Contains(u.outputs.String(), "PRIVATE KEY") {
		t.Errorf("private key logged")
	}
	// Another hook republishes the very same CSR (no re-issue by the provider).
	u.hook("update-status")
	if u.Relation(id).LocalUnit["certificate_signing_requests"] != rel.LocalUnit["certificate_signing_requests"] {
		t.Errorf("CSR changed on update-status")
	}
	if code, _ := httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/", u.port)); code != 404 {
		t.Fatalf("plain http before the certificate: %d", code)
	}

	// The provider answers: the agent serves that certificate for the Service's name.
	cert1, serial1 := ca.sign(t, csr)
	u.runs("provider changed", u.SetRemoteAppData(id, ca.providerData(t, csr, cert1)))
	u.wantStatus("active", "")
	for _, name := range wantSANs {
		if got, err := servedSerial(ca, u.port, name); err != nil || got != serial1 {
			t.Fatalf("served for %s: serial %d (%v), want %d", name, got, err, serial1)
		}
	}
	res := u.action("webhook-config", map[string]any{"server": "10.0.0.1"})
	if !strings.HasPrefix(res["server"].(string), "https://") ||
		!strings.Contains(res["kubeconfig"].(string), base64.StdEncoding.EncodeToString([]byte(ca.pem))) {
		t.Errorf("webhook-config with the relation's CA: %v", res)
	}

	// Renewal: the same key, a new certificate; the agent swaps it in without a restart while
	// a connection opened before keeps being served.
	started := u.agentStatus().StartedAt
	keep := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: poolOf(ca), ServerName: wantSANs[0]}}}
	if resp, err := keep.Get(fmt.Sprintf("https://127.0.0.1:%d/", u.port)); err != nil || resp.StatusCode != 404 {
		t.Fatalf("GET over TLS: %v", err)
	} else {
		resp.Body.Close()
	}
	cert2, serial2 := ca.sign(t, csr)
	u.runs("renewed", u.SetRemoteAppData(id, ca.providerData(t, csr, cert2)))
	waitUntil(t, "the renewed certificate", func() bool {
		got, err := servedSerial(ca, u.port, wantSANs[0])
		return err == nil && got == serial2
	}, u.outputs.String)
	if got := u.agentStatus().StartedAt; !got.Equal(started) {
		t.Errorf("agent restarted for a renewal: started %v, was %v", got, started)
	}
	if resp, err := keep.Get(fmt.Sprintf("https://127.0.0.1:%d/", u.port)); err != nil || resp.StatusCode != 404 {
		t.Errorf("kept-alive connection after the renewal: %v", err)
	} else {
		resp.Body.Close()
	}

	// A certificate for another CSR (or garbage) is not ours: nothing changes.
	u.runs("garbage", u.SetRemoteAppData(id, map[string]string{"certificates": "not json"}))
	if code, _ := httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/", u.port)); code != 404 {
		t.Fatalf("plain http after the provider's data went bad: %d", code)
	}
	u.runs("again", u.SetRemoteAppData(id, ca.providerData(t, csr, cert2)))

	// Broken: back to plain http (no webhook-tls, no certificate).
	u.runs("broken", u.RemoveRelation(id)...)
	if code, _ := httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/", u.port)); code != 404 {
		t.Fatalf("plain http after the relation was removed: %d", code)
	}
	u.wantStatus("active", "")
}

func poolOf(ca *testCA) *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.cert)
	return p
}

// TestCharmCA: without webhook-tls and without a certificates relation, an admission webhook
// (enforce-mode warn) gets https from the charm's own CA: only the leader creates it, in an
// application-owned Juju secret; a non-leader uses the leader's; webhook-config returns that
// CA; enforce-mode off goes back to plain http.
func TestCharmCA(t *testing.T) {
	u := newUnit(t, unitOpts{})
	if err := u.SetLeader(false); err != nil {
		t.Fatal(err)
	}
	u.config(map[string]any{"enforce-mode": "warn", "enforce-rules": "tag:mitre_privilege_escalation"})
	for _, h := range []string{"install", "config-changed", "falco-pebble-ready"} {
		u.hook(h)
	}
	if len(u.State().SecretLabels) != 0 {
		t.Fatalf("a non-leader created a secret: %v", u.State().SecretLabels)
	}
	if code, _ := httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/", u.port)); code != 404 {
		t.Fatalf("plain http before the leader made the CA: %d", code)
	}

	if err := u.SetLeader(true); err != nil {
		t.Fatal(err)
	}
	u.hook("leader-elected")
	u.wantStatus("active", "")
	st := u.State()
	id := st.SecretLabels[charm.CharmCALabel]
	if id == "" || st.Owned[id] != "application" {
		t.Fatalf("no application-owned %s secret: %v %v", charm.CharmCALabel, st.SecretLabels, st.Owned)
	}
	sec := st.Secrets[id]
	b, _ := pem.Decode([]byte(sec["ca-certificate"]))
	if b == nil {
		t.Fatalf("secret without ca-certificate: keys %v", slices.Sorted(maps.Keys(sec)))
	}
	caCert, err := x509.ParseCertificate(b.Bytes)
	if err != nil || !caCert.IsCA {
		t.Fatalf("CA: %v", err)
	}
	ca := &testCA{cert: caCert, pem: sec["ca-certificate"]}
	for _, name := range []string{"falco-k8s.audit.svc", "falco-k8s.audit.svc.cluster.local"} {
		if _, err := servedSerial(ca, u.port, name); err != nil {
			t.Fatalf("TLS for %s with the charm's CA: %v", name, err)
		}
	}
	if strings.Contains(u.outputs.String(), "PRIVATE KEY") {
		t.Errorf("private key logged")
	}
	res := u.action("webhook-config", map[string]any{"server": "10.0.0.1"})
	if !strings.HasPrefix(res["server"].(string), "https://") ||
		!strings.Contains(res["kubeconfig"].(string), base64.StdEncoding.EncodeToString([]byte(ca.pem))) {
		t.Errorf("webhook-config with the charm's CA: %v", res)
	}

	// Another hook keeps the same certificate (no new revision); a non-leader uses it.
	u.hook("update-status")
	if err := u.SetLeader(false); err != nil {
		t.Fatal(err)
	}
	u.hook("update-status")
	if revs := len(u.State().SecretRevisions[id]); revs != 1 {
		t.Errorf("%d revisions, want 1", revs)
	}
	if _, err := servedSerial(ca, u.port, "falco-k8s.audit.svc"); err != nil {
		t.Fatalf("TLS on the non-leader: %v", err)
	}

	u.config(map[string]any{"enforce-mode": "off"})
	u.hook("config-changed")
	if code, _ := httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/", u.port)); code != 404 {
		t.Fatalf("plain http with enforce-mode off: %d", code)
	}
}
