package engine_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/falco-k8s/falco-k8s/engine"
	"github.com/falco-k8s/falco-k8s/internal/falcooracle"
)

// Differential tests against the real Falco 0.44.1 (../shared/falco): the engine's load results
// must equal `falco -V -o json_output=true`'s, field by field, except where docs/engine.md lists
// a deliberate difference (see tolerated below). With CI=true a missing oracle fails the test.

// diffCase is one cumulative load: every file is loaded in order into one loader (and one Falco
// engine), and every file's result is compared.
type diffCase struct {
	name  string
	files []engine.File
}

// engineResults converts the engine's results into Falco's JSON shape.
func engineResults(res []engine.FileResult) []falcooracle.FileResult {
	out := make([]falcooracle.FileResult, len(res))
	for i, r := range res {
		out[i] = falcooracle.FileResult{Name: r.Name, Successful: r.Successful, Errors: oracleDiags(r.Errors), Warnings: oracleDiags(r.Warnings)}
	}
	return out
}

func oracleDiags(ds []engine.Diagnostic) []falcooracle.Diagnostic {
	out := make([]falcooracle.Diagnostic, 0, len(ds))
	for _, d := range ds {
		var o falcooracle.Diagnostic
		o.Code, o.CodeDesc, o.Message = string(d.Code), d.Code.JSONDesc(), d.Message
		o.Context.Snippet = d.Snippet
		o.Context.Locations = append(o.Context.Locations, d.Locations...)
		out = append(out, o)
	}
	return out
}

// ownWarnings keeps the warnings located in the file itself: Falco repeats warnings about
// earlier files in every later file's result, the engine reports each once (docs/engine.md).
func ownWarnings(r falcooracle.FileResult) []falcooracle.Diagnostic {
	var out []falcooracle.Diagnostic
	for _, w := range r.Warnings {
		ls := w.Context.Locations
		if len(ls) > 0 && ls[len(ls)-1].Position.Name != r.Name {
			continue
		}
		out = append(out, w)
	}
	return out
}

// diffResult describes how the engine's result for one file differs from Falco's, or "".
func diffResult(falco, ours falcooracle.FileResult) string {
	var b strings.Builder
	if falco.Successful != ours.Successful {
		fmt.Fprintf(&b, "verdict: falco successful=%v, engine successful=%v\n", falco.Successful, ours.Successful)
	}
	diffDiags(&b, "error", falco.Errors, ours.Errors)
	var mine []falcooracle.Diagnostic
	for _, w := range ownWarnings(ours) {
		if !toleratedWarning(w) {
			mine = append(mine, w)
		}
	}
	diffDiags(&b, "warning", ownWarnings(falco), mine)
	return b.String()
}

// toleratedWarning: the engine's warnings docs/engine.md lists as deliberate differences. Falco
// has the syscall source and the container plugin; falco-k8s skips what needs them, saying so.
func toleratedWarning(d falcooracle.Diagnostic) bool {
	return d.Code == string(engine.WarnUnknownSource) &&
		(d.Message == "Unknown source syscall, skipping" || strings.HasPrefix(d.Message, "Plugin requirement not satisfied, must load one of: container"))
}

func diagKey(d falcooracle.Diagnostic) string { return d.Code + ": " + d.Message }

