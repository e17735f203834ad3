package admission

import (
	"fmt"
	"slices"
	"strings"

	"github.com/falco-k8s/falco-k8s/engine"
)

// Mode is what a match of an enforced rule does to the request.
type Mode string

// Modes.
const (
	// ModeOff allows every request without evaluating it (the default).
	ModeOff Mode = "off"
	// ModeWarn allows the request and returns each enforced rule's output as a warning.
	ModeWarn Mode = "warn"
	// ModeDeny refuses the request with the rules' names and outputs in the status message.
	ModeDeny Mode = "deny"
)

// ParseMode parses off, warn or deny.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(strings.ToLower(strings.TrimSpace(s))); m {
	case ModeOff, ModeWarn, ModeDeny:
		return m, nil
	}
	return "", fmt.Errorf("invalid admission mode %q: use off, warn or deny", s)
}

// FailurePolicy says how a request that cannot be evaluated is answered, as the webhook
// configuration's failurePolicy does for requests that never get an answer.
type FailurePolicy string

// Failure policies (spelled as in ValidatingWebhookConfiguration).
const (
	Ignore FailurePolicy = "Ignore"
	Fail   FailurePolicy = "Fail"
)

// ParseFailurePolicy parses Ignore or Fail (case-insensitive).
func ParseFailurePolicy(s string) (FailurePolicy, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "ignore":
		return Ignore, nil
	case "fail":
		return Fail, nil
	}
	return "", fmt.Errorf("invalid failure policy %q: use Ignore or Fail", s)
}

// Selector chooses the rules that enforce: a rule is selected when its name is in Rules, or it
// has one of Tags, or MinPriority is set and the rule is at least that severe. Every other rule
// only alerts (from the audit log).
type Selector struct {
	Rules       []string
	Tags        []string
	MinPriority string // empty: no selection by priority
}

// Empty reports whether the selector selects nothing.
func (s Selector) Empty() bool {
	return len(s.Rules) == 0 && len(s.Tags) == 0 && s.MinPriority == ""
}

// Validate checks the minimum priority.
func (s Selector) Validate() error {
	if s.MinPriority != "" {
		if _, err := engine.ParsePriority(s.MinPriority); err != nil {
			return fmt.Errorf("admission selector: %w", err)
		}
	}
	return nil
}

// Selects reports whether r enforces.
func (s Selector) Selects(r *engine.Rule) bool {
	if slices.Contains(s.Rules, r.Name) {
		return true
	}
	for _, t := range s.Tags {
		if slices.Contains(r.Tags, t) {
			return true
		}
	}
	if s.MinPriority != "" {
		p, _ := engine.ParsePriority(s.MinPriority)
		return r.Priority <= p // lower is more severe
	}
	return false
}

// NotDecidable lists the built-in and upstream k8s_audit rules (falcosecurity/plugins k8saudit
// rules) whose
// verdict depends on something that does not exist when the request is admitted, with the
// reason. They never block or warn, even when selected; they keep alerting from the audit log.
var NotDecidable = map[string]string{
	// The built-in ruleset (rules/k8s_audit_default.yaml).
	"Secret Read by User":                            "reads (get, list, watch) are never sent to admission webhooks",
	"Secrets Listed Cluster-Wide by Service Account": "reads (list) are never sent to admission webhooks",
	// falcosecurity/plugins k8s_audit_rules.yaml.
	"K8s Secret Get Successfully":                             "reads (get) are never sent to admission webhooks",
	"K8s Secret Get Unsuccessfully Tried":                     "reads are never sent to admission webhooks, and it needs a failed response",
	"Untrusted Node Unsuccessfully Tried to Join the Cluster": "it needs a failed response; admission evaluates the request as if it succeeded",
}
