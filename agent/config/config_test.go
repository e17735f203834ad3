package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestDefaults(t *testing.T) {
	c := Default()
	if err := c.Validate(); err != nil {
		t.Fatalf("default config does not validate: %v", err)
	}
	checks := []struct {
		name string
		got  any
		want any
	}{
		{"listen", c.Webhook.Listen, ":9765"},
		{"path", c.Webhook.Path, "/k8s-audit"},
		{"max_event_size", c.Webhook.MaxEventSize, ByteSize(256 << 10)},
		{"max_body_size", c.Webhook.MaxBodySize, ByteSize(12 << 20)},
		{"interval", c.Follow.Interval, 6 * time.Hour},
		{"jitter", c.Follow.Jitter, 0.1},
		{"max_artifact_size", c.Follow.MaxArtifactSize, ByteSize(16 << 20)},
		{"registry_ca", c.Follow.RegistryCA, map[string]string{}},
		{"builtin", c.Rules.Builtin, true},
		{"rule_matching", c.Rules.RuleMatching, "first"},
		{"stdout", c.Outputs.Stdout.Enabled, true},
		{"stdout.json", c.Outputs.Stdout.JSON, (*bool)(nil)},
		{"read_header_timeout", c.Webhook.ReadHeaderTimeout, 10 * time.Second},
	}
	for _, tc := range checks {
		if !reflect.DeepEqual(tc.got, tc.want) {
			t.Errorf("%s = %v, want %v", tc.name, tc.got, tc.want)
		}
	}
}

// TestDefaultYAMLDocumentsEveryKey makes sure every field of Config appears in the commented
// default file, so --print-default-config is the complete reference.
func TestDefaultYAMLDocumentsEveryKey(t *testing.T) {
	var walk func(reflect.Type, string)
	walk = func(tp reflect.Type, prefix string) {
		for i := 0; i < tp.NumField(); i++ {
			f := tp.Field(i)
			tag := strings.Split(f.Tag.Get("yaml"), ",")[0]
			key := tag
			if prefix != "" {
				key = prefix + "." + tag
			}
			// An override on the key must be accepted: that proves the key exists in the type,
			// and the text search proves it is documented.
			if !strings.Contains(string(DefaultYAML), "\n"+strings.Repeat("  ", strings.Count(key, "."))+tag+":") {
				t.Errorf("key %s is not documented in default.yaml", key)
			}
			ft := f.Type
			if ft.Kind() == reflect.Struct && ft != durationType {
				walk(ft, key)
			}
		}
	}
	walk(reflect.TypeOf(Config{}), "")
}

