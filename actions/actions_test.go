package actions

import (
	"strings"
	"testing"

	"github.com/falco-k8s/falco-k8s/agent/status"
)

func TestServerURL(t *testing.T) {
	for _, tc := range []struct {
		param, scheme, want, err string
	}{
		{"", "http", "", ""},
		{"10.0.0.5", "http", "http://10.0.0.5:9765/k8s-audit", ""},
		{"10.0.0.5:31765", "https", "https://10.0.0.5:31765/k8s-audit", ""},
		{"falco.example.com", "https", "https://falco.example.com:9765/k8s-audit", ""},
		{"fd00::5", "http", "http://[fd00::5]:9765/k8s-audit", ""},
		{"[fd00::5]:9765", "http", "http://[fd00::5]:9765/k8s-audit", ""},
		{"https://lb.example.com:443", "http", "https://lb.example.com:443/k8s-audit", ""},
		{"https://lb.example.com/custom", "http", "https://lb.example.com/custom", ""},
		{"ftp://x", "http", "", "not an http(s) URL"},
		{"10.0.0.5:99999", "http", "", "invalid port"},
		{"user@host", "http", "", "not a host"},
	} {
		got, err := serverURL(tc.param, tc.scheme, 9765)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("serverURL(%q) = %q, %v; want error %q", tc.param, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("serverURL(%q) = %q, %v; want %q", tc.param, got, err, tc.want)
		}
	}
}

func TestTable(t *testing.T) {
	out := table([]status.Rule{{Name: "A rule", Priority: "Warning", Source: "k8s_audit", Enabled: true, Tags: []string{"k8s", "x"},
		File: "k8s_audit_rules.yaml", Ref: "ghcr.io/a/b:1", Digest: "sha256:abc", Condition: "ka.verb=create\n  and x"}}, true)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "NAME") || !strings.Contains(lines[1], "ghcr.io/a/b:1@sha256:abc") ||
		!strings.Contains(lines[1], "k8s,x") || !strings.Contains(lines[1], "ka.verb=create and x") {
		t.Errorf("table:\n%s", out)
	}
}
