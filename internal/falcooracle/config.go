package falcooracle

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Config is a Falco configuration for tests that run the real Falco as the workload (engine:
// falco): the plugins from ../shared/falco/plugins, the k8saudit plugin's webhook, rules_files
// and hot reload, stdout output (Falco's dry run refuses a configuration without an output).
type Config struct {
	// Plugins to load, k8saudit first; nil means k8saudit and json.
	Plugins []string
	// Webhook is the k8saudit plugin's open_params, e.g. http://127.0.0.1:PORT/k8s-audit.
	Webhook string
	// RulesFiles is Falco's rules_files.
	RulesFiles []string
	// Extra is appended as is (more outputs, e.g. program_output).
	Extra string
}

// Binary is the real Falco executable beside the wrapper.
func (o *Oracle) Binary() string { return filepath.Join(filepath.Dir(o.Path), "bin", "falco") }

// WriteConfig writes c as a Falco configuration file at path.
func (o *Oracle) WriteConfig(path string, c Config) error {
	plugins := c.Plugins
	if plugins == nil {
		plugins = []string{"k8saudit", "json"}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "load_plugins: [%s]\nplugins:\n", strings.Join(plugins, ", "))
	for _, p := range plugins {
		fmt.Fprintf(&b, "  - name: %s\n    library_path: %s\n    init_config: \"\"\n", p, filepath.Join(filepath.Dir(o.Path), "plugins", "lib"+p+".so"))
		if p == "k8saudit" && c.Webhook != "" {
			fmt.Fprintf(&b, "    open_params: %q\n", c.Webhook)
		}
	}
	fmt.Fprintf(&b, "rules_files: [%s]\n", strings.Join(c.RulesFiles, ", "))
	b.WriteString(`watch_config_files: true
json_output: true
json_include_output_property: true
json_include_tags_property: true
priority: debug
rule_matching: first
stdout_output: {enabled: true}
syslog_output: {enabled: false}
log_stderr: true
log_syslog: false
log_level: info
`)
	b.WriteString(c.Extra)
	return os.WriteFile(path, []byte(b.String()), 0o644)
}
