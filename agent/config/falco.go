package config

import (
	"path/filepath"
	"time"
)

// Engines of the engine key.
const (
	EngineFalcoK8s = "falco-k8s"
	EngineFalco    = "falco"
)

// Falco configures engine: falco, where a real Falco (run beside the agent, e.g. as another
// Pebble service) evaluates the audit events with its k8saudit plugin's webhook, and the agent
// keeps following and validating rules, serving status, rules and the alert review. agent/doc.go
// ("engine: falco") describes the division of work.
type Falco struct {
	// Binary is the Falco executable the agent validates candidates with (falco -V) and asks
	// for its version.
	Binary string `yaml:"binary"`
	// ConfigFile is the Falco configuration the running Falco uses (the charm writes it), so
	// validation loads the plugins exactly as the running Falco does.
	ConfigFile string `yaml:"config_file"`
	// RulesDir is the directory Falco's rules_files lists. The agent owns it: it writes there
	// every file of the running ruleset, in load order by name, and nothing else may.
	RulesDir string `yaml:"rules_dir"`
	// AlertsTokenFile holds the secret in the path of POST /falco/alerts/<token>, where
	// Falco's http_output posts its alerts (mode 0600).
	AlertsTokenFile string `yaml:"alerts_token_file"`
	// MaxAlertSize bounds one POST of alerts from Falco; larger get 413.
	MaxAlertSize ByteSize `yaml:"max_alert_size"`
	// ValidateTimeout bounds one run of the Falco binary (-V, --dry-run, --version).
	ValidateTimeout time.Duration `yaml:"validate_timeout"`
}

// FalcoEngine reports whether a real Falco evaluates the events (engine: falco).
func (c *Config) FalcoEngine() bool { return c.Engine == EngineFalco }

func (c *Config) validateFalco(bad func(key, format string, args ...any)) {
	switch c.Engine {
	case EngineFalcoK8s:
		return
	case EngineFalco:
	default:
		bad("engine", "invalid value %q: use falco-k8s or falco", c.Engine)
		return
	}
	f := c.Falco
	for _, k := range []struct{ key, v string }{{"falco.binary", f.Binary}, {"falco.config_file", f.ConfigFile},
		{"falco.rules_dir", f.RulesDir}, {"falco.alerts_token_file", f.AlertsTokenFile}} {
		if k.v == "" {
			bad(k.key, "must be set with engine: falco")
		}
	}
	if f.RulesDir != "" && !filepath.IsAbs(f.RulesDir) {
		bad("falco.rules_dir", "%q is not an absolute path: Falco's rules_files must name the same directory", f.RulesDir)
	}
	if f.MaxAlertSize <= 0 {
		bad("falco.max_alert_size", "must be greater than 0, got %d", f.MaxAlertSize)
	}
	if f.ValidateTimeout <= 0 {
		bad("falco.validate_timeout", "must be greater than 0, got %s", f.ValidateTimeout)
	}
	if c.Observability.Listen == "" {
		// The webhook port is Falco's (its k8saudit plugin serves it): the agent's API needs
		// its own listener.
		bad("observability.listen", "must be set with engine: falco: the webhook port belongs to Falco's k8saudit plugin, so the agent's API needs its own listener, e.g. 127.0.0.1:9766")
	}
}
