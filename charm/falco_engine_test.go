package charm

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/falco-k8s/falco-k8s/internal/falcooracle"
	"github.com/falco-k8s/falco-k8s/rules"
)

func TestParseEngine(t *testing.T) {
	for _, tc := range []struct {
		name    string
		raw     map[string]any
		want    string
		wantErr string // the blocked message part
	}{
		{name: "default", raw: map[string]any{}, want: EngineFalcoK8s},
		{name: "falco-k8s", raw: map[string]any{"engine": "falco-k8s"}, want: EngineFalcoK8s},
		{name: "falco", raw: map[string]any{"engine": "falco"}, want: EngineFalco},
		{name: "case and spaces", raw: map[string]any{"engine": " Falco "}, want: EngineFalco},
		{name: "unknown", raw: map[string]any{"engine": "sysdig"}, wantErr: `invalid config engine: "sysdig" is not falco-k8s or falco (fix: juju config falco-k8s engine=falco-k8s)`},
		{name: "enforce needs falco-k8s", raw: map[string]any{"engine": "falco", "enforce-mode": "deny", "enforce-rules": "tag:x"},
			wantErr: "invalid config enforce-mode: admission enforcement (enforce-mode=deny) needs engine=falco-k8s"},
		{name: "enforce off with falco", raw: map[string]any{"engine": "falco", "enforce-mode": "off"}, want: EngineFalco},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := ParseSettings(tc.raw, "falco-k8s")
			if tc.wantErr != "" {
				var ce *ConfigError
				if !errors.As(err, &ce) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want a ConfigError containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s.Engine != tc.want {
				t.Fatalf("engine = %q, want %q", s.Engine, tc.want)
			}
		})
	}
}

