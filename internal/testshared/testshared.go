// Package testshared locates ../shared, the read-only reference tree beside the checkout
// (Falco's binary and plugins, the spec, upstream rules, audit traces), for tests. It owns the
// one rule for a missing reference: a developer machine without it skips the test with a
// notice, while CI (CI=true) fails it, so a test that needs the reference can never silently
// not run where it matters.
package testshared

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// Root is the shared folder's absolute path: ../shared beside the module root (found from this
// file, so it is the same for every package whatever its depth). It is not checked.
func Root() string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return filepath.Join("..", "shared")
	}
	// file is <module>/internal/testshared/testshared.go.
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", "..", "..", "shared"))
}

// InCI reports whether the tests run in CI, where a missing reference is a failure.
func InCI() bool { return os.Getenv("CI") == "true" }

// Path returns the absolute path of elem under the shared folder, which must exist: when it
// does not, the test is skipped (failed with CI=true).
func Path(tb testing.TB, elem ...string) string {
	tb.Helper()
	p := filepath.Join(append([]string{Root()}, elem...)...)
	if _, err := os.Stat(p); err != nil {
		Missing(tb, "%s not present (%v)", p, err)
	}
	return p
}

// Optional returns the path of elem under the shared folder and whether it exists, for a test
// that still has something to check without it (or a benchmark falling back to other input).
// With CI=true a missing path fails the test: CI must run the full version.
func Optional(tb testing.TB, elem ...string) (string, bool) {
	tb.Helper()
	p := filepath.Join(append([]string{Root()}, elem...)...)
	if _, err := os.Stat(p); err != nil {
		if InCI() {
			tb.Fatalf("%s not present (%v); CI needs ../shared beside the checkout", p, err)
		}
		return p, false
	}
	return p, true
}

// ReadFile returns the content of elem under the shared folder, skipping (failing in CI) when it
// is missing.
func ReadFile(tb testing.TB, elem ...string) []byte {
	tb.Helper()
	b, err := os.ReadFile(Path(tb, elem...))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// Missing skips the test with the formatted reason, or fails it when CI=true.
func Missing(tb testing.TB, format string, args ...any) {
	tb.Helper()
	if InCI() {
		tb.Fatalf("CI=true and a required reference is missing: "+format, args...)
		return
	}
	tb.Skipf(format, args...)
}