func diffDiags(b *strings.Builder, kind string, falco, ours []falcooracle.Diagnostic) {
	// Warnings are compared as sets (Falco's order follows its compile passes, which the engine
	// does not promise); errors in order.
	if kind == "warning" {
		sortDiags(falco)
		sortDiags(ours)
	}
	n := max(len(falco), len(ours))
	for i := 0; i < n; i++ {
		switch {
		case i >= len(falco):
			fmt.Fprintf(b, "%s %d: engine only: %s\n", kind, i, fmtDiag(ours[i]))
		case i >= len(ours):
			fmt.Fprintf(b, "%s %d: falco only: %s\n", kind, i, fmtDiag(falco[i]))
		default:
			f, o := falco[i], ours[i]
			if f.Code == string(engine.ErrYAMLParse) && o.Code == f.Code {
				// Deliberate difference (docs/engine.md): a YAML syntax error is reported in
				// yaml.v3's words and at its position, not yaml-cpp's.
				continue
			}
			if f.Code != o.Code || f.Message != o.Message {
				fmt.Fprintf(b, "%s %d:\n  falco:  %s\n  engine: %s\n", kind, i, fmtDiag(f), fmtDiag(o))
				continue
			}
			if f.CodeDesc != o.CodeDesc {
				fmt.Fprintf(b, "%s %d: codedesc falco %q engine %q\n", kind, i, f.CodeDesc, o.CodeDesc)
			}
			if !reflect.DeepEqual(f.Context.Locations, o.Context.Locations) {
				fmt.Fprintf(b, "%s %d (%s): locations\n  falco:  %s\n  engine: %s\n", kind, i, diagKey(f), fmtLocs(f.Context.Locations), fmtLocs(o.Context.Locations))
			} else if f.Context.Snippet != o.Context.Snippet {
				fmt.Fprintf(b, "%s %d (%s): snippet\n  falco:  %q\n  engine: %q\n", kind, i, diagKey(f), f.Context.Snippet, o.Context.Snippet)
			}
		}
	}
}

func sortDiags(ds []falcooracle.Diagnostic) {
	sort.SliceStable(ds, func(i, j int) bool {
		a, b := ds[i], ds[j]
		if a.Code != b.Code {
			return a.Code < b.Code
		}
		if a.Message != b.Message {
			return a.Message < b.Message
		}
		return fmtLocs(a.Context.Locations) < fmtLocs(b.Context.Locations)
	})
}

func fmtDiag(d falcooracle.Diagnostic) string {
	return fmt.Sprintf("%s %q at %s", d.Code, d.Message, fmtLocs(d.Context.Locations))
}

func fmtLocs(ls []falcooracle.Location) string {
	parts := make([]string, len(ls))
	for i, l := range ls {
		parts[i] = fmt.Sprintf("%s %q (%s:%d:%d@%d)", l.ItemType, l.ItemName, l.Position.Name, l.Position.Line, l.Position.Column, l.Position.Offset)
	}
	return strings.Join(parts, " > ")
}

// runDiffCases loads each case into the engine and into Falco (all cases' files in as few Falco
// runs as the batching allows) and returns the differences, keyed by case name.
func runDiffCases(t *testing.T, o *falcooracle.Oracle, cases []diffCase) map[string]string {
	t.Helper()
	dir := t.TempDir()
	diffs := map[string]string{}
	for ci, c := range cases {
		var names []string
		for fi, f := range c.files {
			// The name Falco sees is the name the engine reports: write each file under it.
			sub := filepath.Join(dir, fmt.Sprintf("c%d", ci))
			if err := os.MkdirAll(filepath.Join(sub, filepath.Dir(f.Name)), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(sub, f.Name), f.Content, 0o644); err != nil {
				t.Fatal(err)
			}
			_ = fi
			names = append(names, f.Name)
		}
		falco, err := o.Validate(context.Background(), filepath.Join(dir, fmt.Sprintf("c%d", ci)), names)
		_, res, _ := engine.Load(c.files, engine.DefaultOptions())
		ours := engineResults(res)
		var fatal *falcooracle.FatalError
		if errors.As(err, &fatal) {
			// Falco ends the run without load results; the engine must fail the same file
			// set with that message as an error (docs/engine.md).
			if d := diffFatal(fatal, ours); d != "" {
				diffs[c.name] = d
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		var b strings.Builder
		for i := range falco {
			if d := diffResult(falco[i], ours[i]); d != "" {
				fmt.Fprintf(&b, "file %s:\n%s", c.files[i].Name, d)
			}
		}
		if b.Len() > 0 {
			diffs[c.name] = b.String()
		}
	}
	return diffs
}

func diffFatal(fatal *falcooracle.FatalError, ours []falcooracle.FileResult) string {
	for _, r := range ours {
		for _, e := range r.Errors {
			if e.Message == fatal.Message {
				return ""
			}
		}
		// Deliberate difference (docs/engine.md): a plugin falco-k8s does not implement is a
		// warning, and its rules are skipped.
		for _, w := range r.Warnings {
			if w.Code == string(engine.WarnUnknownSource) && strings.HasPrefix(w.Message, fatal.Message+"; falco-k8s implements only") {
				return ""
			}
		}
	}
	return fmt.Sprintf("falco refused the files (%q); the engine has no error with that message: %+v\n", fatal.Message, ours)
}

func TestFalcoDiffLoaderCorpus(t *testing.T) {
	t.Parallel() // each test waits on its own Falco process: let them overlap
	o := falcooracle.Require(t)
	dir := filepath.Join("testdata", "loader")
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	pre := map[string][]string{}
	for _, lc := range loaderCases {
		pre[lc.file] = lc.pre
	}
	var cases []diffCase
	for _, e := range entries {
		var files []engine.File
		for _, p := range append(append([]string{}, pre[e.Name()]...), e.Name()) {
			b, err := os.ReadFile(filepath.Join(dir, p))
			if err != nil {
				t.Fatal(err)
			}
			files = append(files, engine.File{Name: p, Content: b})
		}
		cases = append(cases, diffCase{name: "loader/" + e.Name(), files: files})
	}
	up := filepath.Join("..", "..", "shared", "testdata", "upstream")
	for _, name := range []string{"k8s_audit_rules.latest.yaml", "falco_rules.latest.yaml"} {
		b, err := os.ReadFile(filepath.Join(up, name))
		if err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("upstream rules: %v", err)
			}
			t.Skipf("upstream rules: %v", err)
		}
		cases = append(cases, diffCase{name: "upstream/" + name, files: []engine.File{{Name: name, Content: b}}})
	}
	diffs := runDiffCases(t, o, cases)
	names := make([]string, 0, len(diffs))
	for n := range diffs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		t.Errorf("%s differs from Falco:\n%s", n, diffs[n])
	}
	t.Logf("%d cases, %d differ", len(cases), len(diffs))
}

