package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/falco-k8s/falco-k8s/internal/kubetest"
)

const (
	trustedNS   = "e2e-trusted"
	enforceRule = "Privileged Container Started in Pod"
	execRule    = "Exec or Attach Into Pod"
)

// warnings collects the warnings kube-apiserver returns to client-go.
type warnings struct {
	mu   sync.Mutex
	msgs []string
}

func (w *warnings) HandleWarningHeader(_ int, _ string, text string) {
	w.mu.Lock()
	w.msgs = append(w.msgs, text)
	w.mu.Unlock()
}

func (w *warnings) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	m := w.msgs
	w.msgs = nil
	return m
}

// admissionConfig writes the AdmissionConfiguration that gives kube-apiserver the agent's bearer
// token when it calls the webhook (kubeConfigFile users are matched by host; "*" is any).
func admissionConfig(t *testing.T, dir, token string) string {
	t.Helper()
	kc := filepath.Join(dir, "admission.kubeconfig")
	if err := os.WriteFile(kc, []byte(fmt.Sprintf("apiVersion: v1\nkind: Config\nusers:\n- name: \"*\"\n  user:\n    token: %q\n", token)), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "admission-config.yaml")
	if err := os.WriteFile(cfg, []byte(`apiVersion: apiserver.config.k8s.io/v1
kind: AdmissionConfiguration
plugins:
- name: ValidatingAdmissionWebhook
  configuration:
    apiVersion: apiserver.config.k8s.io/v1
    kind: WebhookAdmissionConfiguration
    kubeConfigFile: `+kc+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// webhookConfiguration is the ValidatingWebhookConfiguration pointing at the agent: https with
// the agent's CA, failurePolicy Ignore, kube-system and the agent's namespace excluded.
func webhookConfiguration(addr string, caPEM []byte) *admissionregistrationv1.ValidatingWebhookConfiguration {
	url := "https://" + addr + "/k8s-admission"
	ignore := admissionregistrationv1.Ignore
	none := admissionregistrationv1.SideEffectClassNone
	timeout := int32(5)
	all := admissionregistrationv1.AllScopes
	return &admissionregistrationv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "falco-k8s"},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{{
			Name:         "enforce.falco-k8s.io",
			ClientConfig: admissionregistrationv1.WebhookClientConfig{URL: &url, CABundle: caPEM},
			Rules: []admissionregistrationv1.RuleWithOperations{{
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update,
					admissionregistrationv1.Delete, admissionregistrationv1.Connect},
				Rule: admissionregistrationv1.Rule{APIGroups: []string{"*"}, APIVersions: []string{"*"}, Resources: []string{"*/*"}, Scope: &all},
			}},
			NamespaceSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{
				Key: "kubernetes.io/metadata.name", Operator: metav1.LabelSelectorOpNotIn, Values: []string{"kube-system", agentNS}}}},
			FailurePolicy: &ignore, SideEffects: &none, TimeoutSeconds: &timeout,
			AdmissionReviewVersions: []string{"v1"},
		}},
	}
}

