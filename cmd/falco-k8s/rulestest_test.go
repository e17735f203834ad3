package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRulesTest runs artifact-style test cases with Falco's own rules and regression traces.
func TestRulesTest(t *testing.T) {
	shared := sharedDir(t)
	rules := filepath.Join(shared, "testdata", "upstream", "k8s_audit_rules.latest.yaml")
	traces := filepath.Join(shared, "testdata", "falco-k8s-audit", "traces")
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "tests", "events"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"create_nginx_pod_privileged.json", "create_nginx_pod_unprivileged.json"} {
		b, err := os.ReadFile(filepath.Join(traces, n))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "tests", "events", n), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write := func(cases string) {
		if err := os.WriteFile(filepath.Join(dir, "tests", "cases.yaml"), []byte(cases), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(`- name: privileged
  events: tests/events/create_nginx_pod_privileged.json
  fire: [Create Privileged Pod]
- name: unprivileged
  events: tests/events/create_nginx_pod_unprivileged.json
  no_fire: [Create Privileged Pod]
`)
	cases := []struct {
		name, cases string
		args        []string
		code        int
		out, err    string
	}{
		{name: "pass", args: []string{"-r", rules, "--dir", dir}, out: "PASS privileged (tests/cases.yaml)\nPASS unprivileged (tests/cases.yaml)\n", err: "2 test cases passed"},
		{name: "json", args: []string{"-r", rules, "--dir", dir, "-o", "json"}, out: `"passed": true`},
		{name: "fail", cases: "- name: wrong\n  events: tests/events/create_nginx_pod_unprivileged.json\n  fire: [Create Privileged Pod]\n",
			args: []string{"-r", rules, "--dir", dir}, code: 1,
			out: `FAIL wrong (tests/cases.yaml): rule "Create Privileged Pod" did not fire on any of the 1 events`, err: "1 of 1 test cases failed"},
		{name: "no rules", args: []string{"--dir", dir}, code: 2, err: "no rules files"},
		{name: "no cases", args: []string{"-r", rules, "--dir", t.TempDir()}, code: 1, err: "no test cases in"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.cases != "" {
				write(c.cases)
			}
			out, errOut, code := runCLI(t, "", append([]string{"rules", "test"}, c.args...)...)
			if code != c.code || !strings.Contains(out, c.out) || !strings.Contains(errOut, c.err) {
				t.Fatalf("code %d out %q err %q", code, out, errOut)
			}
		})
	}
}
