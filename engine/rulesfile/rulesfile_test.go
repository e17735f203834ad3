package rulesfile

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/falco-k8s/falco-k8s/engine"
)

func TestExpand(t *testing.T) {
	dir := t.TempDir()
	write := func(rel, content string) string {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	b := write("d/b.yaml", "- list: b\n  items: []\n")
	a := write("d/a.yml", "- list: a\n  items: []\n")
	write("d/notes.txt", "not rules")
	write("d/sub/deep.yaml", "- list: deep\n  items: []\n")
	txt := write("x.rules", "- list: x\n  items: []\n")
	one := write("one.yaml", "- list: one\n  items: []\n")
	missing := filepath.Join(dir, "missing.yaml")
	for _, tc := range []struct {
		name       string
		in         []string
		files, ign []string
	}{
		{name: "directory: its yaml files sorted, not recursive", in: []string{filepath.Join(dir, "d")}, files: []string{a, b}},
		{name: "explicit non-yaml file ignored", in: []string{txt, one}, files: []string{one}, ign: []string{txt}},
		{name: "missing file kept for the reader to report", in: []string{missing, one}, files: []string{missing, one}},
		{name: "order of the arguments kept", in: []string{one, filepath.Join(dir, "d")}, files: []string{one, a, b}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			files, ign, err := Expand(tc.in)
			if err != nil || !slices.Equal(files, tc.files) || !slices.Equal(ign, tc.ign) {
				t.Fatalf("Expand = %q, %q, %v; want %q, %q", files, ign, err, tc.files, tc.ign)
			}
		})
	}
	// The CLI's load reports a missing file as Falco's LOAD_ERR_FILE_READ; the agent's read fails.
	_, results, _, err := Load([]string{one, missing}, engine.DefaultOptions())
	var le *engine.LoadError
	if !errors.As(err, &le) || len(results) == 0 || results[0].Name != missing || results[0].Errors[0].Code != engine.ErrFileRead {
		t.Fatalf("Load of a missing file: %v %+v", err, results)
	}
	if _, _, err := ReadFiles([]string{one, missing}); err == nil || !strings.Contains(err.Error(), missing) {
		t.Fatalf("ReadFiles of a missing file: %v", err)
	}
	got, ign, err := ReadFiles([]string{filepath.Join(dir, "d"), txt})
	if err != nil || len(got) != 2 || got[0].Name != a || !slices.Equal(ign, []string{txt}) {
		t.Fatalf("ReadFiles = %v %q %v", got, ign, err)
	}
}

// The one load order: built-in, followed, local, tuning, whatever order the layers were filled.
func TestLayersOrdered(t *testing.T) {
	l := Layers[string]{Tuning: []string{"tuning.yaml"}, Local: []string{"a.yaml", "b.yaml"}, Builtin: []string{"builtin"}, Followed: []string{"oci.yaml"}}
	if got, want := l.Ordered(), []string{"builtin", "oci.yaml", "a.yaml", "b.yaml", "tuning.yaml"}; !slices.Equal(got, want) {
		t.Fatalf("Ordered() = %q, want %q", got, want)
	}
}
