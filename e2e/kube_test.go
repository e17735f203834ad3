package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/kubernetes"

	"github.com/falco-k8s/falco-k8s/internal/kubetest"
)

const (
	appNS    = "e2e-apps"
	agentNS  = "falco-e2e"
	agentPod = "falco-k8s-0"
	// A generous bound: batches leave kube-apiserver every second; the 2-core CI machine is busy.
	alertTimeout = 30 * time.Second
)

func httpsClient(pool *x509.CertPool) *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
}

func privilegedPod(name string) *corev1.Pod {
	yes := true
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "shell", Image: "docker.io/library/busybox:1.36", Command: []string{"sleep", "3600"},
			SecurityContext: &corev1.SecurityContext{Privileged: &yes},
		}}},
	}
}

func plainPod(name string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "docker.io/library/nginx:1.27"}}},
	}
}

func forPod(rule, ns, name string) func(alert) bool {
	return func(a alert) bool {
		return a.Rule == rule && a.field("ka.target.namespace") == ns && a.field("ka.target.name") == name
	}
}

// TestKubeAPIServerToAgent runs the whole path: client-go → kube-apiserver → audit webhook
// (batch mode, TLS, bearer token) → agent process → built-in rules → JSON alert on stdout.
func TestKubeAPIServerToAgent(t *testing.T) {
	assets := kubetest.Require(t)
	tierStart := time.Now()
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	env, webhookConfig := newAgentEnv(t, dir)
	policy, err := filepath.Abs("testdata/audit-policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cpStart := time.Now()
	cp, err := kubetest.Start(ctx, assets, filepath.Join(dir, "cp"), kubetest.Options{
		AuditPolicyFile: policy, AuditWebhookConfigFile: webhookConfig,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Stop()
	t.Logf("etcd + kube-apiserver ready in %s", time.Since(cpStart).Round(time.Millisecond))
	defer func() {
		if t.Failed() {
			t.Logf("%s\n--- control plane (tail) ---\n%s", env.logTail(), tail(cp.Logs(), 6<<10))
		}
	}()
	cs, err := cp.Clientset()
	if err != nil {
		t.Fatal(err)
	}
	for _, ns := range []string{appNS, agentNS} {
		if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// The agent's own pod, for the Events it records (no kubelet runs: it only has to exist).
	if _, err := cs.CoreV1().Pods(agentNS).Create(ctx, plainPod(agentPod), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	// A local rules file the test edits to produce an ignored and an accepted candidate.
	localRules := filepath.Join(dir, "local-rules.yaml")
	writeRules(t, localRules, validLocalRules)
	agentArgs := []string{"-r", localRules,
		"-o", "kubernetes.events=true", "-o", "kubernetes.kubeconfig=" + cp.Kubeconfig,
		"-o", "kubernetes.pod_name=" + agentPod, "-o", "kubernetes.namespace=" + agentNS}
	agentStart := time.Now()
	proc := env.start(t, agentArgs...)
	t.Logf("agent ready in %s", time.Since(agentStart).Round(time.Millisecond))

	t.Run("privileged pod", func(t *testing.T) {
		created := time.Now()
		if _, err := cs.CoreV1().Pods(appNS).Create(ctx, privilegedPod("priv-1"), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		a := env.alerts.wait(t, alertTimeout, "privileged pod", forPod("Privileged Container Started in Pod", appNS, "priv-1"))
		t.Logf("alert %q after %s: %s", a.Rule, time.Since(created).Round(time.Millisecond), a.Output)
		if a.Priority != "Critical" || a.Source != "k8s_audit" || a.Hostname != "e2e-host" {
			t.Errorf("alert = priority %q source %q hostname %q", a.Priority, a.Source, a.Hostname)
		}
		if a.field("ka.user.name") != kubetest.AdminUser || !strings.Contains(a.field("ka.req.pod.containers.privileged"), "true") {
			t.Errorf("output fields: %v", a.OutputFields)
		}
	})

	t.Run("pod in kube-system", func(t *testing.T) {
		if _, err := cs.CoreV1().Pods("kube-system").Create(ctx, plainPod("sneaky"), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		a := env.alerts.wait(t, alertTimeout, "pod in kube-system", forPod("Pod Created Directly in Kube Namespace", "kube-system", "sneaky"))
		if a.Priority != "Warning" {
			t.Errorf("priority %q", a.Priority)
		}
	})

	t.Run("cluster-admin binding", func(t *testing.T) {
		crb := &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "e2e-backdoor"},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "cluster-admin"},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: "mallory"}},
		}
		if _, err := cs.RbacV1().ClusterRoleBindings().Create(ctx, crb, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		a := env.alerts.wait(t, alertTimeout, "cluster-admin binding", func(a alert) bool {
			return a.Rule == "Binding to Cluster-Admin Role" && a.field("ka.target.name") == "e2e-backdoor"
		})
		if a.Priority != "Error" || !strings.Contains(a.field("ka.req.binding.subjects"), "mallory") {
			t.Errorf("alert: priority %q fields %v", a.Priority, a.OutputFields)
		}
	})

	t.Run("ruleset changes become pod events", func(t *testing.T) {
		// Invalid: ignored, the running ruleset stays, a Warning event names the error.
		writeRules(t, localRules, "- rule: Broken\n  desc: x\n  condition: ka.verb = \n  output: x\n  priority: INFO\n  source: k8s_audit\n")
		if err := proc.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		ev := waitEvent(t, cs, "ArtifactsIgnored")
		if ev.Type != corev1.EventTypeWarning || !strings.Contains(ev.Message, "local-rules.yaml") {
			t.Errorf("ignored event: %s %q", ev.Type, ev.Message)
		}
		// Valid again: accepted, a Normal event.
		writeRules(t, localRules, validLocalRules)
		if err := proc.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		ev = waitEvent(t, cs, "ArtifactsAccepted")
		if ev.Type != corev1.EventTypeNormal || ev.InvolvedObject.UID == "" {
			t.Errorf("accepted event: %s %+v", ev.Type, ev.InvolvedObject)
		}
		// The rules still alert after the swap.
		if _, err := cs.CoreV1().Pods(appNS).Create(ctx, privilegedPod("priv-after-reload"), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		env.alerts.wait(t, alertTimeout, "privileged pod after reload", forPod("Privileged Container Started in Pod", appNS, "priv-after-reload"))
	})

	t.Run("agent killed and restarted: kube-apiserver retries deliver", func(t *testing.T) {
		proc.kill(t)
		// Created while nothing listens: kube-apiserver's batch fails and is retried with
		// backoff (1s, 1.5s, 2.25s, ... five times, --audit-webhook-initial-backoff=1s).
		down := []string{"priv-while-down-1", "priv-while-down-2", "priv-while-down-3"}
		for _, name := range down {
			if _, err := cs.CoreV1().Pods(appNS).Create(ctx, privilegedPod(name), metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(2 * time.Second) // at least one failed attempt
		restart := time.Now()
		proc = env.start(t, agentArgs...)
		for _, name := range down {
			env.alerts.wait(t, alertTimeout, "pod "+name+" created while the agent was down",
				forPod("Privileged Container Started in Pod", appNS, name))
		}
		t.Logf("all %d alerts delivered %s after the restart", len(down), time.Since(restart).Round(time.Millisecond))
	})

	// The control plane first: stopped the other way round, kube-apiserver's shutdown would
	// spend its grace period retrying its last batches against a stopped agent.
	cp.Stop()
	proc.stop(t)
	t.Logf("tier took %s", time.Since(tierStart).Round(time.Millisecond))
}

const validLocalRules = "- list: e2e_local_list\n  items: [a, b]\n"

func writeRules(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// waitEvent waits for an Event with reason on the agent's pod that was not seen before.
func waitEvent(t *testing.T, cs kubernetes.Interface, reason string) corev1.Event {
	t.Helper()
	deadline := time.Now().Add(alertTimeout)
	for {
		l, err := cs.CoreV1().Events(agentNS).List(context.Background(), metav1.ListOptions{
			FieldSelector: fields.Set{"involvedObject.name": agentPod, "reason": reason}.String(),
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(l.Items) > 0 {
			return l.Items[len(l.Items)-1]
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s event on pod %s/%s within %s", reason, agentNS, agentPod, alertTimeout)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
