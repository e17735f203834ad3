package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/falco-k8s/falco-k8s/engine"
	"github.com/falco-k8s/falco-k8s/engine/k8saudit"
)

func engineVersion() string { return engine.EngineVersion }

func newRulesCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rules",
		Short: "Validate, list and inspect Falco rules files",
	}
	cmd.AddCommand(newRulesValidateCmd(), newRulesListCmd(), newRulesFieldsCmd())
	return cmd
}

// expandRulesPaths applies Falco's rules_files rules: a directory expands non-recursively to its
// *.yaml/*.yml files sorted by path; an explicit file with another extension is ignored (with a
// notice, where Falco is silent).
func expandRulesPaths(paths []string, stderr io.Writer) ([]string, error) {
	var out []string
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			// Keep it: loading reports LOAD_ERR_FILE_READ for it.
			out = append(out, p)
			continue
		}
		if !st.IsDir() {
			if !isYAMLName(p) {
				fmt.Fprintf(stderr, "Ignoring %s: rules files must end in .yaml or .yml\n", p)
				continue
			}
			out = append(out, p)
			continue
		}
		entries, err := os.ReadDir(p)
		if err != nil {
			return nil, fmt.Errorf("read rules directory %s: %w", p, err)
		}
		var files []string
		for _, e := range entries {
			full := filepath.Join(p, e.Name())
			if e.Type().IsRegular() && isYAMLName(full) {
				files = append(files, full)
			}
		}
		sort.Strings(files)
		out = append(out, files...)
	}
	return out, nil
}

func isYAMLName(p string) bool {
	return strings.HasSuffix(p, ".yaml") || strings.HasSuffix(p, ".yml")
}

// loadRulesFiles loads paths cumulatively; unreadable files become LOAD_ERR_FILE_READ results.
func loadRulesFiles(paths []string, opts engine.Options, stderr io.Writer) (*engine.Ruleset, []engine.FileResult, error) {
	files, err := expandRulesPaths(paths, stderr)
	if err != nil {
		return nil, nil, err
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
	results := append(readErrs, l.Results()...)
	if len(readErrs) > 0 {
		return nil, results, &engine.LoadError{Results: results}
	}
	rs, err := l.Ruleset()
	return rs, results, err
}

func newRulesValidateCmd() *cobra.Command {
	var files []string
	var format string
	cmd := &cobra.Command{
		Use:   "validate -r FILE [-r FILE]...",
		Short: "Validate rules files cumulatively, like falco -V",
		Long: "Loads the files in order into one engine (later files may append to or override earlier ones)\n" +
			"and reports, per file, Ok, Ok with warnings, or Invalid with each problem's file, line, column\n" +
			"(0-based, as Falco prints them), item and a hint on what to fix. Exit status 0 when every file\n" +
			"is valid (warnings allowed), 1 otherwise.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(files) == 0 {
				return exitWith(2, fmt.Errorf("no rules files: pass at least one -r FILE"))
			}
			_, results, err := loadRulesFiles(files, engine.DefaultOptions(), cmd.ErrOrStderr())
			if _, isLoad := err.(*engine.LoadError); err != nil && !isLoad {
				return exitWith(1, err)
			}
			switch format {
			case "json":
				writeValidateJSON(cmd.OutOrStdout(), results)
			case "text", "":
				writeValidateText(cmd.OutOrStdout(), cmd.ErrOrStderr(), results)
			default:
				return exitWith(2, fmt.Errorf("invalid output format %q: use text or json", format))
			}
			if err != nil {
				return exitWith(1, fmt.Errorf("%s", validateSummary(results)))
			}
			return nil
		},
	}
	cmd.Flags().StringArrayVarP(&files, "rules", "r", nil, "rules file or directory (repeatable, loaded in order)")
	cmd.Flags().StringVarP(&format, "output", "o", "text", "output format: text or json")
	return cmd
}

func validateSummary(results []engine.FileResult) string {
	var parts []string
	for _, r := range results {
		if !r.Successful {
			n := len(r.Errors)
			parts = append(parts, fmt.Sprintf("%s: %d error(s)", r.Name, n))
		}
	}
	return "invalid rules: " + strings.Join(parts, ", ")
}

