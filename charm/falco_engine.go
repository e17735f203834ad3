package charm

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// The engine option: which rules engine evaluates the audit stream.
const (
	// EngineFalcoK8s is the agent's own Falco-compatible engine (the default): the audit
	// webhook, admission enforcement and the rules all in the agent.
	EngineFalcoK8s = "falco-k8s"
	// EngineFalco runs the real Falco binary of the workload image as a second Pebble service:
	// Falco's k8saudit plugin is the audit webhook, the agent follows, validates (its engine and
	// `falco -V`) and serves the rules, and receives Falco's alerts for its journal and outputs.
	EngineFalco = "falco"
)

// Paths and names of engine=falco (before FALCO_K8S_WORKLOAD_ROOT, except the Falco binary
// and plugins, which belong to the image).
const (
	FalcoServiceName = "falco"
	FalcoConfigDir   = ConfigDir + "/falco"
	FalcoConfigPath  = FalcoConfigDir + "/falco.yaml"
	// FalcoBuiltinRulesPath is the built-in ruleset as a file, for Falco to load first.
	FalcoBuiltinRulesPath = FalcoConfigDir + "/k8s_audit_default.yaml"
	// FalcoTLSPath is the webhook's certificate and key in one PEM file, as k8saudit's
	// sslCertificate wants them (0600).
	FalcoTLSPath = FalcoConfigDir + "/webhook.pem"
	// FalcoRulesDir is the agent's falco.rules_dir: the validated followed rules, flat (Falco
	// loads a directory's files by name and does not descend into subdirectories).
	FalcoRulesDir = StateDir + "/falco/rules"
	// FalcoAlertsTokenPath is the agent's falco.alerts_token_file (0600): the agent accepts
	// Falco's alerts on /falco/alerts/<token>. The charm makes the token once and keeps it (the
	// file is in the state storage).
	FalcoAlertsTokenPath = StateDir + "/falco/alerts-token"
	// DefaultFalcoBinary and DefaultFalcoPluginsDir are where falcosecurity/falco images have
	// them.
	DefaultFalcoBinary     = "/usr/bin/falco"
	DefaultFalcoPluginsDir = "/usr/share/falco/plugins"
)

// parseEngine validates the engine option. Admission enforcement is the agent engine's: Falco
// has no admission webhook, so enforce-mode with engine=falco is refused rather than silently
// not enforcing.
func parseEngine(v string, e Enforce, bad func(opt, example, format string, a ...any) error) (string, error) {
	switch strings.ToLower(v) {
	case "", EngineFalcoK8s:
		return EngineFalcoK8s, nil
	case EngineFalco:
		if e.Mode != "off" {
			return "", bad("enforce-mode", "off", "admission enforcement (enforce-mode=%s) needs engine=falco-k8s; Falco has no admission webhook", e.Mode)
		}
		return EngineFalco, nil
	}
	return "", bad("engine", EngineFalcoK8s, "%q is not falco-k8s or falco", v)
}

// FalcoParams is what the Falco configuration is rendered from.
type FalcoParams struct {
	WebhookPort int
	WebhookPath string
	// TLSFile is k8saudit's sslCertificate (certificate and key in one PEM file); empty serves
	// plain HTTP.
	TLSFile    string
	PluginsDir string
	// RulesDir is the agent's falco.rules_dir, Falco's only rules_files entry: the agent writes
	// there every file of the ruleset it validated (built-in, followed, local, tuning), named
	// in the one load order (rulesfile.Layers.Ordered), so Falco loads exactly what the agent
	// validated, in the same order, and nothing it did not.
	RulesDir string
	// MinPriority is the charm's minimum-priority; RuleMatching first or all.
	MinPriority, RuleMatching string
	// LogLevel is the charm's log-level spelling.
	LogLevel string
	// Topology is appended to every alert's output_fields.
	Topology map[string]string
	// Forward is the command Falco's program output pipes its JSON alerts to.
	Forward string
}

// falcoPlugin is one entry of Falco's plugins list.
type falcoPlugin struct {
	Name        string `yaml:"name"`
	LibraryPath string `yaml:"library_path"`
	// InitConfig is an object, or "" for the plugin's defaults (Falco turns an empty
	// object into a null its plugins' schemas refuse).
	InitConfig any    `yaml:"init_config"`
	OpenParams string `yaml:"open_params,omitempty"`
}

type falcoEnabled struct {
	Enabled bool `yaml:"enabled"`
}

type falcoProgramOutput struct {
	Enabled   bool   `yaml:"enabled"`
	KeepAlive bool   `yaml:"keep_alive"`
	Program   string `yaml:"program"`
}

type falcoAppendOutput struct {
	Match       map[string]string   `yaml:"match"`
	ExtraFields []map[string]string `yaml:"extra_fields"`
}

