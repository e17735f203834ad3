package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestValidateRefusesMacroBomb: `rules validate` on the hostile-day macro bomb (1.6 KB, each
// macro using the previous one twice, 2^40 nodes expanded) fails with the engine's diagnostic
// naming the macro, instead of allocating until the process is killed.
func TestValidateRefusesMacroBomb(t *testing.T) {
	var b strings.Builder
	b.WriteString("- macro: m0\n  condition: ka.verb=get\n")
	for i := 1; i <= 40; i++ {
		fmt.Fprintf(&b, "- macro: m%d\n  condition: (m%d or m%d)\n", i, i-1, i-1)
	}
	b.WriteString("- rule: bomb\n  desc: d\n  condition: m40\n  output: x\n  priority: WARNING\n  source: k8s_audit\n")
	path := filepath.Join(t.TempDir(), "bomb.yaml")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, format := range []string{"text", "json"} {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		stdout, stderr, code := runCLI(t, "", "rules", "validate", "-o", format, "-r", path)
		runtime.ReadMemStats(&after)
		if code != 1 {
			t.Fatalf("%s: exit %d, want 1\n%s\n%s", format, code, stdout, stderr)
		}
		all := stdout + stderr
		for _, want := range []string{"LOAD_ERR_COMPILE_CONDITION", "m12", "more than 5000 nodes"} {
			if !strings.Contains(all, want) {
				t.Errorf("%s: output lacks %q:\n%s", format, want, all)
			}
		}
		if format == "text" && !strings.Contains(all, path+":25:") {
			t.Errorf("text output does not locate macro m12 at %s:25:\n%s", path, all)
		}
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 64<<20 {
			t.Errorf("%s: validating the bomb allocated %d MiB", format, alloc>>20)
		}
	}
}
