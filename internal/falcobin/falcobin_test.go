package falcobin_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/falco-k8s/falco-k8s/internal/falcobin"
	"github.com/falco-k8s/falco-k8s/internal/testshared"
)

func TestParseVersion(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"Falco version: 0.44.1\nLibs version:  0.0.0-local\n", "0.44.1"},
		{"Falco version: 0.44.1 (x86_64)\n", "0.44.1"},
	} {
		got, err := falcobin.ParseVersion([]byte(tc.in))
		if err != nil || got != tc.want {
			t.Errorf("ParseVersion(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	if _, err := falcobin.ParseVersion([]byte("nothing")); err == nil {
		t.Error("no version line: want an error")
	}
}

// TestRealFalco runs the real Falco 0.44.1 (../shared/falco): its version, a valid and an
// invalid set through -V, and --dry-run on a configuration listing a bad file.
func TestRealFalco(t *testing.T) {
	bin := &falcobin.Binary{Path: testshared.Path(t, "falco", "falco")}
	ctx := context.Background()
	v, err := bin.Version(ctx)
	if err != nil || v != "0.44.1" {
		t.Fatalf("Version = %q, %v", v, err)
	}
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("a.yaml", "- macro: m\n  condition: ka.verb=create\n")
	use := write("b.yaml", "- rule: r\n  desc: d\n  condition: m\n  output: o\n  priority: INFO\n  source: k8s_audit\n")
	if _, err := bin.Validate(ctx, dir, []string{good, use}); err != nil {
		t.Fatalf("valid set: %v", err)
	}
	// b.yaml alone uses an undefined macro: Falco refuses it.
	res, err := bin.Validate(ctx, dir, []string{use})
	var re *falcobin.RefusedError
	if !errors.As(err, &re) || len(res) != 1 || res[0].Successful {
		t.Fatalf("invalid set: %v, %+v", err, res)
	}
	if !strings.Contains(err.Error(), "b.yaml") || !strings.Contains(err.Error(), "(LOAD_ERR_VALIDATE)") {
		t.Errorf("message = %q, want the file and Falco's code", err)
	}
}
