package charmtest

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"sigs.k8s.io/yaml"
)

// TestEnforce: enforce-mode and enforce-rules reach the real agent under Pebble, which then
// refuses a privileged pod's AdmissionReview; webhook-config returns the
// ValidatingWebhookConfiguration; a bad option blocks with the fix.
func TestEnforce(t *testing.T) {
	k := newFakeKube(t)
	k.setService("audit", "falco-k8s", "10.152.183.7")
	u := newUnit(t, unitOpts{kube: k})
	u.hook("install")

	u.config(map[string]any{"enforce-mode": "deny"})
	u.hook("config-changed")
	u.wantStatus("blocked", "invalid config enforce-rules: enforce-mode is deny but no rule is selected")
	u.config(map[string]any{"enforce-mode": "block"})
	u.hook("config-changed")
	u.wantStatus("blocked", `invalid config enforce-mode: "block" is not off, warn or deny (fix: juju config falco-k8s enforce-mode=warn)`)

	certPEM, keyPEM := selfSigned(t)
	uri := u.AddSecret("d0nhl5nmp25c7f2pu3c1", map[string]string{"certificate": string(certPEM), "private-key": string(keyPEM)}, true)
	u.config(map[string]any{"webhook-tls": uri, "enforce-mode": "deny",
		"enforce-rules": "Privileged Container Started in Pod, tag:mitre_privilege_escalation"})
	u.hook("config-changed")
	u.wantStatus("active", "")

	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}}}
	review := `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u-1",
"resource":{"group":"","version":"v1","resource":"pods"},"namespace":"apps","name":"evil","operation":"CREATE",
"userInfo":{"username":"alice"},"object":{"kind":"Pod","apiVersion":"v1","metadata":{"name":"evil","namespace":"apps"},
"spec":{"containers":[{"name":"c","image":"busybox","securityContext":{"privileged":true}}]}}}}`
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, fmt.Sprintf("https://127.0.0.1:%d/k8s-admission", u.port), strings.NewReader(review))
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var out admissionv1.AdmissionReview
	if err := json.Unmarshal(body, &out); err != nil || out.Response == nil || out.Response.Allowed ||
		!strings.Contains(out.Response.Result.Message, `rule "Privileged Container Started in Pod"`) {
		t.Fatalf("AdmissionReview answer %d %s (%v), want denied by the rule", resp.StatusCode, body, err)
	}

	res := u.action("webhook-config", nil)
	var w admissionregistrationv1.ValidatingWebhookConfiguration
	if err := yaml.Unmarshal([]byte(res["validating-webhook-configuration"].(string)), &w); err != nil || len(w.Webhooks) != 1 {
		t.Fatalf("validating-webhook-configuration: %v\n%s", err, res["validating-webhook-configuration"])
	}
	wh := w.Webhooks[0]
	if w.Kind != "ValidatingWebhookConfiguration" || *wh.ClientConfig.URL != fmt.Sprintf("https://10.152.183.7:%d/k8s-admission", u.port) ||
		!bytes.Equal(wh.ClientConfig.CABundle, certPEM) || *wh.FailurePolicy != admissionregistrationv1.Ignore ||
		*wh.TimeoutSeconds != 5 || *wh.SideEffects != admissionregistrationv1.SideEffectClassNone {
		t.Errorf("webhook: %+v", wh)
	}
	sel := wh.NamespaceSelector.MatchExpressions
	if len(sel) != 1 || sel[0].Operator != "NotIn" || strings.Join(sel[0].Values, ",") != "kube-system,"+u.Model {
		t.Errorf("namespaceSelector: %+v", sel)
	}
	if !strings.Contains(res["admission-note"].(string), "enforce-mode is deny") {
		t.Errorf("note: %v", res["admission-note"])
	}
	// remove deletes a webhook configuration even when the charm does not manage it.
	u.hook("remove")
}