func writeValidateText(stdout, stderr io.Writer, results []engine.FileResult) {
	for _, r := range results {
		switch {
		case !r.Successful:
			fmt.Fprintf(stdout, "%s: Invalid\n", r.Name)
			fmt.Fprintf(stdout, "%d Errors:\n", len(r.Errors))
			for _, d := range r.Errors {
				writeDiagText(stdout, d)
			}
			if len(r.Warnings) > 0 {
				fmt.Fprintf(stdout, "%d Warnings:\n", len(r.Warnings))
				for _, d := range r.Warnings {
					writeDiagText(stdout, d)
				}
			}
		case len(r.Warnings) > 0:
			fmt.Fprintf(stdout, "%s: Ok, with warnings\n", r.Name)
			fmt.Fprintf(stderr, "%s: %d Warnings:\n", r.Name, len(r.Warnings))
			for _, d := range r.Warnings {
				writeDiagText(stderr, d)
			}
		default:
			fmt.Fprintf(stdout, "%s: Ok\n", r.Name)
		}
	}
}

func writeDiagText(w io.Writer, d engine.Diagnostic) {
	fmt.Fprint(w, d.FalcoVerbose())
	fmt.Fprintf(w, "  at %s\n", d.String())
	if h := engine.Hint(d); h != "" {
		fmt.Fprintf(w, "  fix: %s\n", h)
	}
}

type jsonDiag struct {
	Context struct {
		Locations []engine.Location `json:"locations"`
		Snippet   string            `json:"snippet"`
	} `json:"context"`
	Code     engine.Code `json:"code"`
	CodeDesc string      `json:"codedesc"`
	Message  string      `json:"message"`
}

type jsonFileResult struct {
	Name           string     `json:"name"`
	Successful     bool       `json:"successful"`
	SchemaValid    string     `json:"schema_valid"`
	SchemaWarnings []string   `json:"schema_warnings"`
	Errors         []jsonDiag `json:"errors"`
	Warnings       []jsonDiag `json:"warnings"`
}

func toJSONDiags(ds []engine.Diagnostic) []jsonDiag {
	out := make([]jsonDiag, 0, len(ds))
	for _, d := range ds {
		var j jsonDiag
		j.Context.Locations = d.Locations
		j.Context.Snippet = d.Snippet
		j.Code, j.CodeDesc, j.Message = d.Code, d.Code.JSONDesc(), d.Message
		out = append(out, j)
	}
	return out
}

// writeValidateJSON prints falco -V -o json_output=true's document.
func writeValidateJSON(w io.Writer, results []engine.FileResult) {
	doc := struct {
		Results []jsonFileResult `json:"falco_load_results"`
	}{}
	for _, r := range results {
		doc.Results = append(doc.Results, jsonFileResult{
			Name: r.Name, Successful: r.Successful, SchemaValid: "none", SchemaWarnings: []string{},
			Errors: toJSONDiags(r.Errors), Warnings: toJSONDiags(r.Warnings),
		})
	}
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(doc)
}

func newRulesListCmd() *cobra.Command {
	var files []string
	var format string
	cmd := &cobra.Command{
		Use:   "list -r FILE...",
		Short: "List the rules of rules files: name, source, priority, enabled, tags",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(files) == 0 {
				return exitWith(2, fmt.Errorf("no rules files: pass at least one -r FILE"))
			}
			rs, results, err := loadRulesFiles(files, engine.DefaultOptions(), cmd.ErrOrStderr())
			if err != nil {
				writeValidateText(cmd.ErrOrStderr(), io.Discard, results)
				return exitWith(1, fmt.Errorf("%s", validateSummary(results)))
			}
			return writeRuleList(cmd.OutOrStdout(), rs.Rules(), format)
		},
	}
	cmd.Flags().StringArrayVarP(&files, "rules", "r", nil, "rules file or directory (repeatable, loaded in order)")
	cmd.Flags().StringVarP(&format, "output", "o", "table", "output format: table or json")
	return cmd
}

