package config

import (
	"strings"
	"testing"
)

func TestAdmissionValidate(t *testing.T) {
	for _, tc := range []struct {
		name      string
		overrides []string
		want      string // "" = valid
	}{
		{"default is off", nil, ""},
		{"deny with a rule", []string{"admission.mode=deny", "admission.enforce.rules=[Privileged Container Started in Pod]"}, ""},
		{"warn by tag", []string{"admission.mode=warn", "admission.enforce.tags=[k8s]"}, ""},
		{"deny by priority, Fail", []string{"admission.mode=deny", "admission.enforce.min_priority=critical", "admission.failure_policy=Fail"}, ""},
		{"bad mode", []string{"admission.mode=block"}, `config key admission.mode: invalid value "block": use off, warn or deny`},
		{"nothing selected", []string{"admission.mode=deny"}, "config key admission.enforce: admission.mode is deny but no rule is selected"},
		{"bad priority", []string{"admission.enforce.min_priority=severe"}, `config key admission.enforce.min_priority: invalid priority "severe"`},
		{"bad policy", []string{"admission.failure_policy=Allow"}, `config key admission.failure_policy: invalid value "Allow"`},
		{"path clash with the audit webhook", []string{"admission.path=/k8s-audit"}, "config key admission.path: /k8s-audit is taken"},
		{"path clash with observability", []string{"admission.path=/metrics"}, "config key admission.path: /metrics is taken"},
		{"relative path", []string{"admission.path=k8s-admission"}, "config key admission.path: invalid path"},
		{"no inflight", []string{"admission.max_inflight=0"}, "config key admission.max_inflight: must be greater than 0"},
		{"empty rule name", []string{"admission.enforce.rules=['']"}, "config key admission.enforce.rules[0]: empty rule name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse(nil, tc.overrides)
			if err != nil {
				t.Fatal(err)
			}
			err = c.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
}
