package config

import (
	"fmt"
	"path"
	"strings"
	"time"

	"github.com/falco-k8s/falco-k8s/engine"
)

// Admission configures the validating admission webhook (agent/admission): which rules block or
// warn when kube-apiserver asks before doing something.
type Admission struct {
	// Mode is off, warn or deny.
	Mode string `yaml:"mode"`
	// Path is served on the webhook listener, next to webhook.path.
	Path    string           `yaml:"path"`
	Enforce AdmissionEnforce `yaml:"enforce"`
	// FailurePolicy (Ignore or Fail) answers requests that cannot be evaluated.
	FailurePolicy string   `yaml:"failure_policy"`
	MaxBodySize   ByteSize `yaml:"max_body_size"`
	MaxInflight   int      `yaml:"max_inflight"`
	// Wait is how long a review waits for an evaluation slot before 429.
	Wait time.Duration `yaml:"wait"`
}

// AdmissionEnforce selects the enforcing rules: by name, by tag, or at least a priority.
type AdmissionEnforce struct {
	Rules       []string `yaml:"rules"`
	Tags        []string `yaml:"tags"`
	MinPriority string   `yaml:"min_priority"`
}

// validateAdmission adds the admission section's problems through bad.
func (c *Config) validateAdmission(bad func(key, format string, args ...any)) {
	a := &c.Admission
	switch strings.ToLower(a.Mode) {
	case "off", "warn", "deny":
	default:
		bad("admission.mode", "invalid value %q: use off, warn or deny", a.Mode)
	}
	if !strings.HasPrefix(a.Path, "/") || path.Clean(a.Path) != a.Path {
		bad("admission.path", "invalid path %q: want a clean absolute URL path such as /k8s-admission", a.Path)
	}
	taken := []string{c.Webhook.Path}
	if c.Observability.Listen == "" {
		taken = append(taken, "/healthz", "/readyz", "/metrics", "/status", "/alerts", "/rules", "/reload", "/sync")
	}
	for _, p := range taken {
		if a.Path == p {
			bad("admission.path", "%s is taken by another endpoint on the same listener", p)
		}
	}
	switch strings.ToLower(a.FailurePolicy) {
	case "ignore", "fail":
	default:
		bad("admission.failure_policy", "invalid value %q: use Ignore or Fail", a.FailurePolicy)
	}
	if a.MaxBodySize <= 0 {
		bad("admission.max_body_size", "must be greater than 0, got %d", a.MaxBodySize)
	}
	if a.MaxInflight <= 0 {
		bad("admission.max_inflight", "must be greater than 0, got %d", a.MaxInflight)
	}
	if a.Wait < 0 || a.Wait > 5*time.Second {
		bad("admission.wait", "must be between 0 and 5s (well inside the webhook's timeoutSeconds), got %s", a.Wait)
	}
	e := a.Enforce
	if e.MinPriority != "" {
		if _, err := engine.ParsePriority(e.MinPriority); err != nil {
			bad("admission.enforce.min_priority", "%v, or empty", err)
		}
	}
	for i, r := range e.Rules {
		if strings.TrimSpace(r) == "" {
			bad(fmt.Sprintf("admission.enforce.rules[%d]", i), "empty rule name")
		}
	}
	for i, t := range e.Tags {
		if strings.TrimSpace(t) == "" {
			bad(fmt.Sprintf("admission.enforce.tags[%d]", i), "empty tag")
		}
	}
	if m := strings.ToLower(a.Mode); (m == "warn" || m == "deny") && len(e.Rules) == 0 && len(e.Tags) == 0 && e.MinPriority == "" {
		bad("admission.enforce", "admission.mode is %s but no rule is selected: set rules, tags or min_priority", m)
	}
}
