package charm

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/falco-k8s/falco-k8s/engine"
)

// Enforce is the admission webhook's part of the settings (enforce-mode, enforce-rules,
// manage-admission-webhook).
type Enforce struct {
	Mode        string // off, warn, deny
	Rules, Tags []string
	MinPriority string
	// Manage: the charm creates the ValidatingWebhookConfiguration itself (needs --trust) and
	// deletes it when the mode is off and on remove.
	Manage bool
}

// AdmissionPath is the agent's admission.path (the charm keeps the agent's default).
const AdmissionPath = "/k8s-admission"

// AdmissionTimeoutSeconds is the webhook's timeoutSeconds: the agent answers in milliseconds, so
// a short timeout bounds what an unreachable agent costs each request under failurePolicy
// Ignore.
const AdmissionTimeoutSeconds = 5

// parseEnforce validates enforce-mode and enforce-rules. enforce-rules is a comma- or
// newline-separated list: "tag:NAME" selects by tag, "priority:LEVEL" every rule at least that
// severe, anything else is a rule name (names contain spaces, so spaces do not separate).
func parseEnforce(raw map[string]any, str func(string) string, bad func(opt, example, format string, a ...any) error) (Enforce, error) {
	var e Enforce
	e.Mode = strings.ToLower(str("enforce-mode"))
	switch e.Mode {
	case "":
		e.Mode = "off"
	case "off", "warn", "deny":
	default:
		return e, bad("enforce-mode", "warn", "%q is not off, warn or deny", e.Mode)
	}
	for _, it := range strings.FieldsFunc(str("enforce-rules"), func(r rune) bool { return r == ',' || r == '\n' }) {
		it = strings.TrimSpace(it)
		switch {
		case it == "":
		case strings.HasPrefix(it, "tag:"):
			t := strings.TrimSpace(strings.TrimPrefix(it, "tag:"))
			if t == "" {
				return e, bad("enforce-rules", "'tag:mitre_privilege_escalation'", "empty tag in %q", it)
			}
			e.Tags = append(e.Tags, t)
		case strings.HasPrefix(it, "priority:"):
			p := strings.ToLower(strings.TrimSpace(strings.TrimPrefix(it, "priority:")))
			if _, err := engine.ParsePriority(p); err != nil || e.MinPriority != "" {
				return e, bad("enforce-rules", "'priority:critical'", "%q: want one priority:LEVEL (emergency, alert, critical, error, warning, notice, informational, debug)", it)
			}
			e.MinPriority = p
		default:
			e.Rules = append(e.Rules, it)
		}
	}
	if e.Mode != "off" && len(e.Rules) == 0 && len(e.Tags) == 0 && e.MinPriority == "" {
		return e, bad("enforce-rules", "'Privileged Container Started in Pod, tag:mitre_privilege_escalation'",
			"enforce-mode is %s but no rule is selected: list rule names, tag:NAME or priority:LEVEL", e.Mode)
	}
	switch v := raw["manage-admission-webhook"].(type) {
	case nil:
	case bool:
		e.Manage = v
	default:
		return e, bad("manage-admission-webhook", "true", "want true or false")
	}
	return e, nil
}

// agentSection is the agent configuration's admission section.
func (e Enforce) agentSection() map[string]any {
	return map[string]any{"mode": e.Mode, "path": AdmissionPath, "enforce": map[string]any{
		"rules": nonNil(e.Rules), "tags": nonNil(e.Tags), "min_priority": e.MinPriority}}
}

// AdmissionWebhookName names the application's ValidatingWebhookConfiguration (cluster-scoped,
// so the model is part of it).
func AdmissionWebhookName(env Env) string { return env.App + "." + env.Model }

// AdmissionURL is the webhook URL for a host (the Service's ClusterIP or an override).
func AdmissionURL(host string, port int) string {
	return (&url.URL{Scheme: "https", Host: net.JoinHostPort(host, strconv.Itoa(port)), Path: AdmissionPath}).String()
}

