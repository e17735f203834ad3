package k8saudit

import (
	"path/filepath"
	"testing"

	"github.com/falco-k8s/falco-k8s/internal/testshared"
)

const missingValue = "<missing>"

func mustEvent(t testing.TB, doc string) *Event {
	t.Helper()
	ev, err := NewEvent([]byte(doc))
	if err != nil {
		t.Fatalf("NewEvent: %v\n%s", err, doc)
	}
	return ev
}

// field is "name" or "name[arg]"; the arg is everything between the first '[' and the final ']'.
func splitField(field string) (name, arg string, hasArg bool) {
	for i := 0; i < len(field); i++ {
		if field[i] == '[' && field[len(field)-1] == ']' {
			return field[:i], field[i+1 : len(field)-1], true
		}
	}
	return field, "", false
}

// extract compiles field and runs it on ev, returning the values as strings, or nil and false.
func extract(t testing.TB, ev *Event, field string) ([]string, bool) {
	t.Helper()
	name, arg, hasArg := splitField(field)
	x, err := Compile(name, arg, hasArg)
	if err != nil {
		t.Fatalf("Compile(%s): %v", field, err)
	}
	prefix := [][]byte{[]byte("sentinel")}
	out, ok := x(ev, prefix)
	if string(out[0]) != "sentinel" {
		t.Fatalf("%s: extractor clobbered dst", field)
	}
	if !ok {
		if len(out) != 1 {
			t.Fatalf("%s: missing but dst grew to %d", field, len(out))
		}
		return nil, false
	}
	f, _ := LookupField(name)
	if !f.List && len(out) != 2 {
		t.Fatalf("%s: non-list field appended %d values", field, len(out)-1)
	}
	vals := make([]string, 0, len(out)-1)
	for _, v := range out[1:] {
		vals = append(vals, string(v))
	}
	return vals, true
}

func traceFiles(t testing.TB) []string {
	t.Helper()
	// Shared test data lives outside the repository (internal/testshared: skipped when
	// absent on a developer machine, a failure in CI).
	tracesDir := testshared.Path(t, "testdata", "falco-k8s-audit", "traces")
	files, _ := filepath.Glob(filepath.Join(tracesDir, "*.json"))
	if len(files) == 0 {
		testshared.Missing(t, "no traces under %s", tracesDir)
	}
	return files
}

func readBatches(t testing.TB) []byte {
	t.Helper()
	return testshared.ReadFile(t, "testdata", "apiserver-1.31", "audit-batches.jsonl")
}

// defaultArg gives every field a valid argument form for exhaustive runs.
func compileAll(t testing.TB) map[string]Extractor {
	t.Helper()
	out := map[string]Extractor{}
	for _, f := range Fields() {
		var arg string
		hasArg := f.Arg == ArgKey || f.Arg == ArgIndexRequired
		switch f.Arg {
		case ArgKey:
			arg = "/requestObject/spec"
			if f.Name == "ka.uri.param" {
				arg = "fieldManager"
			}
		case ArgIndexRequired:
			arg = "0"
		}
		x, err := Compile(f.Name, arg, hasArg)
		if err != nil {
			t.Fatalf("Compile(%s): %v", f.Name, err)
		}
		out[f.Name] = x
		if f.Arg == ArgIndex {
			x, err := Compile(f.Name, "0", true)
			if err != nil {
				t.Fatalf("Compile(%s[0]): %v", f.Name, err)
			}
			out[f.Name+"[0]"] = x
		}
	}
	return out
}
