// Package engine is falco-k8s's Falco-compatible rules engine: it loads Falco rules files
// (lists, macros, rules, exceptions, append/override, required versions) with Falco 0.44's
// semantics and diagnostics, compiles every rule condition once into an evaluation tree over the
// k8s_audit source's fields, evaluates audit events against the compiled ruleset, and formats
// Falco's text and JSON alerts.
//
// The package is a pure library: it reads only the bytes it is given and does no network I/O.
// Syntax lives in engine/condition, string matchers in engine/match and field extraction in
// engine/k8saudit. Deliberate differences from Falco are marked "Differs from Falco" in comments
// and listed in docs/engine.md.
package engine

// EngineVersion is the Falco engine version whose rules-language semantics this package
// implements (Falco 0.44.x ships engine 0.62.0). Rules files compare their
// required_engine_version against it.
const EngineVersion = "0.62.0"

// Source names.
const (
	SourceK8sAudit = "k8s_audit"
	SourceSyscall  = "syscall"
)

// BuiltinPlugins are the plugin versions whose field semantics the k8s_audit source implements;
// required_plugin_versions blocks are checked against them as Falco checks loaded plugins.
var BuiltinPlugins = map[string]string{
	"k8saudit": "0.18.0",
	"json":     "0.7.4",
}
