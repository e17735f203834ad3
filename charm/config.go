package charm

import (
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"github.com/falco-k8s/falco-k8s/internal/redact"
	"net/url"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/falco-k8s/falco-k8s/artifact/ref"
	"github.com/falco-k8s/falco-k8s/artifact/signature"
	"github.com/falco-k8s/falco-k8s/engine"
)

// Settings is the validated charm configuration (config.yaml).
type Settings struct {
	RulesArtifacts      []string
	RuleFiles           []string
	Indexes             []Index
	FollowInterval      time.Duration
	AllowRuleRemoval    bool
	SigningKey          string // PEM public key
	SigningIdentity     string // keyless: certificate identity
	SigningIssuer       string // keyless: OIDC issuer
	TrustedRoot         string // keyless: trusted_root.json
	IndexSigners        map[string]RefSigner
	SignaturePolicy     string
	RegistryAuthSecret  string
	RegistryCredentials string // secret URI
	PlainHTTP           []string
	RegistryCA          map[string]string // host → PEM
	HTTPOutput          string
	JSONOutput          bool
	MinPriority         string
	LogLevel            string // charm spelling: trace, debug, info, warning, error
	WebhookPort         int
	WebhookTLS          string // secret URI
	Enforce             Enforce
	// Engine evaluates the rules: EngineFalcoK8s (the agent's own engine) or EngineFalco (the
	// real Falco binary of the workload image, configured by the charm; falco_engine.go).
	Engine string
}

// Index is one falcoctl index (indexes option).
type Index struct{ Name, URL, Backend string }

// ConfigError is an invalid option: the unit is blocked with Error() until it is fixed.
type ConfigError struct {
	Option  string
	Problem string
	// Fix is a command or instruction that repairs it.
	Fix string
}

func (e *ConfigError) Error() string {
	msg := fmt.Sprintf("invalid config %s: %s", e.Option, e.Problem)
	if e.Fix != "" {
		msg += " (" + e.Fix + ")"
	}
	return msg
}

// Options are the option names of config.yaml, in the order they are validated.
var Options = []string{"rules-artifacts", "rule-files", "indexes", "follow-interval", "allow-rule-removal", "rules-signing-key", "rules-signing-identity", "rules-signing-issuer",
	"rules-trusted-root", "rules-signature-policy", "registry-auth-secret",
	"registry-credentials", "plain-http-registries", "registry-ca", "http-output", "json-output",
	"minimum-priority", "log-level", "webhook-port", "webhook-tls", "enforce-mode", "enforce-rules", "manage-admission-webhook", "engine"}

var (
	k8sNameRe   = regexp.MustCompile(`^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$`)
	secretURIRe = regexp.MustCompile(`^secret:(//[a-f0-9-]+/)?[0-9a-v]{20}$`)
	hostRe      = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:[0-9]{1,5})?$|^\[[0-9a-fA-F:]+\](:[0-9]{1,5})?$`)
	indexNameRe = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*$`)
)

