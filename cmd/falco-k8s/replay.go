package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/falco-k8s/falco-k8s/engine"
	"github.com/falco-k8s/falco-k8s/engine/rulesfile"
	"github.com/falco-k8s/falco-k8s/replay"
)

func newReplayCmd() *cobra.Command {
	var (
		files       []string
		jsonOut     bool
		minPriority string
		allMatches  bool
	)
	cmd := &cobra.Command{
		Use:   "replay -r FILE... [--json] [--min-priority P] [--all-matches] EVENTS...",
		Short: "Evaluate recorded Kubernetes audit events against rules and print the alerts",
		Long: "Reads audit events (each line an Event or EventList JSON object, or one pretty-printed JSON\n" +
			"document; '-' is stdin), evaluates them in order and prints one alert per line on stdout, as\n" +
			"Falco's text line or, with --json, Falco's JSON alert. A summary goes to stderr. Like Falco,\n" +
			"only the first matching rule alerts for an event unless --all-matches.\n" +
			"Exit status: 0 after a run, 1 when the rules do not load, 2 when an input cannot be read.",
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(files) == 0 {
				return exitWith(1, fmt.Errorf("no rules files: pass at least one -r FILE"))
			}
			if len(args) == 0 {
				return exitWith(2, fmt.Errorf("no event input: pass a file of audit events, or - for stdin"))
			}
			opts := engine.DefaultOptions()
			if minPriority != "" {
				p, err := engine.ParsePriority(minPriority)
				if err != nil {
					return exitWith(2, fmt.Errorf("--min-priority: %w", err))
				}
				opts.MinPriority = p
			}
			rs, results, err := loadRulesFiles(files, opts, cmd.ErrOrStderr())
			if err != nil {
				rulesfile.WriteText(cmd.ErrOrStderr(), io.Discard, results)
				return exitWith(1, fmt.Errorf("rules do not load: %s", rulesfile.Summary(results)))
			}
			r := replay.New(rs, replay.Options{AllMatches: allMatches, JSON: jsonOut, Hostname: replay.Hostname()},
				cmd.OutOrStdout(), cmd.ErrOrStderr())
			var inputErr error
			for _, a := range args {
				if err := r.Input(cmd.InOrStdin(), a); err != nil {
					fmt.Fprintf(cmd.ErrOrStderr(), "Error: %v\n", err)
					inputErr = err
				}
			}
			if err := r.Flush(); err != nil {
				return exitWith(2, fmt.Errorf("write alerts: %w", err))
			}
			r.Summary()
			if inputErr != nil {
				return exitWith(2, errors.New(""))
			}
			return nil
		},
	}
	cmd.Flags().StringArrayVarP(&files, "rules", "r", nil, "rules file or directory (repeatable, loaded in order)")
	cmd.Flags().BoolVar(&jsonOut, "json", false, "print alerts as Falco JSON objects")
	cmd.Flags().StringVar(&minPriority, "min-priority", "debug", "only evaluate rules at least this severe")
	cmd.Flags().BoolVar(&allMatches, "all-matches", false, "alert for every matching rule, not only the first")
	return cmd
}