// falcoConfig is the subset of Falco 0.44's falco.yaml the charm writes; every key is in the
// schema `falco --config-schema` prints (a test loads the result with the real Falco and wants
// "schema validation: ok").
type falcoConfig struct {
	LoadPlugins      []string      `yaml:"load_plugins"`
	Plugins          []falcoPlugin `yaml:"plugins"`
	RulesFiles       []string      `yaml:"rules_files"`
	WatchConfigFiles bool          `yaml:"watch_config_files"`
	Priority         string        `yaml:"priority"`
	RuleMatching     string        `yaml:"rule_matching"`
	JSONOutput       bool          `yaml:"json_output"`
	JSONOutputProp   bool          `yaml:"json_include_output_property"`
	JSONTagsProp     bool          `yaml:"json_include_tags_property"`
	// time_format_iso_8601 keeps the text output's times unambiguous across time zones.
	TimeISO8601   bool                `yaml:"time_format_iso_8601"`
	StdoutOutput  falcoEnabled        `yaml:"stdout_output"`
	SyslogOutput  falcoEnabled        `yaml:"syslog_output"`
	FileOutput    falcoEnabled        `yaml:"file_output"`
	ProgramOutput falcoProgramOutput  `yaml:"program_output"`
	AppendOutput  []falcoAppendOutput `yaml:"append_output,omitempty"`
	LogStderr     bool                `yaml:"log_stderr"`
	LogSyslog     bool                `yaml:"log_syslog"`
	LogLevel      string              `yaml:"log_level"`
}

