package charm

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"net/url"
	"path"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/falco-k8s/falco-k8s/engine"
)

// testCAPEM is a throw-away self-signed certificate for the registry-ca baseline.
func testCAPEM(tb testing.TB) string {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "fuzz CA"},
		NotBefore: time.Unix(0, 0), NotAfter: time.Unix(1<<32, 0), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

// validSettingsRaw is a config-get result in which every option is set and valid, so that
// changing one option can only make that option invalid.
func validSettingsRaw(caPEM string) map[string]any {
	ca, _ := json.Marshal(map[string]string{"registry.internal:5000": caPEM})
	return map[string]any{
		"rules-artifacts":       "ghcr.io/acme/k8s-audit-rules:1, reg:5000/x/y@sha256:" + strings.Repeat("a", 64),
		"rule-files":            "k8s_audit_rules.yaml extra/x.yaml",
		"indexes":               "falcosecurity,https://falcosecurity.github.io/falcoctl/index.yaml",
		"follow-interval":       "30m",
		"registry-auth-secret":  "falco-registry-auth",
		"registry-credentials":  "secret:d0nhl5nmp25c7f2pu3c0",
		"plain-http-registries": "registry.internal:5000",
		"registry-ca":           string(ca),
		"http-output":           "http://falcosidekick:2801/",
		"json-output":           true,
		"minimum-priority":      "warning",
		"log-level":             "info",
		"webhook-port":          json.Number("9765"),
		"webhook-tls":           "secret:d0nhl5nmp25c7f2pu3b0",
	}
}

// secretOptions hold secret URIs: their value is never echoed, whatever it is.
var secretOptions = map[string]bool{"registry-credentials": true, "webhook-tls": true}

