package actions

import (
	"fmt"
	"net/url"

	"sigs.k8s.io/yaml"

	"github.com/falco-k8s/falco-k8s/charm"
)

// admissionWebhookResults are webhook-config's results for the validating admission webhook:
// the ValidatingWebhookConfiguration to apply (kubectl apply -f), at the same host as the audit
// webhook's server, and a note on what it needs.
func admissionWebhookResults(c *charm.Context, s *charm.Settings, auditServer string, ca []byte) (map[string]any, error) {
	u, err := url.Parse(auditServer)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("webhook server %q has no host", auditServer)
	}
	w := charm.AdmissionWebhook(c.Env, (&url.URL{Scheme: "https", Host: u.Host, Path: charm.AdmissionPath}).String(), ca)
	b, err := yaml.Marshal(w)
	if err != nil {
		return nil, fmt.Errorf("render ValidatingWebhookConfiguration: %w", err)
	}
	note := fmt.Sprintf("enforce-mode is %s.", s.Enforce.Mode)
	switch {
	case ca == nil:
		note += " kube-apiserver calls admission webhooks over https only: set webhook-tls first."
	case s.Enforce.Manage:
		note += " manage-admission-webhook is true: the charm applies this object itself and deletes it on remove."
	default:
		note += " Apply it with kubectl apply -f; delete it (kubectl delete validatingwebhookconfiguration " + w.Name +
			") before removing the application. failurePolicy Ignore lets requests through while the agent is unreachable;" +
			" Fail would refuse them."
	}
	return map[string]any{
		"validating-webhook-configuration": "# kubectl apply -f, written by falco-k8s webhook-config\n" + string(b),
		"admission-note":                   note,
	}, nil
}