type ruleListEntry struct {
	Name     string   `json:"name"`
	Source   string   `json:"source"`
	Priority string   `json:"priority"`
	Enabled  bool     `json:"enabled"`
	Active   bool     `json:"active"`
	Skipped  bool     `json:"skipped"`
	Tags     []string `json:"tags"`
	File     string   `json:"file"`
	Line     int      `json:"line"`
}

func writeRuleList(w io.Writer, rules []*engine.Rule, format string) error {
	switch format {
	case "json":
		out := make([]ruleListEntry, 0, len(rules))
		for _, r := range rules {
			out = append(out, ruleListEntry{r.Name, r.Source, r.Priority.String(), r.Enabled, r.Active, r.Skipped, r.Tags, r.File, r.Line})
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		return enc.Encode(out)
	case "table", "":
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tSOURCE\tPRIORITY\tENABLED\tTAGS")
		for _, r := range rules {
			enabled := fmt.Sprint(r.Enabled)
			if r.Skipped {
				enabled += " (skipped: unknown source)"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Name, r.Source, r.Priority, enabled, strings.Join(r.Tags, ","))
		}
		return tw.Flush()
	}
	return exitWith(2, fmt.Errorf("invalid output format %q: use table or json", format))
}

func newRulesFieldsCmd() *cobra.Command {
	var source, format string
	cmd := &cobra.Command{
		Use:   "fields [--source k8s_audit]",
		Short: "List the fields rules can use, with type and argument",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if source != engine.SourceK8sAudit {
				return exitWith(2, fmt.Errorf("unknown source %q: falco-k8s implements only %s", source, engine.SourceK8sAudit))
			}
			fields := k8saudit.Fields()
			if format == "json" {
				type jf struct {
					Name       string `json:"name"`
					Type       string `json:"type"`
					List       bool   `json:"list"`
					Arg        string `json:"arg"`
					Plugin     string `json:"plugin"`
					Version    string `json:"plugin_version,omitempty"`
					Deprecated bool   `json:"deprecated"`
					Desc       string `json:"desc"`
				}
				out := make([]jf, 0, len(fields))
				for _, f := range fields {
					out = append(out, jf{f.Name, fieldTypeName(f.Type), f.List, argModeName(f.Arg), f.Plugin, engine.BuiltinPlugins[f.Plugin], f.Deprecated, f.Desc})
				}
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(out)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "FIELD\tTYPE\tARG\tPROVIDED BY\tDESCRIPTION")
			for _, f := range fields {
				t := fieldTypeName(f.Type)
				if f.List {
					t = "list(" + t + ")"
				}
				desc := f.Desc
				if f.Deprecated {
					desc = "(deprecated) " + desc
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", f.Name, t, argModeName(f.Arg), fieldProvider(f), desc)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&source, "source", engine.SourceK8sAudit, "event source")
	cmd.Flags().StringVarP(&format, "output", "o", "table", "output format: table or json")
	return cmd
}

// fieldProvider names the plugin and version whose semantics a field follows (the versions a
// rules file's required_plugin_versions is checked against), or Falco itself for evt.* fields.
func fieldProvider(f k8saudit.Field) string {
	if f.Plugin == "" {
		return "falco (engine " + engine.EngineVersion + ")"
	}
	return f.Plugin + " " + engine.BuiltinPlugins[f.Plugin]
}

func fieldTypeName(t k8saudit.Type) string {
	switch t {
	case k8saudit.TypeUint64:
		return "uint64"
	case k8saudit.TypeBool:
		return "bool"
	case k8saudit.TypeAbsTime:
		return "abstime"
	}
	return "string"
}

func argModeName(a k8saudit.ArgMode) string {
	switch a {
	case k8saudit.ArgIndex:
		return "[index] optional"
	case k8saudit.ArgIndexRequired:
		return "[index] required"
	case k8saudit.ArgKey:
		return "[key] required"
	case k8saudit.ArgKeyOptional:
		return "[key] optional"
	}
	return "-"
}