// AdmissionWebhook is the ValidatingWebhookConfiguration for the application: every CREATE,
// UPDATE, DELETE and CONNECT, failurePolicy Ignore (an unreachable agent never blocks the
// cluster; Fail would refuse requests whenever it is down), sideEffects None (dry runs are
// sent too), and kube-system and the application's own namespace excluded, so neither the
// control plane nor the agent's own pod can be locked out.
func AdmissionWebhook(env Env, webhookURL string, caBundle []byte) *admissionregistrationv1.ValidatingWebhookConfiguration {
	ignore := admissionregistrationv1.Ignore
	none := admissionregistrationv1.SideEffectClassNone
	timeout := int32(AdmissionTimeoutSeconds)
	all := admissionregistrationv1.AllScopes
	equivalent := admissionregistrationv1.Equivalent
	return &admissionregistrationv1.ValidatingWebhookConfiguration{
		TypeMeta: metav1.TypeMeta{APIVersion: "admissionregistration.k8s.io/v1", Kind: "ValidatingWebhookConfiguration"},
		ObjectMeta: metav1.ObjectMeta{Name: AdmissionWebhookName(env), Labels: map[string]string{
			"app.kubernetes.io/managed-by": "falco-k8s", "app.kubernetes.io/name": env.App}},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{{
			Name:         env.App + "." + env.Model + ".enforce.falco-k8s.io",
			ClientConfig: admissionregistrationv1.WebhookClientConfig{URL: &webhookURL, CABundle: caBundle},
			Rules: []admissionregistrationv1.RuleWithOperations{{
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update,
					admissionregistrationv1.Delete, admissionregistrationv1.Connect},
				Rule: admissionregistrationv1.Rule{APIGroups: []string{"*"}, APIVersions: []string{"*"}, Resources: []string{"*/*"}, Scope: &all},
			}},
			NamespaceSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{
				Key: "kubernetes.io/metadata.name", Operator: metav1.LabelSelectorOpNotIn, Values: []string{"kube-system", env.Model}}}},
			FailurePolicy: &ignore, MatchPolicy: &equivalent, SideEffects: &none, TimeoutSeconds: &timeout,
			AdmissionReviewVersions: []string{"v1"},
		}},
	}
}

// AdmissionKube is what the charm-managed webhook needs from the Kubernetes API; the client-go
// adapter implements it.
type AdmissionKube interface {
	ApplyValidatingWebhook(ctx context.Context, w *admissionregistrationv1.ValidatingWebhookConfiguration) error
	DeleteValidatingWebhook(ctx context.Context, name string) error
}

func (k kubeAdapter) ApplyValidatingWebhook(ctx context.Context, w *admissionregistrationv1.ValidatingWebhookConfiguration) error {
	return k.c.ApplyValidatingWebhook(ctx, w)
}

func (k kubeAdapter) DeleteValidatingWebhook(ctx context.Context, name string) error {
	return k.c.DeleteValidatingWebhook(ctx, name)
}

func (c *Context) admissionKube() (AdmissionKube, error) {
	k, err := c.Kube()
	if err != nil {
		return nil, err
	}
	ak, ok := k.(AdmissionKube)
	if !ok {
		return nil, fmt.Errorf("%w: the Kubernetes client cannot manage webhook configurations", ErrNoCluster)
	}
	return ak, nil
}

// syncAdmissionWebhook makes the charm-managed ValidatingWebhookConfiguration match the
// settings: present when manage-admission-webhook is true and enforce-mode is not off, absent
// otherwise (a webhook the charm made is never left behind). It needs the webhook's CA.
func (c *Context) syncAdmissionWebhook(ctx context.Context, s *Settings, ca []byte) error {
	if !s.Enforce.Manage {
		return nil // not ours to touch; remove still deletes it
	}
	ak, err := c.admissionKube()
	if err != nil {
		return blocked("manage-admission-webhook: %v (deploy with --trust)", err)
	}
	if s.Enforce.Mode == "off" {
		return ak.DeleteValidatingWebhook(ctx, AdmissionWebhookName(c.Env))
	}
	if len(ca) == 0 {
		return blocked("enforce-mode %s needs webhook-tls or a certificates relation (juju integrate %s self-signed-certificates): kube-apiserver calls admission webhooks over https only", s.Enforce.Mode, c.Env.App)
	}
	ip, err := c.serviceIP(ctx)
	if err != nil {
		return err
	}
	return ak.ApplyValidatingWebhook(ctx, AdmissionWebhook(c.Env, AdmissionURL(ip, s.WebhookPort), ca))
}

func (c *Context) serviceIP(ctx context.Context) (string, error) {
	k, err := c.Kube()
	if err != nil {
		return "", err
	}
	return k.ServiceClusterIP(ctx, c.Env.Model, c.Env.App)
}

// RemoveAdmissionWebhook deletes the application's ValidatingWebhookConfiguration whatever the
// settings say, so a removed application can never leave a webhook behind that blocks the
// cluster. Without API access there is nothing the charm could have created.
func (c *Context) RemoveAdmissionWebhook(ctx context.Context) error {
	ak, err := c.admissionKube()
	if err != nil {
		// Outside a pod (no API at all) the charm cannot have created one either.
		ev := c.Log.Warn()
		if errors.Is(err, ErrNoCluster) {
			ev = c.Log.Debug()
		}
		ev.Err(err).Msg("remove: cannot reach the Kubernetes API to delete the admission webhook configuration")
		return nil
	}
	return ak.DeleteValidatingWebhook(ctx, AdmissionWebhookName(c.Env))
}
