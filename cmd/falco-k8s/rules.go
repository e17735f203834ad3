package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/falco-k8s/falco-k8s/agent"
	"github.com/falco-k8s/falco-k8s/agent/status"
	"github.com/falco-k8s/falco-k8s/engine"
	"github.com/falco-k8s/falco-k8s/engine/k8saudit"
	"github.com/falco-k8s/falco-k8s/engine/rulesfile"
)

func engineVersion() string { return engine.EngineVersion }

func newRulesCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rules",
		Short: "Validate, list and inspect Falco rules files",
	}
	cmd.AddCommand(newRulesValidateCmd(), newRulesListCmd(), newRulesFieldsCmd(), newRulesTestCmd())
	return cmd
}

// loadRulesFiles loads paths cumulatively (engine/rulesfile), telling stderr about each path
// left out for not being YAML, where Falco is silent.
func loadRulesFiles(paths []string, opts engine.Options, stderr io.Writer) (*engine.Ruleset, []engine.FileResult, error) {
	rs, results, ignored, err := rulesfile.Load(paths, opts)
	noticeIgnored(stderr, ignored)
	return rs, results, err
}

func noticeIgnored(stderr io.Writer, ignored []string) {
	for _, p := range ignored {
		fmt.Fprintln(stderr, rulesfile.IgnoredNotice(p))
	}
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
				_ = rulesfile.WriteJSON(cmd.OutOrStdout(), results)
			case "text", "":
				rulesfile.WriteText(cmd.OutOrStdout(), cmd.ErrOrStderr(), results)
			default:
				return exitWith(2, fmt.Errorf("invalid output format %q: use text or json", format))
			}
			if err != nil {
				return exitWith(1, fmt.Errorf("%s", rulesfile.Summary(results)))
			}
			return nil
		},
	}
	cmd.Flags().StringArrayVarP(&files, "rules", "r", nil, "rules file or directory (repeatable, loaded in order)")
	cmd.Flags().StringVarP(&format, "output", "o", "text", "output format: text or json")
	return cmd
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
				rulesfile.WriteText(cmd.ErrOrStderr(), io.Discard, results)
				return exitWith(1, fmt.Errorf("%s", rulesfile.Summary(results)))
			}
			return writeRuleList(cmd.OutOrStdout(), rs.Rules(), format)
		},
	}
	cmd.Flags().StringArrayVarP(&files, "rules", "r", nil, "rules file or directory (repeatable, loaded in order)")
	cmd.Flags().StringVarP(&format, "output", "o", "table", "output format: table or json")
	return cmd
}

func writeRuleList(w io.Writer, rules []*engine.Rule, format string) error {
	switch format {
	case "json":
		// The agent's GET /rules shape (status.Rule), one rule-list JSON for both.
		out := make([]status.Rule, 0, len(rules))
		for _, r := range rules {
			out = append(out, agent.RuleEntry(r))
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
					out = append(out, jf{f.Name, f.Type.String(), f.List, f.Arg.String(), f.Plugin, engine.BuiltinPlugins[f.Plugin], f.Deprecated, f.Desc})
				}
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(out)
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "FIELD\tTYPE\tARG\tPROVIDED BY\tDESCRIPTION")
			for _, f := range fields {
				t := f.Type.String()
				if f.List {
					t = "list(" + t + ")"
				}
				desc := f.Desc
				if f.Deprecated {
					desc = "(deprecated) " + desc
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", f.Name, t, f.Arg.String(), fieldProvider(f), desc)
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
