package actions

import (
	"context"
	_ "embed" // the audit policy
	"encoding/base64"
	"fmt"
	"maps"
	"net"
	"net/url"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/falco-k8s/falco-k8s/charm"
)

// webhook-config returns what kube-apiserver needs to send its audit events to this
// application: the audit webhook kubeconfig (--audit-webhook-config-file), whose server is the
// application Service's ClusterIP and webhook-port (looked up with client-go) unless the server
// parameter overrides it, with the CA when the webhook serves TLS; and the recommended audit
// policy (--audit-policy-file); and the ValidatingWebhookConfiguration for enforcement
// (admission_webhook.go).
func init() { Register("webhook-config", webhookConfig) }

//go:embed audit-policy.yaml
var auditPolicy string

// webhookPath is the agent's webhook.path (the charm keeps the agent's default).
const webhookPath = "/k8s-audit"

func webhookConfig(ctx context.Context, c *charm.Context, p Params) (map[string]any, error) {
	s, err := c.Settings(ctx)
	if err != nil {
		return nil, err
	}
	_, _, ca, err := c.WebhookTLS(ctx, s)
	if err != nil {
		return nil, err
	}
	if ca == nil { // webhook-tls wins; else the certificates relation's CA
		if ca, err = c.RelationCA(ctx); err != nil {
			return nil, err
		}
	}
	if ca == nil && s.Enforce.Mode != "off" { // then the charm's own CA (charm/charmca.go)
		if ca, err = c.CharmCA(ctx); err != nil {
			return nil, err
		}
	}
	scheme := "http"
	if ca != nil {
		scheme = "https"
	}
	server, err := serverURL(p.String("server"), scheme, s.WebhookPort)
	if err != nil {
		return nil, err
	}
	if server == "" {
		k, err := c.Kube()
		if err != nil {
			return nil, fmt.Errorf("cannot look up the %s Service (%v); pass server=HOST[:PORT]", c.Env.App, err)
		}
		ip, err := k.ServiceClusterIP(ctx, c.Env.Model, c.Env.App)
		if err != nil {
			return nil, fmt.Errorf("cannot look up the %s Service in namespace %s (%v); pass server=HOST[:PORT]", c.Env.App, c.Env.Model, err)
		}
		server = (&url.URL{Scheme: scheme, Host: net.JoinHostPort(ip, strconv.Itoa(s.WebhookPort)), Path: webhookPath}).String()
	}
	cluster := map[string]any{"server": server}
	if ca != nil {
		cluster["certificate-authority-data"] = base64.StdEncoding.EncodeToString(ca)
	}
	kc := map[string]any{
		"apiVersion": "v1",
		"kind":       "Config",
		"clusters":   []any{map[string]any{"name": "falco-k8s", "cluster": cluster}},
		"users":      []any{map[string]any{"name": "kube-apiserver", "user": map[string]any{}}},
		"contexts": []any{map[string]any{"name": "falco-k8s", "context": map[string]any{
			"cluster": "falco-k8s", "user": "kube-apiserver"}}},
		"current-context": "falco-k8s",
	}
	b, err := yaml.Marshal(kc)
	if err != nil {
		return nil, fmt.Errorf("render kubeconfig: %w", err)
	}
	res := map[string]any{
		"server":       server,
		"kubeconfig":   "# kube-apiserver --audit-webhook-config-file, written by falco-k8s webhook-config\n" + string(b),
		"audit-policy": auditPolicy,
		"apiserver-flags": "--audit-policy-file=/etc/kubernetes/falco-k8s-audit-policy.yaml " +
			"--audit-webhook-config-file=/etc/kubernetes/falco-k8s-webhook.yaml --audit-webhook-mode=batch",
	}
	adm, err := admissionWebhookResults(c, s, server, ca)
	if err != nil {
		return nil, err
	}
	maps.Copy(res, adm)
	return res, nil
}

// serverURL turns the server parameter (host, host:port or a URL) into the webhook URL; "" when
// the parameter is empty.
func serverURL(param, scheme string, port int) (string, error) {
	if param == "" {
		return "", nil
	}
	if strings.Contains(param, "://") {
		u, err := url.Parse(param)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return "", fmt.Errorf("server %q is not an http(s) URL, host or host:port", param)
		}
		if u.Path == "" || u.Path == "/" {
			u.Path = webhookPath
		}
		return u.String(), nil
	}
	host := param
	if h, p, err := net.SplitHostPort(param); err == nil {
		n, perr := strconv.Atoi(p)
		if perr != nil || n < 1 || n > 65535 {
			return "", fmt.Errorf("server %q: invalid port", param)
		}
		host, port = h, n
	}
	if host == "" || strings.ContainsAny(host, "/ @") {
		return "", fmt.Errorf("server %q is not a host or host:port", param)
	}
	return (&url.URL{Scheme: scheme, Host: net.JoinHostPort(host, strconv.Itoa(port)), Path: webhookPath}).String(), nil
}