func TestRenderFalcoConfig(t *testing.T) {
	base := func() FalcoParams {
		return FalcoParams{
			WebhookPort: 9765, WebhookPath: "/k8s-audit", PluginsDir: "/usr/share/falco/plugins",
			RulesDir:    "/var/lib/falco-k8s/falco/rules",
			MinPriority: "warning", LogLevel: "trace", Forward: "/bin/fwd --url x",
			Topology: map[string]string{"juju_unit": "falco-k8s/0", "juju_model": "audit"},
		}
	}
	for _, tc := range []struct {
		name    string
		mod     func(*FalcoParams)
		check   map[string]any // dotted path → value
		wantErr bool
	}{
		{name: "plain http", mod: func(*FalcoParams) {}, check: map[string]any{
			"plugins.0.name": "k8saudit", "plugins.0.open_params": "http://:9765/k8s-audit",
			"plugins.0.library_path": "/usr/share/falco/plugins/libk8saudit.so", "plugins.1.library_path": "/usr/share/falco/plugins/libjson.so",
			"load_plugins":       []any{"k8saudit", "json"},
			"rules_files":        []any{"/var/lib/falco-k8s/falco/rules"},
			"watch_config_files": true, "json_output": true, "priority": "warning", "rule_matching": "first", "log_level": "debug",
			"stdout_output.enabled": true, "program_output.enabled": true, "program_output.keep_alive": true, "program_output.program": "/bin/fwd --url x",
			"append_output.0.match.source":              "k8s_audit",
			"append_output.0.extra_fields.0.juju_model": "audit", "append_output.0.extra_fields.1.juju_unit": "falco-k8s/0",
		}},
		{name: "tls", mod: func(p *FalcoParams) { p.TLSFile = "/etc/falco-k8s/falco/webhook.pem"; p.WebhookPort = 443 }, check: map[string]any{
			"plugins.0.open_params": "https://:443/k8s-audit", "plugins.0.init_config.sslCertificate": "/etc/falco-k8s/falco/webhook.pem",
		}},
		{name: "informational is info", mod: func(p *FalcoParams) { p.MinPriority = "informational"; p.RuleMatching = "all" },
			check: map[string]any{"priority": "info", "rule_matching": "all"}},
		{name: "no topology", mod: func(p *FalcoParams) { p.Topology = nil }, check: map[string]any{"append_output": nil}},
		{name: "bad port", mod: func(p *FalcoParams) { p.WebhookPort = 0 }, wantErr: true},
		{name: "no forwarder", mod: func(p *FalcoParams) { p.Forward = "" }, wantErr: true},
		{name: "relative rules dir", mod: func(p *FalcoParams) { p.RulesDir = "rules" }, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := base()
			tc.mod(&p)
			b, err := RenderFalcoConfig(p)
			if tc.wantErr {
				if err == nil {
					t.Fatal("want an error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var doc map[string]any
			if err := yaml.Unmarshal(b, &doc); err != nil {
				t.Fatal(err)
			}
			for k, want := range tc.check {
				got := dig(doc, k)
				if !yamlEqual(got, want) {
					t.Errorf("%s = %#v, want %#v\n%s", k, got, want, b)
				}
			}
		})
	}
}

func dig(v any, dotted string) any {
	for _, k := range strings.Split(dotted, ".") {
		switch t := v.(type) {
		case map[string]any:
			v = t[k]
		case []any:
			i := 0
			for _, c := range k {
				i = i*10 + int(c-'0')
			}
			if i >= len(t) {
				return nil
			}
			v = t[i]
		default:
			return nil
		}
	}
	return v
}

func yamlEqual(a, b any) bool {
	x, _ := yaml.Marshal(a)
	y, _ := yaml.Marshal(b)
	return string(x) == string(y)
}

// The rendered configuration is loaded by the real Falco 0.44.1 with its real plugins and the
// built-in rules: every key passes Falco's own schema, and the plugins and rules load.
func TestFalcoConfigLoadsInRealFalco(t *testing.T) {
	o := falcooracle.Require(t)
	dir := filepath.Dir(o.Path)
	tmp := t.TempDir()
	rulesDir := filepath.Join(tmp, "rules")
	if err := os.Mkdir(rulesDir, 0o755); err != nil {
		t.Fatal(err)
	}
	builtin := filepath.Join(rulesDir, "000-k8s_audit_default.yaml")
	if err := os.WriteFile(builtin, rules.Default(), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tls := range []bool{false, true} {
		p := FalcoParams{
			WebhookPort: 9765, WebhookPath: "/k8s-audit", PluginsDir: filepath.Join(dir, "plugins"),
			RulesDir:    rulesDir,
			MinPriority: "informational", LogLevel: "info", Forward: "cat >/dev/null",
			Topology: TopologyOf(Env{Unit: "falco-k8s/0", App: "falco-k8s", Model: "audit", ModelUUID: "u"}).Labels(),
		}
		if tls {
			p.TLSFile = filepath.Join(tmp, "webhook.pem")
		}
		b, err := RenderFalcoConfig(p)
		if err != nil {
			t.Fatal(err)
		}
		cfg := filepath.Join(tmp, "falco.yaml")
		if err := os.WriteFile(cfg, b, 0o644); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		out, err := exec.CommandContext(ctx, filepath.Join(dir, "bin", "falco"), FalcoArgs(cfg, "--dry-run")...).CombinedOutput()
		cancel()
		if err != nil {
			t.Fatalf("tls=%v: falco --dry-run: %v\n%s\n%s", tls, err, out, b)
		}
		for _, want := range []string{cfg + " | schema validation: ok", "Loaded plugin 'k8saudit@", "Loaded plugin 'json@", builtin + " | schema validation: ok"} {
			if !strings.Contains(string(out), want) {
				t.Errorf("tls=%v: falco output lacks %q:\n%s", tls, want, out)
			}
		}
	}
}

func TestFalcoFailureReason(t *testing.T) {
	for _, tc := range []struct {
		name  string
		lines []string
		want  string
	}{
		{name: "none", lines: []string{"Thu Dec 03 15:44:24 2026: Falco version: 0.44.1 (x86_64)"}, want: ""},
		{name: "plugin load", lines: []string{
			"2026-12-03T15:48:22+0000: Loaded plugin 'k8saudit@0.18.0'",
			"2026-12-03T15:48:22+0000: Runtime error: cannot load plugin /x/libjson.so: No such file. Exiting.",
			"Events detected: 0"}, want: "Runtime error: cannot load plugin /x/libjson.so: No such file"},
		{name: "port conflict, last error wins", lines: []string{
			"Thu Dec 03 15:44:48 2026: Runtime error: old. Exiting.",
			"Error: listen tcp :9765: bind: address already in use",
			"Rule counts by severity:"}, want: "Error: listen tcp :9765: bind: address already in use"},
		{name: "plugin log", lines: []string{"2026/12/03 15:44:40 [k8saudit] error reading body"}, want: "[k8saudit] error reading body"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := FalcoFailureReason(tc.lines); got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// BuildDesired with engine=falco: the agent in falco mode, Falco's files (credentials 0600), the
// falco service after the agent with its webhook check; Falco's files are outside the agent's
// inputs hash (a renewed certificate does not restart the agent).
func TestBuildDesiredFalco(t *testing.T) {
	s, err := ParseSettings(map[string]any{"engine": "falco", "webhook-port": int64(9443), "minimum-priority": "notice"}, "falco-k8s")
	if err != nil {
		t.Fatal(err)
	}
	env := Env{App: "falco-k8s", Model: "audit", Unit: "falco-k8s/0", WorkloadRoot: "/w", FalcoBinary: "/opt/falco/bin/falco"}
	cert, key := []byte("CERT1\n"), []byte("KEY1\n")
	d, err := BuildDesired(s, Creds{FalcoAlertsToken: "tok", TLSCert: cert, TLSKey: key}, env, "/bin/true", "id")
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]File{}
	for _, f := range d.Files {
		files[f.Path] = f
	}
	for path, mode := range map[string]os.FileMode{FalcoConfigPath: 0o644, FalcoTLSPath: 0o600, FalcoAlertsTokenPath: 0o600} {
		if f, ok := files[path]; !ok || f.Mode != mode {
			t.Errorf("%s: %+v, want mode %v", path, f, mode)
		}
	}
	if got := string(files[FalcoTLSPath].Content); got != "CERT1\nKEY1\n" {
		t.Errorf("webhook PEM = %q", got)
	}
	var ac map[string]any
	if err := yaml.Unmarshal(d.AgentConfig, &ac); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]any{"engine": "falco", "falco.binary": "/opt/falco/bin/falco", "falco.config_file": "/w" + FalcoConfigPath,
		"falco.rules_dir": "/w" + FalcoRulesDir, "falco.alerts_token_file": "/w" + FalcoAlertsTokenPath} {
		if got := dig(ac, k); got != want {
			t.Errorf("agent config %s = %v, want %v", k, got, want)
		}
	}
	var fc map[string]any
	if err := yaml.Unmarshal(files[FalcoConfigPath].Content, &fc); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]any{"rules_files": []any{"/w" + FalcoRulesDir}, "plugins.0.open_params": "https://:9443/k8s-audit",
		"plugins.0.init_config.sslCertificate": "/w" + FalcoTLSPath, "priority": "notice",
		"program_output.program": "/w" + BinaryPath + " falco-forward --url http://127.0.0.1:9444/falco/alerts/ --token-file /w" + FalcoAlertsTokenPath} {
		if got := dig(fc, k); !yamlEqual(got, want) {
			t.Errorf("falco.yaml %s = %v, want %v", k, got, want)
		}
	}
	var layer map[string]any
	if err := yaml.Unmarshal(d.Layer, &layer); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]any{
		"services.falco.command":                        "/opt/falco/bin/falco -c /w" + FalcoConfigPath + " --disable-source=syscall",
		"services.falco.after":                          []any{"agent"},
		"services.falco.on-check-failure.falco-webhook": "restart",
		"checks.falco-webhook.tcp.port":                 9443,
		"checks.falco-webhook.level":                    "ready",
		"services.falco.environment.FALCO_HOSTNAME":     "falco-k8s/0",
		"services.agent.on-check-failure.agent-restart": "restart",
	} {
		if got := dig(layer, k); !yamlEqual(got, want) {
			t.Errorf("layer %s = %v, want %v", k, got, want)
		}
	}
	d2, err := BuildDesired(s, Creds{FalcoAlertsToken: "tok", TLSCert: []byte("CERT2\n"), TLSKey: []byte("KEY2\n")}, env, "/bin/true", "id")
	if err != nil {
		t.Fatal(err)
	}
	if d2.InputsHash != d.InputsHash {
		t.Error("a renewed certificate changes the agent's inputs hash")
	}
	d3, err := BuildDesired(s, Creds{FalcoAlertsToken: "other", TLSCert: cert, TLSKey: key}, env, "/bin/true", "id")
	if err != nil {
		t.Fatal(err)
	}
	if d3.InputsHash == d.InputsHash {
		t.Error("a new alerts token does not restart the agent, which reads it at start")
	}
	if _, err := BuildDesired(s, Creds{}, env, "/bin/true", "id"); err == nil {
		t.Error("engine=falco without an alerts token rendered")
	}
}
