package main

import (
	"bytes"
	"errors"
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
