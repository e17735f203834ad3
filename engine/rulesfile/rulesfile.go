// Package rulesfile is the file-system side of the engine (which itself reads no files): Falco's
// rules_files path expansion, shared by the CLI and the agent so they agree on directories,
// non-YAML files and missing files; the cumulative load of those files with unreadable ones
// reported as Falco's LOAD_ERR_FILE_READ; and the two renderings of load results `falco -V`
// prints (text, and the json_output document).
package rulesfile

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/falco-k8s/falco-k8s/engine"
)

// Expand applies Falco's rules_files rules to paths, in order: a directory expands
// non-recursively to its regular *.yaml/*.yml files sorted by path; an explicit file with
// another extension is left out and listed in ignored (Falco skips it silently; callers say
// so); a path that does not exist is kept, so reading it reports the problem against its name.
// Only an unreadable directory is an error.
func Expand(paths []string) (files, ignored []string, err error) {
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			files = append(files, p)
			continue
		}
		if !st.IsDir() {
			if !IsYAMLName(p) {
				ignored = append(ignored, p)
				continue
			}
			files = append(files, p)
			continue
		}
		entries, err := os.ReadDir(p)
		if err != nil {
			return nil, nil, fmt.Errorf("read rules directory %s: %w", p, err)
		}
		var names []string
		for _, e := range entries {
			full := filepath.Join(p, e.Name())
			if e.Type().IsRegular() && IsYAMLName(full) {
				names = append(names, full)
			}
		}
		sort.Strings(names)
		files = append(files, names...)
	}
	return files, ignored, nil
}

// IsYAMLName reports whether a rules file name has one of the extensions Falco loads.
func IsYAMLName(p string) bool {
	return strings.HasSuffix(p, ".yaml") || strings.HasSuffix(p, ".yml")
}

// IgnoredNotice is the line the CLI prints for a path Expand ignored.
func IgnoredNotice(p string) string {
	return fmt.Sprintf("Ignoring %s: rules files must end in .yaml or .yml", p)
}

// Load expands paths and loads the files cumulatively into one ruleset, in order. A file that
// cannot be read becomes a LOAD_ERR_FILE_READ result (and the load fails with
// *engine.LoadError), as in Falco. ignored lists what Expand left out.
func Load(paths []string, opts engine.Options) (rs *engine.Ruleset, results []engine.FileResult, ignored []string, err error) {
	files, ignored, err := Expand(paths)
	if err != nil {
		return nil, nil, ignored, err
	}
	l := engine.NewLoader(opts)
	var readErrs []engine.FileResult
	for _, p := range files {
		content, err := os.ReadFile(p)
		if err != nil {
			readErrs = append(readErrs, engine.FileResult{Name: p, Errors: []engine.Diagnostic{{
				Severity: engine.SeverityError, Code: engine.ErrFileRead,
				Message:   fmt.Sprintf("Could not read rules file: %v", err),
				Locations: []engine.Location{{ItemType: engine.ItemRulesContent, Position: engine.Position{Name: p}}},
			}}})
			continue
		}
		l.Load(p, content)
	}
	results = append(readErrs, l.Results()...)
	if len(readErrs) > 0 {
		return nil, results, ignored, &engine.LoadError{Results: results}
	}
	rs, err = l.Ruleset()
	return rs, results, ignored, err
}

// ReadFiles expands paths and reads every file, failing on the first that cannot be read (the
// agent's rules.files and the tuning commands' base rules: a missing file is an error there,
// not a result to print).
func ReadFiles(paths []string) (files []engine.File, ignored []string, err error) {
	names, ignored, err := Expand(paths)
	if err != nil {
		return nil, ignored, err
	}
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			return nil, ignored, fmt.Errorf("%s: read rules file: %w", n, err)
		}
		files = append(files, engine.File{Name: n, Content: b})
	}
	return files, ignored, nil
}