// genCase is one generated document.
type genCase struct {
	name    string
	content []byte
	items   []genItem
	solo    bool
}

// diffBatch loads the cases into one Falco run and one engine loader, each document followed by
// its cleanup file, and compares every file's result. Cases after a cleanup that Falco did not
// accept cannot be judged in this run and are returned for the next.
func diffBatch(t *testing.T, o *falcooracle.Oracle, dir string, cases []genCase, diffs map[string]string, falcoFailures *int) (judged int, again []genCase) {
	t.Helper()
	var files []engine.File
	var names []string
	for _, c := range cases {
		files = append(files, engine.File{Name: c.name + ".yaml", Content: c.content}, engine.File{Name: c.name + ".cleanup.yaml", Content: cleanupDoc(c.items)})
	}
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(dir, f.Name), f.Content, 0o644); err != nil {
			t.Fatal(err)
		}
		names = append(names, f.Name)
	}
	falco, err := o.Validate(context.Background(), dir, names)
	_, res, _ := engine.Load(files, engine.DefaultOptions())
	ours := engineResults(res)
	var fatal *falcooracle.FatalError
	if errors.As(err, &fatal) && len(cases) == 1 && strings.HasPrefix(fatal.Message, "Plugin 'container' version") {
		// Falco has the container plugin (0.7.1); falco-k8s does not and warns instead
		// (docs/engine.md).
		return 1, nil
	}
	if errors.As(err, &fatal) && len(cases) == 1 {
		if d := diffFatal(fatal, ours); d != "" {
			diffs[cases[0].name] = d + "\n" + string(cases[0].content)
		}
		return 1, nil
	}
	if err != nil && !errors.As(err, &fatal) && len(cases) == 1 {
		// Falco itself fails on this document (it crashes, or its JSON writer throws on a
		// snippet cut inside a UTF-8 sequence): nothing to compare against.
		t.Logf("falco fails on %s: %v\n%s", cases[0].name, err, cases[0].content)
		*falcoFailures++
		return 0, nil
	}
	if err != nil {
		// Split and retry: the batch held a document whose plugin requirement fails, or one
		// that crashes Falco.
		h := len(cases) / 2
		j1, a1 := diffBatch(t, o, dir, cases[:h], diffs, falcoFailures)
		j2, a2 := diffBatch(t, o, dir, cases[h:], diffs, falcoFailures)
		return j1 + j2, append(a1, a2...)
	}
	for i, c := range cases {
		doc, clean := 2*i, 2*i+1
		var b strings.Builder
		for _, k := range []int{doc, clean} {
			if d := diffResult(falco[k], ours[k]); d != "" {
				fmt.Fprintf(&b, "file %s:\n%s", files[k].Name, d)
			}
		}
		judged++
		if b.Len() > 0 {
			diffs[c.name] = b.String() + "--- document:\n" + string(c.content)
		}
		if !falco[clean].Successful {
			return judged, cases[i+1:]
		}
	}
	return judged, nil
}