// FuzzParseSettings replaces one option (chosen by opt) of a valid baseline with a fuzzed
// value: a string for string options; a bool, string or nil for json-output; a json.Number,
// float64, int64, string or nil for webhook-port. Properties: no panic; an error is a
// *ConfigError naming that option (first in the message); secret-URI options never echo the
// value; ParseSettings is deterministic; an accepted result satisfies the option invariants.
func FuzzParseSettings(f *testing.F) {
	raw0 := validSettingsRaw(testCAPEM(f))
	if _, err := ParseSettings(raw0, "falco-k8s"); err != nil {
		f.Fatalf("baseline does not validate: %v", err)
	}
	idx := func(opt string) uint8 { return uint8(slices.Index(Options, opt)) }
	seeds := []struct {
		opt string
		v   string
		n   int64
		fl  float64
		k   uint8
	}{
		{"rules-artifacts", "ghcr.io/a/b:1, ghcr.io/a/c@sha256:" + strings.Repeat("a", 64) + "\nreg:5000/x/y:2", 0, 0, 0},
		{"rules-artifacts", "k8saudit-rules:0.7", 0, 0, 0},
		{"rules-artifacts", "Ghcr.io/A/B:1", 0, 0, 0},
		{"rules-artifacts", "ghcr.io/a/b@sha256:xyz", 0, 0, 0},
		{"rule-files", "a.yaml b/c.yaml", 0, 0, 0},
		{"rule-files", "../x.yaml", 0, 0, 0},
		{"rule-files", "", 0, 0, 0},
		{"indexes", "falcosecurity,https://falcosecurity.github.io/falcoctl/index.yaml;b,http://x/i.yaml,http", 0, 0, 0},
		{"indexes", "a;;b", 0, 0, 0},
		{"indexes", "x,ftp://h/,https", 0, 0, 0},
		{"indexes", "x,https://h/,s3", 0, 0, 0},
		{"follow-interval", "10s", 0, 0, 0},
		{"follow-interval", "6h", 0, 0, 0},
		{"registry-auth-secret", "Bad_Name", 0, 0, 0},
		{"registry-credentials", "s3cr3t", 0, 0, 0},
		{"registry-credentials", "secret:d0nhl5nmp25c7f2pu3c0x", 0, 0, 0},
		{"plain-http-registries", "reg:5000, [::1]:5000", 0, 0, 0},
		{"plain-http-registries", "https://reg", 0, 0, 0},
		{"registry-ca", "[1,2]", 0, 0, 0},
		{"registry-ca", `{"reg:5000": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"}`, 0, 0, 0},
		{"registry-ca", "{a/b: x}", 0, 0, 0},
		{"registry-ca", "&a [*a]", 0, 0, 0},
		{"http-output", "ftp://u:pw123@h/", 0, 0, 0},
		{"http-output", "http://u:p@h/", 0, 0, 0},
		{"http-output", "http://[::1", 0, 0, 0},
		{"json-output", "yes", 0, 0, 1},
		{"json-output", "", 0, 0, 0},
		{"minimum-priority", "INFO", 0, 0, 0},
		{"minimum-priority", "loud", 0, 0, 0},
		{"log-level", "warn", 0, 0, 0},
		{"log-level", "verbose", 0, 0, 0},
		{"webhook-port", "10000", 0, 0, 0},
		{"webhook-port", "0", 0, 0, 0},
		{"webhook-port", "", 0, 9765.5, 1},
		{"webhook-port", "", 65536, 0, 2},
		{"webhook-port", "9765", 0, 0, 3},
		{"webhook-port", "", 0, 1e300, 1},
		{"webhook-tls", "secret:d0nhl5nmp25c7f2pu3c0", 0, 0, 0},
		{"webhook-tls", "secret://abc-1/d0nhl5nmp25c7f2pu3c0", 0, 0, 0},
		{"webhook-tls", "TLS-private-key", 0, 0, 0},
		{"engine", "falco", 0, 0, 0},
		{"engine", "FALCO-K8S", 0, 0, 0},
		{"engine", "sysdig", 0, 0, 0},
		{"rules-signing-identity", "https://github.com/o/r/.github/workflows/release.yaml@refs/heads/main", 0, 0, 0},
		{"rules-signing-issuer", "https://token.actions.githubusercontent.com", 0, 0, 0},
	}
	for _, s := range seeds {
		f.Add(idx(s.opt), s.v, s.n, s.fl, s.k)
	}
	f.Fuzz(func(t *testing.T, opt uint8, v string, n int64, fl float64, kind uint8) {
		option := Options[int(opt)%len(Options)]
		raw := make(map[string]any, len(raw0))
		for k, x := range raw0 {
			raw[k] = x
		}
		switch option {
		case "json-output":
			raw[option] = []any{v == "true", v, nil}[int(kind)%3]
		case "webhook-port":
			raw[option] = []any{json.Number(v), fl, n, v, nil}[int(kind)%5]
		default:
			raw[option] = v
		}
		s, err := ParseSettings(raw, "falco-k8s")
		s2, err2 := ParseSettings(raw, "falco-k8s")
		if !reflect.DeepEqual(s, s2) || errText(err) != errText(err2) {
			t.Fatalf("not deterministic: %+v, %v / %+v, %v", s, err, s2, err2)
		}
		if err != nil {
			if s != nil {
				t.Fatalf("settings %+v with error %v", s, err)
			}
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("error %T is not a *ConfigError: %v", err, err)
			}
			// Options that are only valid together: a value for one may be refused by naming
			// the companion the user still has to set.
			named := ce.Option
			if ce.Option != option && slices.Contains(companions[option], ce.Option) {
				named = option
			}
			if named != option || !strings.HasPrefix(err.Error(), "invalid config "+ce.Option+": ") {
				t.Fatalf("fuzzing %s, error names %s: %v", option, ce.Option, err)
			}
			if !strings.Contains(ce.Fix, "falco-k8s") {
				t.Fatalf("fix does not name the application: %v", err)
			}
			if secretOptions[option] {
				want := "invalid config " + option + ": want a Juju secret URI (secret:...); create one with juju add-secret (fix: juju config falco-k8s " + option + "=secret:ID)"
				if err.Error() != want {
					t.Fatalf("secret option error is not the fixed text: %v", err)
				}
			}
			return
		}
		checkSettings(t, s)
	})
}

