// Package rules holds falco-k8s's built-in default ruleset for Kubernetes audit events.
//
// The ruleset (k8s_audit_default.yaml, embedded in the binary) is written in Falco's rules
// language for the k8s_audit source. It detects privileged and host-namespace pods, sensitive
// hostPath mounts, dangerous capabilities, exec/attach/port-forward and ephemeral containers,
// kubelet access through nodes/proxy, anonymous access, risky RBAC (wildcards, exec grants,
// cluster-admin and all-users bindings), token requests and CSR approvals, tampering with
// admission control and events, secret reads, credentials in ConfigMaps, exposed services and
// changes in the kube-* namespaces. Users tune it from a later rules file through its
// user_known_* lists and user_trusted_* / user_known_* macros. The same file loads in Falco
// (>= 0.39) with the k8saudit and json plugins.
package rules

import (
	"bytes"
	_ "embed"
)

// DefaultName is the name the built-in ruleset is loaded under: it appears in diagnostics,
// `rules list` and status output in place of a file path.
const DefaultName = "builtin:k8s_audit_default.yaml"

//go:embed k8s_audit_default.yaml
var defaultRules []byte

// Default returns the content of the built-in ruleset. The slice is a fresh copy: callers may
// keep or modify it.
func Default() []byte { return bytes.Clone(defaultRules) }
