package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/falco-k8s/falco-k8s/internal/testshared"
)

// sharedDir is ../shared beside the checkout; tests that need it skip when it is absent, and
// fail in CI (internal/testshared).
func sharedDir(t testing.TB) string {
	t.Helper()
	testshared.Path(t, "testdata")
	return testshared.Root()
}

// runCLI runs the root command in-process and returns stdout, stderr and the exit status.
func runCLI(t testing.TB, stdin string, args ...string) (string, string, int) {
	t.Helper()
	root := newRootCmd()
	var out, errb bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errb)
	root.SetIn(strings.NewReader(stdin))
	root.SetArgs(args)
	code := 0
	if err := root.Execute(); err != nil {
		var ee *exitError
		if errors.As(err, &ee) {
			code = ee.code
		} else {
			code = 1
		}
		errb.WriteString("Error: " + err.Error() + "\n")
	}
	return out.String(), errb.String(), code
}

type falcoCase struct {
	Name         string         `json:"name"`
	Rules        []string       `json:"rules"`
	RulesModern  []string       `json:"rules_modern"`
	Trace        string         `json:"trace"`
	Detect       bool           `json:"detect"`
	DetectLevel  *string        `json:"detect_level"`
	DetectCounts map[string]int `json:"detect_counts"`
	Expect       struct {
		ExitStatus     int      `json:"exit_status"`
		StderrContains []string `json:"stderr_contains"`
	} `json:"expect"`
}

// shortPriority maps Falco's JSON priority to the regression suite's spelling.
func shortPriority(p string) string {
	if p == "Informational" {
		return "INFO"
	}
	return strings.ToUpper(p)
}

// TestFalcoK8sAuditRegressionCases runs Falco's own k8s-audit regression suite through replay.
func TestFalcoK8sAuditRegressionCases(t *testing.T) {
	base := filepath.Join(sharedDir(t), "testdata", "falco-k8s-audit")
	raw, err := os.ReadFile(filepath.Join(base, "cases.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cases []falcoCase
	if err := json.Unmarshal(raw, &cases); err != nil {
		t.Fatal(err)
	}
	if len(cases) < 30 {
		t.Fatalf("expected the full suite, got %d cases", len(cases))
	}
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			rules := c.Rules
			if len(c.RulesModern) > 0 {
				rules = c.RulesModern // we implement Falco >= 0.38 semantics
			}
			var args []string
			args = append(args, "replay", "--json")
			for _, r := range rules {
				args = append(args, "-r", filepath.Join(base, r))
			}
			args = append(args, filepath.Join(base, c.Trace))
			stdout, stderr, code := runCLI(t, "", args...)
			if code != c.Expect.ExitStatus {
				t.Fatalf("exit %d, want %d\nstderr:\n%s", code, c.Expect.ExitStatus, stderr)
			}
			for _, s := range c.Expect.StderrContains {
				if !strings.Contains(stderr, s) {
					t.Errorf("stderr lacks %q:\n%s", s, stderr)
				}
			}
			counts := map[string]int{}
			levels := map[string]bool{}
			total := 0
			for _, line := range strings.Split(strings.TrimSpace(stdout), "\n") {
				if line == "" {
					continue
				}
				var a struct {
					Rule     string `json:"rule"`
					Priority string `json:"priority"`
				}
				if err := json.Unmarshal([]byte(line), &a); err != nil {
					t.Fatalf("alert is not JSON: %v: %s", err, line)
				}
				counts[a.Rule]++
				levels[shortPriority(a.Priority)] = true
				total++
			}
			if !c.Detect {
				if total != 0 {
					t.Fatalf("want no alerts, got %d: %v", total, counts)
				}
				return
			}
			if total == 0 {
				t.Fatalf("want alerts, got none; stderr:\n%s", stderr)
			}
			if c.DetectLevel != nil && !levels[*c.DetectLevel] {
				t.Errorf("no alert at priority %s; got %v", *c.DetectLevel, levels)
			}
			for rule, n := range c.DetectCounts {
				if counts[rule] != n {
					t.Errorf("rule %q fired %d times, want %d (all: %v)", rule, counts[rule], n, counts)
				}
			}
		})
	}
}

func TestValidateUpstreamRules(t *testing.T) {
	up := filepath.Join(sharedDir(t), "testdata", "upstream")
	for _, tc := range []struct {
		files    []string
		wantWarn bool
	}{
		{[]string{"k8s_audit_rules.latest.yaml"}, false},
		{[]string{"falco_rules.latest.yaml"}, true}, // syscall rules: skipped with unknown-source warnings
		{[]string{"falco_rules.latest.yaml", "k8s_audit_rules.latest.yaml"}, true},
	} {
		var args []string
		args = append(args, "rules", "validate")
		for _, f := range tc.files {
			args = append(args, "-r", filepath.Join(up, f))
		}
		stdout, stderr, code := runCLI(t, "", args...)
		if code != 0 {
			t.Fatalf("%v: exit %d\n%s\n%s", tc.files, code, stdout, stderr)
		}
		for _, f := range tc.files {
			if !strings.Contains(stdout, filepath.Join(up, f)+": Ok") {
				t.Errorf("%s not Ok:\n%s", f, stdout)
			}
		}
		if tc.wantWarn != strings.Contains(stderr, "LOAD_UNKNOWN_SOURCE") {
			t.Errorf("%v: unknown-source warnings present=%v, want %v\n%s", tc.files, !tc.wantWarn, tc.wantWarn, stderr)
		}
		if !tc.wantWarn && strings.Contains(stdout, "with warnings") {
			t.Errorf("%v: want no warnings at all:\n%s\n%s", tc.files, stdout, stderr)
		}
	}
}
