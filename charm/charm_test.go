package charm

import (
	"encoding/json"
	"maps"
	"strings"
	"testing"
	"time"

	agentconfig "github.com/falco-k8s/falco-k8s/agent/config"
	"github.com/falco-k8s/falco-k8s/agent/status"
	"github.com/falco-k8s/falco-k8s/artifact/signature/signaturetest"
)

// testPublicKey is a P-256 public key in cosign.pub's format.
const testPublicKey = `-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEXMRODt5L1TAgcsdlmNOdesMj+qwb
//fKXzpjhr0jdV0zK1Y/sb88vMIL4VIH+/lzmVPFUnRZEfDN7Dyr7P+1LQ==
-----END PUBLIC KEY-----`

func TestParseSettings(t *testing.T) {
	testTrustedRoot := string(signaturetest.TrustedRootJSON(t, signaturetest.NewSigstore(t)))
	for _, tc := range []struct {
		name    string
		raw     map[string]any
		wantErr string
		check   func(*testing.T, *Settings)
	}{
		{name: "defaults", raw: map[string]any{}, check: func(t *testing.T, s *Settings) {
			if s.WebhookPort != 9765 || s.FollowInterval != 6*time.Hour || s.MinPriority != "debug" || s.LogLevel != "info" {
				t.Errorf("%+v", s)
			}
		}},
		{name: "lists", raw: map[string]any{"rules-artifacts": "ghcr.io/a/b:1, ghcr.io/a/c@sha256:" + strings.Repeat("a", 64) + "\nreg:5000/x/y:2",
			"rule-files": "a.yaml b/c.yaml", "plain-http-registries": "reg:5000", "webhook-port": json.Number("10000")},
			check: func(t *testing.T, s *Settings) {
				if len(s.RulesArtifacts) != 3 || len(s.RuleFiles) != 2 || s.PlainHTTP[0] != "reg:5000" || s.WebhookPort != 10000 {
					t.Errorf("%+v", s)
				}
			}},
		{name: "index names need indexes", raw: map[string]any{"rules-artifacts": "k8saudit-rules:0.7"}, wantErr: "index name but no indexes"},
		{name: "index names with indexes", raw: map[string]any{"rules-artifacts": "k8saudit-rules:0.7", "rule-files": "k8s_audit_rules.yaml", "indexes": "falcosecurity,https://falcosecurity.github.io/falcoctl/index.yaml"}},
		{name: "port range", raw: map[string]any{"webhook-port": json.Number("0")}, wantErr: "webhook-port: must be 1-65535, got 0"},
		{name: "port float", raw: map[string]any{"webhook-port": 9765.5}, wantErr: "webhook-port"},
		{name: "interval", raw: map[string]any{"follow-interval": "10s"}, wantErr: "follow-interval"},
		{name: "priority alias", raw: map[string]any{"minimum-priority": "INFO"}},
		{name: "log level warn", raw: map[string]any{"log-level": "warn"}, check: func(t *testing.T, s *Settings) {
			if s.LogLevel != "warning" {
				t.Errorf("%q", s.LogLevel)
			}
		}},
		{name: "secret uri", raw: map[string]any{"registry-credentials": "s3cr3t"}, wantErr: "registry-credentials: want a Juju secret URI"},
		{name: "secret uri ok", raw: map[string]any{"webhook-tls": "secret:d0nhl5nmp25c7f2pu3c0"}},
		{name: "http output password not echoed", raw: map[string]any{"http-output": "ftp://u:pw123@h/"}, wantErr: "ftp://***@h/"},
		{name: "json-output type", raw: map[string]any{"json-output": "yes"}, wantErr: "json-output"},
		{name: "allow-rule-removal", raw: map[string]any{"allow-rule-removal": true}, check: func(t *testing.T, s *Settings) {
			if !s.AllowRuleRemoval {
				t.Errorf("%+v", s)
			}
		}},
		{name: "signing key", raw: map[string]any{"rules-signing-key": testPublicKey}, check: func(t *testing.T, s *Settings) {
			if !strings.HasPrefix(s.SigningKey, "-----BEGIN PUBLIC KEY-----") || s.SignaturePolicy != "" {
				t.Errorf("%+v", s)
			}
		}},
		{name: "signing key invalid", raw: map[string]any{"rules-signing-key": "not a key"}, wantErr: "rules-signing-key: signature key: PEM decoding failed"},
		{name: "keyless needs issuer", raw: map[string]any{"rules-signing-identity": "https://github.com/a/b/.github/workflows/r.yaml@refs/heads/main"}, wantErr: "rules-signing-issuer: required for keyless signatures"},
		{name: "keyless trusted root invalid", raw: map[string]any{"rules-signing-identity": "x", "rules-signing-issuer": "y", "rules-trusted-root": "{}"}, wantErr: "rules-trusted-root: trusted root"},
		{name: "trusted root alone", raw: map[string]any{"rules-trusted-root": testTrustedRoot}, check: func(t *testing.T, s *Settings) {
			if s.TrustedRoot == "" || s.SigningIdentity != "" {
				t.Errorf("%+v", s)
			}
		}},
		{name: "trusted root alone invalid", raw: map[string]any{"rules-trusted-root": "{}"}, wantErr: "rules-trusted-root: trusted root"},
		{name: "policy needs key", raw: map[string]any{"rules-signature-policy": "required"}, wantErr: "rules-signing-key: required with rules-signature-policy=required"},
		{name: "policy invalid", raw: map[string]any{"rules-signing-key": testPublicKey, "rules-signature-policy": "maybe"}, wantErr: "rules-signature-policy"},
		{name: "registry-ca yaml", raw: map[string]any{"registry-ca": "[1,2]"}, wantErr: "registry-ca: want a map"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := ParseSettings(tc.raw, "falco-k8s")
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
				if strings.Contains(err.Error(), "pw123") {
					t.Errorf("password echoed: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.check != nil {
				tc.check(t, s)
			}
		})
	}
}