// TestFalcoDiffLoaderGenerated judges seeded generated rules documents with both loaders.
// FALCO_DIFF_DOCS and FALCO_DIFF_SEED change the count and seed.
func TestFalcoDiffLoaderGenerated(t *testing.T) {
	t.Parallel() // each test waits on its own Falco process: let them overlap
	o := falcooracle.Require(t)
	n, seed := envInt("FALCO_DIFF_DOCS", 2000), uint64(envInt("FALCO_DIFF_SEED", 15))
	if testing.Short() {
		n = 200
	}
	var queue, solos []genCase
	for i := range n {
		g := newDocGen(seed*1_000_003+uint64(i), fmt.Sprintf("g%d_", i))
		c := genCase{name: fmt.Sprintf("g%05d", i), content: g.document(), items: g.items, solo: g.solo}
		if c.solo {
			solos = append(solos, c)
		} else {
			queue = append(queue, c)
		}
	}
	dir := t.TempDir()
	diffs := map[string]string{}
	judged, runs, failures := 0, 0, 0
	// Falco recompiles everything loaded so far on every file: small batches keep that cheap.
	const batch = 40
	for len(queue) > 0 {
		k := min(batch, len(queue))
		j, again := diffBatch(t, o, dir, queue[:k], diffs, &failures)
		judged += j
		runs++
		queue = append(again, queue[k:]...)
	}
	for _, c := range solos {
		j, _ := diffBatch(t, o, dir, []genCase{c}, diffs, &failures)
		judged += j
		runs++
	}
	t.Logf("%d generated documents judged by both loaders in %d Falco runs (%d Falco could not judge); %d differ", judged, runs, failures, len(diffs))
	if out := os.Getenv("FALCO_DIFF_OUT"); out != "" {
		names := make([]string, 0, len(diffs))
		for n := range diffs {
			names = append(names, n)
		}
		sort.Strings(names)
		var b strings.Builder
		for _, n := range names {
			fmt.Fprintf(&b, "=== %s\n%s\n", n, diffs[n])
		}
		if err := os.WriteFile(out, []byte(b.String()), 0o644); err != nil {
			t.Error(err)
		}
	}
	// Ratchet: the differences still open (docs/engine.md, "Known open differences") may only
	// shrink. FALCO_DIFF_STRICT=1 fails on every one; FALCO_DIFF_OUT=FILE writes them all.
	if os.Getenv("FALCO_DIFF_STRICT") == "1" || n == 2000 && seed == 15 && len(diffs) > knownOpenGeneratedDiffs {
		reportDiffs(t, diffs)
	} else if len(diffs) > 0 {
		t.Logf("%d documents still differ in known, open ways (at most %d allowed for the default corpus); set FALCO_DIFF_STRICT=1 to see them", len(diffs), knownOpenGeneratedDiffs)
	}
}

// knownOpenGeneratedDiffs is how many of the 2,000 default generated documents (seed 15) still
// differ from Falco in the open classes docs/engine.md lists.
const knownOpenGeneratedDiffs = 18

func reportDiffs(t *testing.T, diffs map[string]string) {
	t.Helper()
	names := make([]string, 0, len(diffs))
	for n := range diffs {
		names = append(names, n)
	}
	sort.Strings(names)
	for i, n := range names {
		if i == 40 {
			t.Errorf("... and %d more", len(names)-i)
			break
		}
		t.Errorf("%s differs from Falco:\n%s", n, diffs[n])
	}
}

func envInt(name string, def int) int {
	if v := os.Getenv(name); v != "" {
		if n, err := strconv.Atoi(v); err == nil {
			return n
		}
	}
	return def
}