func TestParse(t *testing.T) {
	tests := []struct {
		name      string
		yaml      string
		overrides []string
		check     func(*Config) any
		want      any
		wantErr   string // substring of the Parse or Validate error
	}{
		{name: "empty file is defaults", check: func(c *Config) any { return c.Webhook.Queue.Capacity }, want: 20000},
		{name: "file value", yaml: "webhook:\n  listen: 127.0.0.1:8443\n", check: func(c *Config) any { return c.Webhook.Listen }, want: "127.0.0.1:8443"},
		{name: "size suffix", yaml: "webhook:\n  max_event_size: 1MiB\n", check: func(c *Config) any { return c.Webhook.MaxEventSize }, want: ByteSize(1 << 20)},
		{name: "size plain", yaml: "webhook:\n  max_body_size: 1000000\n", check: func(c *Config) any { return c.Webhook.MaxBodySize }, want: ByteSize(1000000)},
		{name: "override scalar", overrides: []string{"webhook.queue.capacity=5"}, check: func(c *Config) any { return c.Webhook.Queue.Capacity }, want: 5},
		{name: "override wins over file", yaml: "rules:\n  rule_matching: first\n", overrides: []string{"rules.rule_matching=all"}, check: func(c *Config) any { return c.Rules.AllMatches() }, want: true},
		{name: "override list", overrides: []string{"rules.files=[a.yaml, b.yaml]"}, check: func(c *Config) any { return c.Rules.Files }, want: []string{"a.yaml", "b.yaml"}},
		{name: "override creates section", yaml: "log:\n  level: debug\n", overrides: []string{"outputs.http.url=http://x:2801/"}, check: func(c *Config) any { return c.Outputs.HTTP.URL }, want: "http://x:2801/"},
		{name: "override pointer bool", overrides: []string{"outputs.stdout.json=true"}, check: func(c *Config) any { return c.Outputs.JSONFor(c.Outputs.Stdout.JSON) }, want: true},
		{name: "json_output default inherited", yaml: "outputs:\n  json_output: true\n", check: func(c *Config) any { return c.Outputs.JSONFor(c.Outputs.File.JSON) }, want: true},
		{name: "override empty value", overrides: []string{"observability.listen="}, check: func(c *Config) any { return c.Observability.Listen }, want: ""},
		{name: "duration", overrides: []string{"follow.interval=1s"}, check: func(c *Config) any { return c.Follow.Interval }, want: time.Second},

		{name: "unknown key in file", yaml: "webhook:\n  max_body: 1\n", wantErr: "config key webhook.max_body (line 2): unknown key"},
		{name: "unknown key in override", overrides: []string{"webhook.queue.size=3"}, wantErr: "config key webhook.queue.size (from -o): unknown key"},
		{name: "bad override syntax", overrides: []string{"webhook.listen"}, wantErr: "want -o dotted.key=value"},
		{name: "bad duration", overrides: []string{"webhook.read_timeout=soon"}, wantErr: `config key webhook.read_timeout (from -o): invalid duration "soon"`},
		{name: "bad size", yaml: "webhook:\n  max_event_size: lots\n", wantErr: "config key webhook.max_event_size (line 2)"},
		{name: "bad bool", overrides: []string{"rules.builtin=maybe"}, wantErr: "config key rules.builtin (from -o): invalid value \"maybe\": want true or false"},
		{name: "bad int", overrides: []string{"webhook.queue.capacity=many"}, wantErr: "config key webhook.queue.capacity (from -o): invalid value \"many\": want an integer"},
		{name: "list expected", overrides: []string{"follow.refs=ghcr.io/x/y:1"}, wantErr: "config key follow.refs (from -o): want a list"},
		{name: "section not mapping", yaml: "webhook: 3\n", wantErr: "config key webhook (line 1): want a mapping"},
		{name: "yaml syntax", yaml: "webhook: [\n", wantErr: "parse config"},

		{name: "bad listen", overrides: []string{"webhook.listen=9765"}, wantErr: "config key webhook.listen: invalid listen address"},
		{name: "bad path", overrides: []string{"webhook.path=k8s-audit"}, wantErr: "config key webhook.path"},
		{name: "path collides", overrides: []string{"webhook.path=/metrics"}, wantErr: "config key webhook.path: /metrics is taken"},
		{name: "cert without key", overrides: []string{"webhook.tls.cert_file=/c.pem"}, wantErr: "config key webhook.tls: cert_file and key_file"},
		{name: "client ca without tls", overrides: []string{"webhook.tls.client_ca_file=/ca.pem"}, wantErr: "config key webhook.tls.client_ca_file"},
		{name: "zero capacity", overrides: []string{"webhook.queue.capacity=0"}, wantErr: "config key webhook.queue.capacity: must be greater than 0"},
		{name: "queue bytes below body", overrides: []string{"webhook.queue.max_bytes=1MiB"}, wantErr: "config key webhook.queue.max_bytes"},
		{name: "bad priority", overrides: []string{"rules.min_priority=loud"}, wantErr: "config key rules.min_priority: invalid priority \"loud\""},
		{name: "bad matching", overrides: []string{"rules.rule_matching=some"}, wantErr: "config key rules.rule_matching"},
		{name: "nothing to load", overrides: []string{"rules.builtin=false"}, wantErr: "config key rules: nothing to load"},
		{name: "engine unknown", overrides: []string{"engine=sysdig"}, wantErr: `config key engine: invalid value "sysdig": use falco-k8s or falco`},
		{name: "engine falco needs its keys", overrides: []string{"engine=falco", "observability.listen=127.0.0.1:9766"}, wantErr: "config key falco.rules_dir: must be set with engine: falco"},
		{name: "engine falco needs the api listener", overrides: []string{"engine=falco", "falco.rules_dir=/r", "falco.alerts_token_file=/t"}, wantErr: "config key observability.listen: must be set with engine: falco"},
		{name: "engine falco relative rules_dir", overrides: []string{"engine=falco", "falco.rules_dir=r", "falco.alerts_token_file=/t", "observability.listen=127.0.0.1:9766"}, wantErr: "config key falco.rules_dir: \"r\" is not an absolute path"},
		{name: "engine falco valid", overrides: []string{"engine=falco", "falco.rules_dir=/var/lib/falco-k8s/falco/rules", "falco.alerts_token_file=/t", "observability.listen=127.0.0.1:9766"},
			check: func(c *Config) any { return []any{c.FalcoEngine(), c.Falco.Binary, c.Falco.MaxAlertSize} }, want: []any{true, "/usr/bin/falco", ByteSize(1 << 20)}},
		{name: "bad http url", overrides: []string{"outputs.http.url=ftp://x"}, wantErr: "config key outputs.http.url"},
		{name: "follow needs rule_files", overrides: []string{"follow.refs=[ghcr.io/a/b:1]"}, wantErr: "config key follow.rule_files: required"},
		{name: "follow interval", overrides: []string{"follow.refs=[ghcr.io/a/b:1]", "follow.rule_files=[r.yaml]", "follow.interval=10ms"}, wantErr: "config key follow.interval"},
		{name: "follow rule file escapes", overrides: []string{"follow.rule_files=[../etc/passwd.yaml]"}, wantErr: "config key follow.rule_files[0]: invalid path"},
		{name: "follow rule file ext", overrides: []string{"follow.rule_files=[rules.txt]"}, wantErr: "config key follow.rule_files[0]"},
		{name: "follow valid", overrides: []string{"follow.refs=[ghcr.io/a/b:1]", "follow.rule_files=[k8s_audit_rules.yaml, extra/x.yml]"}, check: func(c *Config) any { return len(c.Follow.RuleFiles) }, want: 2},
		{name: "follow registry settings", yaml: "follow:\n  registry_ca:\n    registry.internal:5000: /ca.pem\n  plain_http: [127.0.0.1:5000]\n  jitter: 0.25\n  max_artifact_size: 1MiB\n",
			check: func(c *Config) any {
				return []any{c.Follow.RegistryCA, c.Follow.PlainHTTP, c.Follow.Jitter, c.Follow.MaxArtifactSize}
			}, want: []any{map[string]string{"registry.internal:5000": "/ca.pem"}, []string{"127.0.0.1:5000"}, 0.25, ByteSize(1 << 20)}},
		{name: "follow registry_ca from -o", overrides: []string{"follow.registry_ca={ghcr.io: /ca.pem}"}, check: func(c *Config) any { return c.Follow.RegistryCA["ghcr.io"] }, want: "/ca.pem"},
		{name: "follow jitter range", overrides: []string{"follow.jitter=0.9"}, wantErr: "config key follow.jitter: must be between 0 and 0.5"},
		{name: "follow jitter type", overrides: []string{"follow.jitter=lots"}, wantErr: "config key follow.jitter (from -o): invalid value \"lots\": want a number"},
		{name: "follow registry_ca not a map", overrides: []string{"follow.registry_ca=[a]"}, wantErr: "config key follow.registry_ca (from -o): want a mapping"},
		{name: "follow registry_ca host with scheme", overrides: []string{"follow.registry_ca={https://ghcr.io: /ca.pem}"}, wantErr: "config key follow.registry_ca[https://ghcr.io]: invalid registry host"},
		{name: "follow plain_http with path", overrides: []string{"follow.plain_http=[reg.local/org]"}, wantErr: "config key follow.plain_http[0]: invalid registry host"},
		{name: "follow max size", overrides: []string{"follow.max_artifact_size=0"}, wantErr: "config key follow.max_artifact_size: must be greater than 0"},
		{name: "allow_rule_removal unknown ref", overrides: []string{"follow.refs=[ghcr.io/a/b:1]", "follow.rule_files=[r.yaml]", "follow.allow_rule_removal=[ghcr.io/a/c:1]"}, wantErr: "config key follow.allow_rule_removal[0]: \"ghcr.io/a/c:1\" is not in follow.refs"},
		{name: "allow_rule_removal star", overrides: []string{"follow.refs=[ghcr.io/a/b:1]", "follow.rule_files=[r.yaml]", "follow.allow_rule_removal=[\"*\"]"}, check: func(c *Config) any { return c.Follow.AllowRuleRemoval }, want: []string{"*"}},
		{name: "signature policy", overrides: []string{"follow.refs=[ghcr.io/a/b:1]", "follow.rule_files=[r.yaml]", "follow.signature.policy=maybe"}, wantErr: "config key follow.signature.policy"},
		{name: "signature needs key", overrides: []string{"follow.refs=[ghcr.io/a/b:1]", "follow.rule_files=[r.yaml]", "follow.signature.policy=required"}, wantErr: "config key follow.signature.key_file: required for signature policy required"},
		{name: "signature policies ref", overrides: []string{"follow.refs=[ghcr.io/a/b:1]", "follow.rule_files=[r.yaml]", "follow.signature.policies={ghcr.io/x/y:1: off}"}, wantErr: "config key follow.signature.policies[ghcr.io/x/y:1]: not in follow.refs"},
		{name: "signature default policy", overrides: []string{"follow.refs=[ghcr.io/a/b:1]", "follow.rule_files=[r.yaml]", "follow.signature.key_file=/k.pub", "follow.signature.policies={ghcr.io/a/b:1: if-present}"},
			check: func(c *Config) any {
				return []string{c.Follow.Signature.PolicyFor("ghcr.io/a/b:1"), c.Follow.Signature.PolicyFor("other")}
			}, want: []string{"if-present", "required"}},
		{name: "obs same as webhook", overrides: []string{"observability.listen=:9765"}, wantErr: "config key observability.listen"},
		{name: "bad log level", overrides: []string{"log.level=loud"}, wantErr: "config key log.level"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse([]byte(tc.yaml), tc.overrides)
			if err == nil {
				err = c.Validate()
			}
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error = %v, want it to contain %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := tc.check(c); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %#v, want %#v", got, tc.want)
			}
		})
	}
}

func TestLoadFileNamesPath(t *testing.T) {
	p := filepath.Join(t.TempDir(), "agent.yaml")
	if err := os.WriteFile(p, []byte("bogus: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(p, nil)
	if err == nil || !strings.HasPrefix(err.Error(), p+": config key bogus (line 1): unknown key") {
		t.Fatalf("error = %v", err)
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing.yaml"), nil); err == nil || !strings.Contains(err.Error(), "read config") {
		t.Fatalf("missing file error = %v", err)
	}
}

func TestParseByteSize(t *testing.T) {
	for in, want := range map[string]ByteSize{"0": 0, "10": 10, "256KiB": 262144, "12MiB": 12582912, "1Gi": 1 << 30, "3 KB": 3072} {
		got, err := ParseByteSize(in)
		if err != nil || got != want {
			t.Errorf("ParseByteSize(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "-1", "1TB", "x"} {
		if _, err := ParseByteSize(in); err == nil {
			t.Errorf("ParseByteSize(%q) succeeded", in)
		}
	}
}