func TestStatusMessage(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	dg := "sha256:ab12cd34ef56ab12cd34ef56ab12cd34ef56ab12cd34ef56ab12cd34ef56ab12"
	for _, tc := range []struct {
		name string
		st   status.Status
		want string
	}{
		{"built-in", status.Status{Ruleset: status.Ruleset{Rules: status.Counts{Active: 41}}}, "41 rules (built-in)"},
		{"artifact synced", status.Status{
			Ruleset: status.Ruleset{Rules: status.Counts{Active: 53}, Files: []status.File{{Name: "builtin"}, {Name: "k8s_audit_rules.yaml", Ref: "ghcr.io/falcosecurity/rules/k8saudit-rules:0", Digest: dg}}},
			Sources: []status.Source{{Ref: "ghcr.io/falcosecurity/rules/k8saudit-rules:0", LastSuccess: now.Add(-3 * time.Minute)}},
		}, "53 rules (k8saudit-rules@sha256:ab12cd34ef56…), synced 3m ago"},
		{"refused", status.Status{
			Ruleset: status.Ruleset{Rules: status.Counts{Active: 41}},
			Sources: []status.Source{{Ref: "reg.example:5000/a/b:1", LastError: "GET https://reg.example:5000/v2/a/b/manifests/1: response status code 401: unauthorized: authentication required"}},
		}, "41 rules (built-in); registry reg.example:5000 refused the credentials (unauthorized)"},
		{"ignored after accepted", status.Status{
			Ruleset:      status.Ruleset{Rules: status.Counts{Active: 41}},
			LastAccepted: &status.Change{Time: now.Add(-time.Hour)},
			LastIgnored:  &status.Change{Time: now, Ref: "reg/a/b:1", Digest: dg, Reason: "k8s_audit_rules.yaml:3:14: error: bad"},
		}, "41 rules (built-in); ignored b@sha256:ab12cd34ef56…: k8s_audit_rules.yaml:3:14: error: bad"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := StatusMessage(&tc.st, now, func(s string) string { return s }); got != tc.want {
				t.Errorf("got  %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestResultKeys(t *testing.T) {
	flat := FlattenResults(map[string]any{"a": map[string]any{"b-c": "1", "d": true}, "count": 3})
	want := map[string]string{"a.b-c": "1", "a.d": "true", "count": "3"}
	for k, v := range want {
		if flat[k] != v {
			t.Errorf("%s=%q want %q (%v)", k, flat[k], v, flat)
		}
	}
	for k, ok := range map[string]bool{"rules": true, "ref-1.digest": true, "Rules": false, "a_b": false, "stdout": false, "-a": false, "a-": false, "a..b": false,
		"a.stdout": false, "stderr.x": false, "x.stdout-encoding.y": false} {
		if err := ValidResultKey(k); (err == nil) != ok {
			t.Errorf("ValidResultKey(%q) = %v", k, err)
		}
	}
}

func TestRedactAndJoinBasic(t *testing.T) {
	c := &Context{}
	if err := c.checkBasic("ghcr.io,bob,pw-one;reg:5000,al,pw-two"); err != nil {
		t.Fatal(err)
	}
	if got := c.Redact("auth failed with pw-one and pw-two"); strings.Contains(got, "pw-") {
		t.Errorf("not redacted: %q", got)
	}
	if got := joinBasic([]string{"a,b,c", "d,e,f"}); got != "a,b,c;d,e,f" {
		t.Errorf("join %q", got)
	}
	got := joinBasic([]string{`[{"registry":"a","user":"b","password":"c;d"}]`, "d,e,f"})
	if !strings.HasPrefix(got, "[{") || !strings.Contains(got, `"c;d"`) || !strings.Contains(got, `"registry":"d"`) {
		t.Errorf("join json %q", got)
	}
}

func TestReadEnv(t *testing.T) {
	t.Setenv("JUJU_DISPATCH_PATH", "actions/show-rules")
	t.Setenv("JUJU_UNIT_NAME", "falco-k8s/3")
	t.Setenv("JUJU_ACTION_NAME", "")
	e := ReadEnv("/var/lib/juju/agents/unit-falco-k8s-3/charm/dispatch")
	if e.Kind != "actions" || e.Name != "show-rules" || e.ActionName != "show-rules" || e.App != "falco-k8s" || e.PodName() != "falco-k8s-3" {
		t.Errorf("%+v", e)
	}
	t.Setenv("JUJU_DISPATCH_PATH", "hooks/falco-pebble-ready")
	if e := ReadEnv("dispatch"); e.Kind != "hooks" || e.Name != "falco-pebble-ready" {
		t.Errorf("%+v", e)
	}
}

// TestDesiredSignatureAndGuard: the signature and guard options reach the agent configuration,
// with the key and trusted root written as workload files.
func TestDesiredSignatureAndGuard(t *testing.T) {
	s, err := ParseSettings(map[string]any{"rules-artifacts": "ghcr.io/a/b:1", "rule-files": "k8s_audit_rules.yaml",
		"allow-rule-removal": true, "rules-signing-key": testPublicKey}, "falco-k8s")
	if err != nil {
		t.Fatal(err)
	}
	d, err := BuildDesired(s, Creds{}, Env{Unit: "falco-k8s/0"}, "/bin/true", "x")
	if err != nil {
		t.Fatal(err)
	}
	ac, err := agentconfig.Parse(d.AgentConfig, nil)
	if err != nil {
		t.Fatal(err)
	}
	if ac.Follow.Signature.KeyFile != SigningKeyPath || ac.Follow.Signature.PolicyFor("ghcr.io/a/b:1") != "required" ||
		len(ac.Follow.AllowRuleRemoval) != 1 || ac.Follow.AllowRuleRemoval[0] != "*" {
		t.Fatalf("follow %+v", ac.Follow)
	}
	found := false
	for _, f := range d.Files {
		found = found || f.Path == SigningKeyPath && strings.HasPrefix(string(f.Content), "-----BEGIN PUBLIC KEY-----")
	}
	if !found {
		t.Fatal("signing key file not written")
	}
}

// TestDesiredIndexSigners: the keyless signer of the index entry a reference was resolved
// through reaches the agent as that reference's follow.signature.per_ref, with the trusted root
// only; without a trusted root there is nothing to render.
func TestDesiredIndexSigners(t *testing.T) {
	testTrustedRoot := string(signaturetest.TrustedRootJSON(t, signaturetest.NewSigstore(t)))
	signers := map[string]RefSigner{"ghcr.io/a/b:1": {Identity: "https://ci/x", Issuer: "https://issuer"}}
	for _, tc := range []struct {
		name string
		raw  map[string]any
		want string // the per_ref identity, "" for no signature section
	}{
		{"trusted root", map[string]any{"rules-trusted-root": testTrustedRoot}, "https://ci/x"},
		{"no trusted root", map[string]any{}, ""},
	} {
		raw := map[string]any{"rules-artifacts": "ghcr.io/a/b:1, ghcr.io/a/c:1", "rule-files": "k8s_audit_rules.yaml"}
		maps.Copy(raw, tc.raw)
		s, err := ParseSettings(raw, "falco-k8s")
		if err != nil {
			t.Fatal(err)
		}
		if s.TrustedRoot != "" {
			s.IndexSigners = signers
		}
		d, err := BuildDesired(s, Creds{}, Env{Unit: "falco-k8s/0"}, "/bin/true", "x")
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		ac, err := agentconfig.Parse(d.AgentConfig, nil)
		if err != nil {
			t.Fatal(err)
		}
		sg := ac.Follow.Signature
		if got := sg.PerRef["ghcr.io/a/b:1"].CertificateIdentity; got != tc.want {
			t.Errorf("%s: per_ref identity %q, want %q", tc.name, got, tc.want)
		}
		wantPolicy := map[bool]string{true: "required", false: "off"}[tc.want != ""]
		if sg.PolicyFor("ghcr.io/a/b:1") != wantPolicy || sg.PolicyFor("ghcr.io/a/c:1") != "off" {
			t.Errorf("%s: policies %s %s", tc.name, sg.PolicyFor("ghcr.io/a/b:1"), sg.PolicyFor("ghcr.io/a/c:1"))
		}
		if (sg.TrustedRootFile != "") != (tc.want != "") {
			t.Errorf("%s: trusted_root_file %q", tc.name, sg.TrustedRootFile)
		}
	}
}