// companions lists, per option, the options a value of it can make required.
var companions = map[string][]string{
	"rules-signing-identity": {"rules-signing-issuer", "rules-trusted-root"},
	"rules-signing-issuer":   {"rules-signing-identity", "rules-trusted-root"},
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func checkSettings(t *testing.T, s *Settings) {
	t.Helper()
	if s.WebhookPort < 1 || s.WebhookPort > 65535 {
		t.Fatalf("webhook port %d", s.WebhookPort)
	}
	if p := StatusPort(s); p < 1 || p > 65535 || p == s.WebhookPort {
		t.Fatalf("status port %d for webhook port %d", p, s.WebhookPort)
	}
	if s.Engine != EngineFalcoK8s && (s.Engine != EngineFalco || s.Enforce.Mode != "off") {
		t.Fatalf("engine %q with enforce-mode %q", s.Engine, s.Enforce.Mode)
	}
	if s.FollowInterval < time.Minute {
		t.Fatalf("follow interval %v", s.FollowInterval)
	}
	if _, err := engine.ParsePriority(s.MinPriority); err != nil {
		t.Fatalf("priority %q", s.MinPriority)
	}
	if !slices.Contains([]string{"trace", "debug", "info", "warning", "error"}, s.LogLevel) {
		t.Fatalf("log level %q", s.LogLevel)
	}
	for _, f := range s.RuleFiles {
		if f == "" || path.IsAbs(f) || path.Clean(f) != f || f == ".." || strings.HasPrefix(f, "../") {
			t.Fatalf("rule file %q", f)
		}
	}
	if len(s.RulesArtifacts) > 0 && len(s.RuleFiles) == 0 {
		t.Fatal("rules-artifacts without rule-files")
	}
	for _, h := range s.PlainHTTP {
		if !hostRe.MatchString(h) {
			t.Fatalf("plain-http host %q", h)
		}
	}
	for h, p := range s.RegistryCA {
		if !hostRe.MatchString(h) || !validPEMCerts(p) {
			t.Fatalf("registry-ca %q", h)
		}
	}
	if s.HTTPOutput != "" {
		u, err := url.Parse(s.HTTPOutput)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
			t.Fatalf("http output %q", s.HTTPOutput)
		}
	}
	for _, sec := range []string{s.RegistryCredentials, s.WebhookTLS} {
		if sec != "" && !secretURIRe.MatchString(sec) {
			t.Fatalf("secret URI %q", sec)
		}
	}
	if s.RegistryAuthSecret != "" && !k8sNameRe.MatchString(s.RegistryAuthSecret) {
		t.Fatalf("registry-auth-secret %q", s.RegistryAuthSecret)
	}
	for _, ix := range s.Indexes {
		if !indexNameRe.MatchString(ix.Name) || !slices.Contains([]string{"", "http", "https"}, ix.Backend) {
			t.Fatalf("index %+v", ix)
		}
	}
}

// httpPasswordMarker begins and ends the password of the http-output URL built by
// FuzzHTTPOutputPassword.
const httpPasswordMarker = "Pw7xQ"

// FuzzHTTPOutputPassword puts prefix + user + ":" + password + "@" + rest in http-output (the
// password starts and ends with a marker) and checks that no error quotes any of it.
func FuzzHTTPOutputPassword(f *testing.F) {
	for _, s := range [][4]string{
		{"ftp://", "u", "pw123", "h/"},
		{"http://", "u", "p", "h/"},
		{"http://", "u", "p@ss", "h/"},
		{"ftp://", "u", "a/b", "h/"},
		{"http://", "", "", ""},
		{"", "u", "p", "h"},
		{"http://x/", "u", "p", "h"},
		{"http://", "u", "p", "[::1"},
		{"https://", "u", "p#q", "h:99999/"},
		{"http://", "u", "p\x7f", "h/"},
	} {
		f.Add(s[0], s[1], s[2], s[3])
	}
	f.Fuzz(func(t *testing.T, prefix, user, pw, rest string) {
		u := prefix + user + ":" + httpPasswordMarker + pw + httpPasswordMarker + "@" + rest
		_, err := ParseSettings(map[string]any{"http-output": u}, "falco-k8s")
		if err == nil {
			return
		}
		var ce *ConfigError
		if !errors.As(err, &ce) || ce.Option != "http-output" {
			t.Fatalf("error does not name http-output: %v", err)
		}
		if strings.Contains(err.Error(), httpPasswordMarker) && !strings.Contains(prefix+user+rest, httpPasswordMarker) {
			t.Fatalf("http-output error quotes the password: %v", err)
		}
	})
}
