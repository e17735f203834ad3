package agent

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
)

func admissionReview(uid, ns string) []byte {
	return []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"` + uid + `",
"kind":{"group":"","version":"v1","kind":"Pod"},"resource":{"group":"","version":"v1","resource":"pods"},
"namespace":"` + ns + `","name":"evil","operation":"CREATE","userInfo":{"username":"alice","groups":["system:authenticated"]},
"object":{"kind":"Pod","apiVersion":"v1","metadata":{"name":"evil","namespace":"` + ns + `"},
"spec":{"containers":[{"name":"c","image":"busybox","securityContext":{"privileged":true}}]}}}}`)
}

// TestAdmissionEndpoint: the agent serves AdmissionReviews on its TLS webhook listener behind the
// webhook's bearer token, decides with the running ruleset including the tuning file's
// exceptions, and records each decision as an alert on its outputs.
func TestAdmissionEndpoint(t *testing.T) {
	dir := t.TempDir()
	tuning := filepath.Join(dir, "tuning.yaml")
	os.WriteFile(tuning, []byte(`- rule: Privileged Container Started in Pod
  exceptions:
    - name: tuned_namespace
      fields: [ka.target.namespace]
      comps: [=]
      values: [[trusted]]
  override:
    exceptions: append
`), 0o600)
	ta, caPEM := apiserverAgent(t, dir, nil, []string{"admission.mode=deny", "rules.tuning_file=" + tuning,
		"outputs.file.json=true", "admission.enforce.rules=[Privileged Container Started in Pod]"}, Options{})
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	ask := func(token string, body []byte) (int, *admissionv1.AdmissionResponse, string) {
		req, _ := http.NewRequest(http.MethodPost, ta.url+"/k8s-admission?timeout=10s", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			return resp.StatusCode, nil, string(b)
		}
		var out admissionv1.AdmissionReview
		if err := json.Unmarshal(b, &out); err != nil {
			t.Fatalf("%v: %s", err, b)
		}
		return resp.StatusCode, out.Response, string(b)
	}
	if code, _, body := ask("", admissionReview("u0", "default")); code != http.StatusUnauthorized || strings.Contains(body, "s3cret") {
		t.Fatalf("without the token: %d %s, want 401", code, body)
	}
	_, denied, _ := ask("s3cret-token", admissionReview("u1", "default"))
	if denied == nil || denied.Allowed || denied.UID != "u1" || !strings.Contains(denied.Result.Message, `rule "Privileged Container Started in Pod"`) {
		t.Fatalf("privileged pod in default: %+v, want denied by the rule", denied)
	}
	_, allowed, _ := ask("s3cret-token", admissionReview("u2", "trusted"))
	if allowed == nil || !allowed.Allowed {
		t.Fatalf("privileged pod in the excepted namespace: %+v, want allowed", allowed)
	}
	if code, _, body := ask("s3cret-token", []byte("{")); code != http.StatusBadRequest || !strings.Contains(body, "invalid AdmissionReview") {
		t.Fatalf("unparseable review: %d %s", code, body)
	}
	// The decision is an alert, recorded as such.
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, _ := os.ReadFile(ta.alerts)
		if bytes.Contains(b, []byte(`"admission.decision":"denied"`)) {
			if n := bytes.Count(b, []byte(`"admission.decision"`)); n != 1 {
				t.Fatalf("%d decision alerts, want 1:\n%s", n, b)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no decision alert in %s:\n%s", ta.alerts, b)
		}
		time.Sleep(20 * time.Millisecond)
	}
	resp, err := client.Get(ta.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	m, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`falco_k8s_admission_requests_total{decision="denied",dry_run="false"} 1`,
		`falco_k8s_admission_requests_total{decision="allowed",dry_run="false"} 1`,
		`falco_k8s_admission_rule_decisions_total{decision="denied",rule="Privileged Container Started in Pod"} 1`} {
		if !bytes.Contains(m, []byte(want)) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}