// ParseSettings validates config-get's output. The first invalid option wins, in config.yaml
// order, so the blocked message is stable.
func ParseSettings(raw map[string]any, app string) (*Settings, error) {
	s := &Settings{}
	str := func(k string) string {
		v, _ := raw[k].(string)
		return strings.TrimSpace(v)
	}
	fix := func(opt, example string) string { return fmt.Sprintf("fix: juju config %s %s=%s", app, opt, example) }
	bad := func(opt, example, format string, a ...any) error {
		return &ConfigError{Option: opt, Problem: fmt.Sprintf(format, a...), Fix: fix(opt, example)}
	}

	s.RulesArtifacts = splitList(str("rules-artifacts"))
	raw0 := str("indexes")
	if raw0 != "" {
		for i, it := range strings.Split(raw0, ";") {
			f := strings.Split(strings.TrimSpace(it), ",")
			if len(f) < 2 || len(f) > 3 || f[0] == "" || f[1] == "" {
				return nil, bad("indexes", "'falcosecurity,https://falcosecurity.github.io/falcoctl/index.yaml'",
					"entry %d must be NAME,URL[,BACKEND]", i+1)
			}
			ix := Index{Name: strings.TrimSpace(f[0]), URL: strings.TrimSpace(f[1])}
			if len(f) == 3 {
				ix.Backend = strings.TrimSpace(f[2])
			}
			if !indexNameRe.MatchString(ix.Name) {
				return nil, bad("indexes", "'falcosecurity,https://falcosecurity.github.io/falcoctl/index.yaml'", "entry %d: invalid index name %q", i+1, ix.Name)
			}
			if u, err := url.Parse(ix.URL); err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
				return nil, bad("indexes", "'falcosecurity,https://falcosecurity.github.io/falcoctl/index.yaml'", "entry %d: invalid URL %q", i+1, ix.URL)
			}
			switch ix.Backend {
			case "", "https", "http":
			default:
				return nil, bad("indexes", "'NAME,URL,https'", "entry %d: backend %q is not supported (https or http)", i+1, ix.Backend)
			}
			s.Indexes = append(s.Indexes, ix)
		}
	}
	for _, r := range s.RulesArtifacts {
		if ref.IsFull(r) {
			if _, err := ref.Parse(r); err != nil {
				return nil, bad("rules-artifacts", "ghcr.io/org/k8s-audit-rules:1", "%v", err)
			}
			continue
		}
		if _, err := ref.ParseIndexRef(r); err != nil {
			return nil, bad("rules-artifacts", "ghcr.io/org/k8s-audit-rules:1", "%v", err)
		}
		if len(s.Indexes) == 0 {
			return nil, &ConfigError{Option: "rules-artifacts", Problem: fmt.Sprintf("%q is an index name but no indexes are configured", r),
				Fix: fmt.Sprintf("fix: give a full reference (registry/repository:tag) or juju config %s indexes=NAME,URL", app)}
		}
	}

	s.RuleFiles = splitList(str("rule-files"))
	for _, f := range s.RuleFiles {
		if path.IsAbs(f) || f != path.Clean(f) || f == ".." || strings.HasPrefix(f, "../") {
			return nil, bad("rule-files", "k8s_audit_rules.yaml", "%q must be a clean relative path inside the artifact", f)
		}
	}
	if len(s.RulesArtifacts) > 0 && len(s.RuleFiles) == 0 {
		return nil, bad("rule-files", "k8s_audit_rules.yaml", "required when rules-artifacts is set: list the files to load from the artifacts")
	}

	fi := str("follow-interval")
	if fi == "" {
		fi = "6h"
	}
	d, err := time.ParseDuration(fi)
	if err != nil || d < time.Minute {
		return nil, bad("follow-interval", "6h", "%q is not a duration of at least 1m (e.g. 30m, 6h)", fi)
	}
	s.FollowInterval = d

	switch v := raw["allow-rule-removal"].(type) {
	case nil:
	case bool:
		s.AllowRuleRemoval = v
	default:
		return nil, bad("allow-rule-removal", "true", "want true or false")
	}

	if k, _ := raw["rules-signing-key"].(string); strings.TrimSpace(k) != "" {
		if _, err := signature.NewVerifier([]byte(k)); err != nil {
			return nil, bad("rules-signing-key", "\"$(cat cosign.pub)\"", "%v", err)
		}
		s.SigningKey = strings.TrimSpace(k) + "\n"
	}
	s.SigningIdentity, s.SigningIssuer = str("rules-signing-identity"), str("rules-signing-issuer")
	s.TrustedRoot = str("rules-trusted-root")
	// rules-trusted-root alone is valid: it verifies the keyless signers that falcoctl index
	// entries name for the references resolved through them (indexes.go).
	if s.SigningIdentity != "" || s.SigningIssuer != "" {
		switch {
		case s.SigningIdentity == "":
			return nil, bad("rules-signing-identity", "https://github.com/ORG/REPO/.github/workflows/release.yaml@refs/heads/main", "required for keyless signatures")
		case s.SigningIssuer == "":
			return nil, bad("rules-signing-issuer", "https://token.actions.githubusercontent.com", "required for keyless signatures")
		case s.TrustedRoot == "":
			return nil, bad("rules-trusted-root", "\"$(cat trusted_root.json)\"", "required for keyless signatures")
		}
		if _, err := signature.NewKeyless([]byte(s.TrustedRoot), s.SigningIdentity, "", s.SigningIssuer, ""); err != nil {
			return nil, bad("rules-trusted-root", "\"$(cat trusted_root.json)\"", "%v", err)
		}
	} else if s.TrustedRoot != "" {
		if err := signature.CheckTrustedRoot([]byte(s.TrustedRoot)); err != nil {
			return nil, bad("rules-trusted-root", "\"$(cat trusted_root.json)\"", "%v", err)
		}
	}
	s.SignaturePolicy = str("rules-signature-policy")
	switch s.SignaturePolicy {
	case "", "off":
	case "required", "if-present":
		if s.SigningKey == "" && s.TrustedRoot == "" {
			return nil, bad("rules-signing-key", "\"$(cat cosign.pub)\"", "required with rules-signature-policy=%s", s.SignaturePolicy)
		}
	default:
		return nil, bad("rules-signature-policy", "required", "%q is not required, if-present or off", s.SignaturePolicy)
	}

	s.RegistryAuthSecret = str("registry-auth-secret")
	if s.RegistryAuthSecret != "" && !k8sNameRe.MatchString(s.RegistryAuthSecret) {
		return nil, bad("registry-auth-secret", "falco-registry-auth", "%q is not a Kubernetes Secret name (lowercase letters, digits, '-', '.')", s.RegistryAuthSecret)
	}
	s.RegistryCredentials = str("registry-credentials")
	if s.RegistryCredentials != "" && !secretURIRe.MatchString(s.RegistryCredentials) {
		return nil, bad("registry-credentials", "secret:ID", "want a Juju secret URI (secret:...); create one with juju add-secret")
	}

	for _, h := range splitList(str("plain-http-registries")) {
		if !hostRe.MatchString(h) {
			return nil, bad("plain-http-registries", "registry.internal:5000", "%q is not a registry host (host or host:port, no scheme)", h)
		}
		s.PlainHTTP = append(s.PlainHTTP, h)
	}

	if rc := str("registry-ca"); rc != "" {
		m := map[string]string{}
		if err := yaml.Unmarshal([]byte(rc), &m); err != nil {
			return nil, bad("registry-ca", `'{"registry.internal:5000": "-----BEGIN CERTIFICATE-----..."}'`, "want a map from registry host to PEM CA bundle")
		}
		hosts := make([]string, 0, len(m))
		for h := range m {
			hosts = append(hosts, h)
		}
		sort.Strings(hosts)
		for _, h := range hosts {
			if !hostRe.MatchString(h) {
				return nil, bad("registry-ca", `'{"HOST": "PEM"}'`, "%q is not a registry host (host or host:port)", h)
			}
			if !validPEMCerts(m[h]) {
				return nil, bad("registry-ca", `'{"HOST": "PEM"}'`, "the CA for %s is not a PEM certificate bundle", h)
			}
		}
		s.RegistryCA = m
	}

	if u := str("http-output"); u != "" {
		pu, err := url.Parse(u)
		if err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
			return nil, bad("http-output", "http://falcosidekick:2801/", "%q is not an http(s) URL", redact.URL(u))
		}
		if pu.User != nil {
			return nil, bad("http-output", "http://falcosidekick:2801/", "credentials in the URL are not supported")
		}
		s.HTTPOutput = u
	}

	switch v := raw["json-output"].(type) {
	case nil:
	case bool:
		s.JSONOutput = v
	default:
		return nil, bad("json-output", "true", "want true or false")
	}

	s.MinPriority = strings.ToLower(str("minimum-priority"))
	if s.MinPriority == "" {
		s.MinPriority = "debug"
	}
	if _, err := engine.ParsePriority(s.MinPriority); err != nil {
		return nil, bad("minimum-priority", "warning", "%q is not one of emergency, alert, critical, error, warning, notice, informational, debug", s.MinPriority)
	}

	s.LogLevel = strings.ToLower(str("log-level"))
	switch s.LogLevel {
	case "":
		s.LogLevel = "info"
	case "trace", "debug", "info", "warning", "error":
	case "warn":
		s.LogLevel = "warning"
	default:
		return nil, bad("log-level", "info", "%q is not trace, debug, info, warning or error", s.LogLevel)
	}

	s.WebhookPort = 9765
	if v, ok := raw["webhook-port"]; ok && v != nil {
		n, err := toInt(v)
		if err != nil || n < 1 || n > 65535 {
			return nil, bad("webhook-port", "9765", "must be 1-65535, got %v", v)
		}
		s.WebhookPort = n
	}

	s.WebhookTLS = str("webhook-tls")
	if s.WebhookTLS != "" && !secretURIRe.MatchString(s.WebhookTLS) {
		return nil, bad("webhook-tls", "secret:ID", "want a Juju secret URI (secret:...); create one with juju add-secret")
	}
	if s.Enforce, err = parseEnforce(raw, str, bad); err != nil {
		return nil, err
	}
	if s.Engine, err = parseEngine(str("engine"), s.Enforce, bad); err != nil {
		return nil, err
	}
	return s, nil
}

// statusPortFor is the agent's local observability port (/healthz, /readyz, /metrics, /status,
// /rules, /sync): the port after the webhook's, so that health checks and the charm never need
// the webhook's TLS, and so two units in one test never collide.
func statusPortFor(webhook int) int {
	if webhook == 65535 {
		return 65534
	}
	return webhook + 1
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\t' || r == '\r' }) {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func toInt(v any) (int, error) {
	switch t := v.(type) {
	case json.Number:
		n, err := strconv.ParseInt(string(t), 10, 64)
		return int(n), err
	case float64:
		if t != float64(int(t)) {
			return 0, fmt.Errorf("not an integer")
		}
		return int(t), nil
	case int:
		return t, nil
	case int64:
		return int(t), nil
	}
	return 0, fmt.Errorf("not an integer")
}

func validPEMCerts(p string) bool {
	rest := []byte(p)
	n := 0
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			return false
		}
		if _, err := x509.ParseCertificate(b.Bytes); err != nil {
			return false
		}
		n++
	}
	return n > 0
}

// StatusPort is the agent's local status port for these settings.
func StatusPort(s *Settings) int { return statusPortFor(s.WebhookPort) }