// TestAdmissionWebhook: kube-apiserver's ValidatingAdmissionWebhook calls the agent binary.
func TestAdmissionWebhook(t *testing.T) {
	assets := kubetest.Require(t)
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	env, _ := newAgentEnv(t, dir)
	cp, err := kubetest.Start(ctx, assets, filepath.Join(dir, "cp"), kubetest.Options{
		ExtraArgs: []string{"--admission-control-config-file=" + admissionConfig(t, dir, env.token)},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Stop()
	defer func() {
		if t.Failed() {
			t.Logf("%s\n--- control plane (tail) ---\n%s", env.logTail(), tail(cp.Logs(), 6<<10))
		}
	}()
	warn := &warnings{}
	rc := rest.CopyConfig(cp.Config)
	rc.WarningHandler = warn
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	for _, ns := range []string{appNS, agentNS, trustedNS} {
		if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// What `falco-k8s alerts tune --scope namespace` writes after the log-only phase.
	tuning := filepath.Join(dir, "tuning.yaml")
	writeRules(t, tuning, "- rule: "+enforceRule+"\n  exceptions:\n    - name: tuned_namespace\n      fields: [ka.target.namespace]\n"+
		"      comps: [=]\n      values: [["+trustedNS+"]]\n  override:\n    exceptions: append\n")
	base := []string{"-o", "rules.tuning_file=" + tuning,
		"-o", "admission.enforce.rules=[" + enforceRule + ", " + execRule + "]"}
	proc := env.start(t, append(base, "-o", "admission.mode=deny")...)
	if _, err := cs.AdmissionregistrationV1().ValidatingWebhookConfigurations().Create(ctx, webhookConfiguration(env.addr, env.certPEM), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The configuration reaches the admission plugin through an informer: probe until it acts.
	deadline := time.Now().Add(alertTimeout)
	for i := 0; ; i++ {
		name := fmt.Sprintf("probe-%d", i)
		_, err := cs.CoreV1().Pods(appNS).Create(ctx, privilegedPod(name), metav1.CreateOptions{})
		if err != nil {
			break
		}
		cs.CoreV1().Pods(appNS).Delete(ctx, name, metav1.DeleteOptions{}) //nolint:errcheck // best effort
		if time.Now().After(deadline) {
			t.Fatalf("webhook configuration not in effect after %s", alertTimeout)
		}
		time.Sleep(200 * time.Millisecond)
	}

	t.Run("deny: privileged pod refused with the rule's message", func(t *testing.T) {
		_, err := cs.CoreV1().Pods(appNS).Create(ctx, privilegedPod("priv-denied"), metav1.CreateOptions{})
		if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), `rule "`+enforceRule+`"`) ||
			!strings.Contains(err.Error(), "Pod created with a privileged container") {
			t.Fatalf("create: %v, want Forbidden naming the rule and its output", err)
		}
		t.Logf("client-go error: %v", err)
		a := env.alerts.wait(t, alertTimeout, "denial alert", func(a alert) bool {
			return a.Rule == enforceRule && a.field("admission.decision") == "denied" && a.field("admission.dry_run") == "false" &&
				strings.Contains(a.Output, "created=priv-denied")
		})
		if a.field("ka.user.name") != kubetest.AdminUser {
			t.Errorf("alert fields %v", a.OutputFields)
		}
	})

	t.Run("deny: excepted namespace allowed", func(t *testing.T) {
		if _, err := cs.CoreV1().Pods(trustedNS).Create(ctx, privilegedPod("priv-trusted"), metav1.CreateOptions{}); err != nil {
			t.Fatalf("privileged pod in the tuned namespace: %v", err)
		}
	})

	t.Run("deny: server-side dry run decided and recorded as a dry run", func(t *testing.T) {
		_, err := cs.CoreV1().Pods(appNS).Create(ctx, privilegedPod("priv-dry"), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), enforceRule) {
			t.Fatalf("dry-run create: %v, want Forbidden", err)
		}
		env.alerts.wait(t, alertTimeout, "dry-run alert", func(a alert) bool {
			return a.Rule == enforceRule && a.field("admission.dry_run") == "true" && a.field("admission.decision") == "denied" &&
				strings.Contains(a.Output, "dry_run=true")
		})
	})

	t.Run("deny: pods/exec CONNECT evaluated", func(t *testing.T) {
		if _, err := cs.CoreV1().Pods(appNS).Create(ctx, plainPod("target"), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		err := cs.CoreV1().RESTClient().Post().Namespace(appNS).Resource("pods").Name("target").SubResource("exec").
			Param("command", "id").Param("container", "app").Param("stdout", "true").Do(ctx).Error()
		if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), `rule "`+execRule+`"`) || !strings.Contains(err.Error(), "command=id") {
			t.Fatalf("exec: %v, want Forbidden by %q", err, execRule)
		}
		env.alerts.wait(t, alertTimeout, "exec denial alert", func(a alert) bool {
			return a.Rule == execRule && a.field("admission.decision") == "denied" && a.field("ka.target.subresource") == "exec"
		})
	})

	proc.stop(t)
	proc = env.start(t, append(base, "-o", "admission.mode=warn")...)

	t.Run("warn: privileged pod created with the warning", func(t *testing.T) {
		warn.take()
		if _, err := cs.CoreV1().Pods(appNS).Create(ctx, privilegedPod("priv-warned"), metav1.CreateOptions{}); err != nil {
			t.Fatalf("create in warn mode: %v", err)
		}
		got := warn.take()
		if len(got) != 1 || !strings.Contains(got[0], `falco-k8s: rule "`+enforceRule+`"`) || !strings.Contains(got[0], "created=priv-warned") {
			t.Fatalf("warnings %q, want the rule's output", got)
		}
		env.alerts.wait(t, alertTimeout, "warn alert", func(a alert) bool {
			return a.Rule == enforceRule && a.field("admission.decision") == "warned" && strings.Contains(a.Output, "created=priv-warned")
		})
	})

	proc.stop(t)

	t.Run("agent stopped, failurePolicy Ignore: creation proceeds", func(t *testing.T) {
		if _, err := cs.CoreV1().Pods(appNS).Create(ctx, privilegedPod("priv-agent-down"), metav1.CreateOptions{}); err != nil {
			t.Fatalf("create with the agent down: %v", err)
		}
	})

	t.Run("agent stopped, failurePolicy Fail: creation refused", func(t *testing.T) {
		whc, err := cs.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, "falco-k8s", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		fail := admissionregistrationv1.Fail
		whc.Webhooks[0].FailurePolicy = &fail
		if _, err := cs.AdmissionregistrationV1().ValidatingWebhookConfigurations().Update(ctx, whc, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(alertTimeout)
		for i := 0; ; i++ {
			_, err := cs.CoreV1().Pods(appNS).Create(ctx, plainPod(fmt.Sprintf("fail-probe-%d", i)), metav1.CreateOptions{})
			if err != nil {
				if !strings.Contains(err.Error(), "failed calling webhook") {
					t.Fatalf("create: %v, want the webhook call failure", err)
				}
				t.Logf("refused: %v", err)
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("creation still allowed %s after switching to Fail", alertTimeout)
			}
			time.Sleep(200 * time.Millisecond)
		}
	})
}
