package condition

import (
	"bytes"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/falco-k8s/falco-k8s/internal/testshared"
)

type corpusCondition struct {
	file, kind, name, cond string
}

// readCorpus returns every macro and rule condition of the shipped and
// regression rule files, or nil when the shared tree is absent.
func readCorpus() ([]corpusCondition, error) {
	sharedDir := testshared.Root()
	if _, err := os.Stat(sharedDir); err != nil {
		return nil, nil
	}
	var files []string
	upstream, _ := filepath.Glob(filepath.Join(sharedDir, "testdata/upstream/*.yaml"))
	files = append(files, upstream...)
	root := filepath.Join(sharedDir, "testdata/falco-k8s-audit/rules")
	_ = filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && filepath.Ext(path) == ".yaml" {
			files = append(files, path)
		}
		return nil
	})
	sort.Strings(files)
	var out []corpusCondition
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		dec := yaml.NewDecoder(bytes.NewReader(data))
		for {
			var doc []map[string]any
			if err := dec.Decode(&doc); err != nil {
				break // EOF, or a document that is not a rules list
			}
			for _, item := range doc {
				cond, ok := item["condition"].(string)
				if !ok {
					continue
				}
				for _, kind := range []string{"macro", "rule"} {
					if name, ok := item[kind].(string); ok {
						out = append(out, corpusCondition{filepath.Base(f), kind, name, cond})
					}
				}
			}
		}
	}
	return out, nil
}

// loadCorpus is readCorpus for tests: it skips when there is nothing to read.
func loadCorpus(tb testing.TB) []corpusCondition {
	tb.Helper()
	conds, err := readCorpus()
	if err != nil {
		tb.Fatal(err)
	}
	if len(conds) == 0 {
		testshared.Missing(tb, "shared testdata not available under %s", testshared.Root())
	}
	return conds
}

func TestCorpusConditionsParse(t *testing.T) {
	conds := loadCorpus(t)
	for _, c := range conds {
		e, err := Parse(c.cond)
		if err != nil {
			pe := err.(*ParseError)
			t.Errorf("%s %s %q: %v at %+v\n%s", c.file, c.kind, c.name, err, pe.Pos, c.cond)
			continue
		}
		s := e.String()
		e2, err := Parse(s)
		if err != nil {
			t.Errorf("%s %s %q: canonical form does not re-parse: %v\n%s", c.file, c.kind, c.name, err, s)
			continue
		}
		if s2 := e2.String(); s2 != s {
			t.Errorf("%s %s %q: canonical form not stable:\n%s\n%s", c.file, c.kind, c.name, s, s2)
		}
	}
	t.Logf("parsed %d conditions", len(conds))
}