// RenderFalcoConfig writes Falco's configuration for Kubernetes audit ingestion: the k8saudit
// plugin's webhook on the webhook port (https with TLSFile) and the json plugin; the rules in
// the rules directory the agent fills; watch_config_files, so that Falco reloads itself when the agent switches
// the validated rules or the charm rewrites this file; JSON alerts on stdout (Pebble's log) and
// piped to the forwarder, which posts them to the agent (Falco's http_output is not in every
// build: the minimal one refuses it); the Juju topology appended to every alert.
func RenderFalcoConfig(p FalcoParams) ([]byte, error) {
	if p.WebhookPort < 1 || p.WebhookPort > 65535 {
		return nil, fmt.Errorf("falco config: webhook port %d out of range", p.WebhookPort)
	}
	if !strings.HasPrefix(p.WebhookPath, "/") || p.PluginsDir == "" || p.Forward == "" || !path.IsAbs(p.RulesDir) {
		return nil, fmt.Errorf("falco config: webhook path, plugins directory, forwarder and an absolute rules directory are required")
	}
	scheme, k8sInit := "http", any("")
	if p.TLSFile != "" {
		scheme, k8sInit = "https", map[string]any{"sslCertificate": p.TLSFile}
	}
	rm := p.RuleMatching
	if rm == "" {
		rm = "first"
	}
	cfg := falcoConfig{
		LoadPlugins: []string{"k8saudit", "json"},
		Plugins: []falcoPlugin{
			// An empty host listens on every address of the pod, as the agent's ":port".
			{Name: "k8saudit", LibraryPath: path.Join(p.PluginsDir, "libk8saudit.so"), InitConfig: k8sInit,
				OpenParams: fmt.Sprintf("%s://:%d%s", scheme, p.WebhookPort, p.WebhookPath)},
			{Name: "json", LibraryPath: path.Join(p.PluginsDir, "libjson.so"), InitConfig: ""},
		},
		RulesFiles:       []string{p.RulesDir},
		WatchConfigFiles: true,
		Priority:         falcoPriority(p.MinPriority),
		RuleMatching:     rm,
		JSONOutput:       true,
		JSONOutputProp:   true,
		JSONTagsProp:     true,
		TimeISO8601:      true,
		StdoutOutput:     falcoEnabled{true},
		ProgramOutput:    falcoProgramOutput{Enabled: true, KeepAlive: true, Program: p.Forward},
		LogStderr:        true,
		LogLevel:         falcoLogLevel(p.LogLevel),
	}
	if len(p.Topology) > 0 {
		keys := make([]string, 0, len(p.Topology))
		for k := range p.Topology {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		ao := falcoAppendOutput{Match: map[string]string{"source": "k8s_audit"}}
		for _, k := range keys {
			ao.ExtraFields = append(ao.ExtraFields, map[string]string{k: p.Topology[k]})
		}
		cfg.AppendOutput = []falcoAppendOutput{ao}
	}
	b, err := yaml.Marshal(cfg)
	if err != nil {
		return nil, fmt.Errorf("render falco config: %w", err)
	}
	return append([]byte("# Written by the falco-k8s charm (engine=falco) on every hook; edits are overwritten.\n"), b...), nil
}

// falcoPriority is Falco's spelling of a charm priority (Falco knows "informational" too, but
// its own documentation and default configuration say "info").
func falcoPriority(p string) string {
	if p == "" {
		return "debug"
	}
	if p == "informational" {
		return "info"
	}
	return p
}

// falcoLogLevel maps the charm's log-level to Falco's (which has no trace).
func falcoLogLevel(l string) string {
	switch l {
	case "trace", "debug":
		return "debug"
	case "warning", "error":
		return l
	}
	return "info"
}

// FalcoArgs are Falco's arguments for the charm's configuration: the syscall source is
// disabled, since a Kubernetes-audit Falco has no driver and would otherwise try to open one.
func FalcoArgs(config string, extra ...string) []string {
	return append([]string{"-c", config, "--disable-source=syscall"}, extra...)
}

// falcoDesired adds engine=falco to the agent configuration cfg and the files Falco reads
// (its configuration, and the webhook's certificate and key in one file) through add. p maps a
// workload path to the path under the workload root.
func falcoDesired(cfg map[string]any, s *Settings, c Creds, env Env, statusPort int, p func(string) string,
	add func(path string, mode os.FileMode, content []byte, secret bool)) error {
	cfg["engine"] = EngineFalco
	cfg["falco"] = map[string]any{
		"binary":            env.falcoBinary(),
		"config_file":       p(FalcoConfigPath),
		"rules_dir":         p(FalcoRulesDir),
		"alerts_token_file": p(FalcoAlertsTokenPath),
	}
	fp := FalcoParams{
		WebhookPort: s.WebhookPort, WebhookPath: WebhookPath, PluginsDir: env.falcoPluginsDir(),
		RulesDir: p(FalcoRulesDir), MinPriority: s.MinPriority, LogLevel: s.LogLevel,
		Topology: TopologyOf(env).Labels(),
		// No shell quoting needed: every path is the charm's own, without spaces.
		Forward: fmt.Sprintf("%s falco-forward --url http://127.0.0.1:%d/falco/alerts/ --token-file %s",
			p(BinaryPath), statusPort, p(FalcoAlertsTokenPath)),
	}
	if c.FalcoAlertsToken == "" {
		return fmt.Errorf("engine=falco: no alerts token")
	}
	add(FalcoAlertsTokenPath, 0o600, []byte(c.FalcoAlertsToken+"\n"), true)
	if len(c.TLSCert) > 0 {
		fp.TLSFile = p(FalcoTLSPath)
		pem := append(append(bytes.TrimRight(bytes.Clone(c.TLSCert), "\n"), '\n'), c.TLSKey...)
		add(FalcoTLSPath, 0o600, pem, true)
	}
	b, err := RenderFalcoConfig(fp)
	if err != nil {
		return err
	}
	add(FalcoConfigPath, 0o644, b, false)
	return nil
}

// isFalcoReloaded reports whether a file is Falco's alone and reloaded by Falco itself
// (watch_config_files; SIGHUP for the certificate): it is kept out of the agent's inputs hash,
// so changing it never restarts the agent.
func isFalcoReloaded(path string) bool { return path == FalcoConfigPath || path == FalcoTLSPath }

// falcoService is the Pebble service running Falco, and its check: Falco's webhook must accept
// connections, or Pebble restarts it (a Falco that lost its listener alerts on nothing) and the
// pod is not ready.
func falcoService(env Env, webhookPort int, p func(string) string) (svc, check map[string]any) {
	svc = map[string]any{
		"override": "replace",
		"summary":  "Falco (engine=falco): k8saudit webhook and rules, configured by the falco-k8s charm",
		"command":  strings.Join(append([]string{env.falcoBinary()}, FalcoArgs(p(FalcoConfigPath))...), " "),
		"startup":  "enabled",
		// The agent first: it writes the validated rules Falco loads and receives its alerts.
		"after":            []string{ServiceName},
		"environment":      map[string]string{"FALCO_HOSTNAME": env.Unit},
		"on-failure":       "restart",
		"on-check-failure": map[string]string{FalcoCheckName: "restart"},
	}
	// Level ready: the webhook is Falco's, so a unit whose Falco does not listen is taken out
	// of the Service (Juju's readiness probe) as well as restarted.
	check = map[string]any{
		"override": "replace", "level": "ready", "period": "10s", "timeout": "3s", "threshold": 3,
		"tcp": map[string]any{"port": webhookPort, "host": "127.0.0.1"},
	}
	return svc, check
}

// FalcoCheckName is the Pebble check that restarts a Falco whose webhook stopped listening.
const FalcoCheckName = "falco-webhook"

// WebhookPath is the audit webhook's URL path, the same for both engines (webhook-config).
const WebhookPath = "/k8s-audit"

func (e Env) falcoBinary() string { return firstNonEmpty(e.FalcoBinary, DefaultFalcoBinary) }
func (e Env) falcoPluginsDir() string {
	return firstNonEmpty(e.FalcoPluginsDir, DefaultFalcoPluginsDir)
}

// falcoAlertsToken is the token in the workload, or a new random one when there is none: the
// same token on every hook, so the file (and the agent's inputs) only change when it is lost.
func (c *Context) falcoAlertsToken(ctx context.Context, w Workload) (string, error) {
	b, err := w.Pull(ctx, c.Env.WorkloadRoot+FalcoAlertsTokenPath)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	tok := strings.TrimSpace(string(b))
	if len(tok) < 32 {
		r := make([]byte, 32)
		if _, err := rand.Read(r); err != nil {
			return "", fmt.Errorf("alerts token: %w", err)
		}
		tok = hex.EncodeToString(r)
	}
	c.AddSecret(tok)
	return tok, nil
}
