package main

import (
	"encoding/json"
	"fmt"
	"github.com/falco-k8s/falco-k8s/engine/rulesfile"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/falco-k8s/falco-k8s/engine"
	"github.com/falco-k8s/falco-k8s/engine/ruletest"
)

// newRulesTestCmd is `falco-k8s rules test`: the test cases a rules artifact carries
// (engine/ruletest's layout), run locally or in CI exactly as the agent's follower runs them.
func newRulesTestCmd() *cobra.Command {
	var files []string
	var dir, format string
	cmd := &cobra.Command{
		Use:   "test -r FILE [-r FILE]... [--dir DIR]",
		Short: "Run a rules artifact's test cases (DIR/tests/*.yaml) against rules files",
		Long: "Loads the rules files like `rules validate`, then runs every case of DIR/tests/*.yaml: each\n" +
			"names an events file (path from DIR: JSON Lines or one JSON document of audit events) and the\n" +
			"rules expected to fire (fire) or not (no_fire) on it. These are the cases the agent replays\n" +
			"against a followed artifact before accepting it; put them in the artifact under tests/.\n" +
			"Exit status 0 when every case passes, 1 when one fails or the rules do not load.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(files) == 0 {
				return exitWith(2, fmt.Errorf("no rules files: pass at least one -r FILE"))
			}
			if format != "text" && format != "json" {
				return exitWith(2, fmt.Errorf("invalid output format %q: use text or json", format))
			}
			rs, results, err := loadRulesFiles(files, engine.DefaultOptions(), cmd.ErrOrStderr())
			if err != nil {
				if _, isLoad := err.(*engine.LoadError); isLoad {
					rulesfile.WriteText(cmd.ErrOrStderr(), cmd.ErrOrStderr(), results)
					return exitWith(1, fmt.Errorf("%s", rulesfile.Summary(results)))
				}
				return exitWith(1, err)
			}
			testFiles := map[string][]byte{}
			matches, err := filepath.Glob(filepath.Join(dir, ruletest.Dir, "*.y*ml"))
			if err != nil {
				return exitWith(2, err)
			}
			for _, m := range matches {
				b, err := os.ReadFile(m)
				if err != nil {
					return exitWith(1, err)
				}
				testFiles[ruletest.Dir+"/"+filepath.Base(m)] = b
			}
			cases, err := ruletest.Load(testFiles)
			if err != nil {
				return exitWith(1, err)
			}
			if len(cases) == 0 {
				return exitWith(1, fmt.Errorf("no test cases in %s: add %s/*.yaml files (see `falco-k8s rules test --help`)",
					filepath.Join(dir, ruletest.Dir), ruletest.Dir))
			}
			read := func(p string) ([]byte, error) { return os.ReadFile(filepath.Join(dir, filepath.FromSlash(p))) }
			res := ruletest.Run(rs, cases, read)
			failed := 0
			type jsonResult struct {
				Name     string   `json:"name"`
				File     string   `json:"file"`
				Passed   bool     `json:"passed"`
				Failures []string `json:"failures,omitempty"`
			}
			var out []jsonResult
			for _, r := range res {
				if len(r.Failures) > 0 {
					failed++
				}
				out = append(out, jsonResult{Name: r.Case.Name, File: r.Case.File, Passed: len(r.Failures) == 0, Failures: r.Failures})
				if format == "text" {
					if len(r.Failures) == 0 {
						fmt.Fprintf(cmd.OutOrStdout(), "PASS %s (%s)\n", r.Case.Name, r.Case.File)
					} else {
						fmt.Fprintf(cmd.OutOrStdout(), "FAIL %s (%s): %s\n", r.Case.Name, r.Case.File, strings.Join(r.Failures, "; "))
					}
				}
			}
			if format == "json" {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				enc.Encode(out) //nolint:errcheck // stdout
			}
			if failed > 0 {
				return exitWith(1, fmt.Errorf("%d of %d test cases failed", failed, len(res)))
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "%d test cases passed\n", len(res))
			return nil
		},
	}
	cmd.Flags().StringArrayVarP(&files, "rules", "r", nil, "rules file or directory (repeatable, loaded in order)")
	cmd.Flags().StringVar(&dir, "dir", ".", "root of the artifact's content: the directory holding tests/")
	cmd.Flags().StringVarP(&format, "output", "o", "text", "output format: text or json")
	return cmd
}
