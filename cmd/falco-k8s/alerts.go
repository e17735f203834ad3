package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/falco-k8s/falco-k8s/agent/apiclient"
	"github.com/falco-k8s/falco-k8s/agent/config"
	"github.com/falco-k8s/falco-k8s/alerts"
	"github.com/falco-k8s/falco-k8s/engine"
	"github.com/falco-k8s/falco-k8s/engine/rulesfile"
	"github.com/falco-k8s/falco-k8s/internal/redact"
	"github.com/falco-k8s/falco-k8s/rules"
)

// alertSource are the flags shared by the alerts subcommands that read alerts.
type alertSource struct {
	url, file, since, namespace, priority string
	tokenFile, caFile                     string
	limit                                 int
}

func (s *alertSource) register(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&s.url, "url", "", "agent base URL to read GET /alerts from, e.g. http://falco-k8s:9765")
	f.StringVar(&s.tokenFile, "token-file", "", "file holding the bearer token: the webhook's when /alerts shares the webhook's port, the peer token with --peer")
	f.StringVar(&s.caFile, "ca-file", "", "CA bundle (PEM) that signed the agent's certificate, for an https --url")
	f.StringVar(&s.file, "file", "", "file of Falco JSON alerts, one per line (the file output with json: true), - for stdin")
	f.StringVar(&s.since, "since", "", "only alerts since a duration ago (30m, 1h, 7d) or an RFC 3339 time")
	f.StringVar(&s.namespace, "namespace", "", "only alerts in this namespace (ka.target.namespace)")
	f.StringVar(&s.priority, "priority", "", "only alerts at least this severe (e.g. warning)")
	f.IntVar(&s.limit, "limit", 0, "at most this many alerts, the newest (0: the agent's default of 10000, or all in a file)")
}

func (s *alertSource) filter(rule string) (alerts.Filter, error) {
	f := alerts.Filter{Namespace: s.namespace, Rule: rule, Limit: s.limit}
	var err error
	if f.Since, err = alerts.ParseSince(s.since, time.Now()); err != nil {
		return f, fmt.Errorf("--since: %w", err)
	}
	if s.priority != "" {
		if f.Priority, err = engine.ParsePriority(s.priority); err != nil {
			return f, fmt.Errorf("--priority: %w", err)
		}
		f.HasPriority = true
	}
	if s.limit < 0 {
		return f, fmt.Errorf("invalid --limit %d", s.limit)
	}
	return f, nil
}

// read returns the alerts, the count of non-alert lines skipped and whether the agent truncated.
func (s *alertSource) read(ctx context.Context, stdin io.Reader, f alerts.Filter) ([]*alerts.Alert, int, bool, error) {
	switch {
	case s.url != "" && s.file != "":
		return nil, 0, false, errors.New("pass either --url or --file, not both")
	case s.url != "":
		client, err := apiclient.NewHTTPClient(s.caFile, s.tokenFile)
		if err != nil {
			return nil, 0, false, err
		}
		out, truncated, err := apiclient.New(s.url, client).Alerts(ctx, f)
		return out, 0, truncated, err
	case s.file == "-":
		out, skipped, err := alerts.ReadJSONL(ctx, stdin, f)
		return out, skipped, false, err
	case s.file != "":
		fh, err := os.Open(s.file)
		if err != nil {
			return nil, 0, false, fmt.Errorf("open alerts: %w", err)
		}
		defer fh.Close()
		out, skipped, err := alerts.ReadJSONL(ctx, fh, f)
		if err != nil {
			return nil, 0, false, fmt.Errorf("%s: %w", s.file, err)
		}
		return out, skipped, false, nil
	}
	return nil, 0, false, alerts.ErrNoInput
}

func newAlertsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "alerts",
		Short: "Review alerts of a log-only rollout and tune rules with exceptions",
		Long: "The log-only rollout loop: run the agent, let the cluster work, `alerts review` what would have\n" +
			"been flagged, `alerts tune` the legitimate activity into Falco exceptions (per namespace or\n" +
			"cluster-wide) kept in a managed tuning rules file the agent loads last, and `alerts reset` to\n" +
			"start over. Alerts come from the agent (--url, its GET /alerts journal) or a file (--file).",
	}
	cmd.AddCommand(newAlertsReviewCmd(), newAlertsTuneCmd(), newAlertsResetCmd())
	return cmd
}

// peerClients builds one client per --peer unit=URL, sharing --token-file and --ca-file.
func (s *alertSource) peerClients(peers []string) ([]apiclient.Peer, error) {
	if s.url != "" || s.file != "" {
		return nil, errors.New("pass --peer, or one of --url and --file, not both")
	}
	var o apiclient.RemoteOptions
	if s.tokenFile != "" {
		tok, err := os.ReadFile(s.tokenFile)
		if err != nil {
			return nil, fmt.Errorf("--token-file: %w", err)
		}
		o.Token = strings.TrimSpace(string(tok))
	}
	if s.caFile != "" {
		pem, err := os.ReadFile(s.caFile)
		if err != nil {
			return nil, fmt.Errorf("--ca-file: %w", err)
		}
		o.CAPEM = pem
	}
	out := make([]apiclient.Peer, 0, len(peers))
	seen := map[string]bool{}
	for _, p := range peers {
		unit, u, ok := strings.Cut(p, "=")
		if !ok || unit == "" || u == "" {
			return nil, fmt.Errorf("invalid --peer %q: want unit=URL, e.g. falco-k8s/1=http://10.1.2.3:8766", redact.URL(p))
		}
		if seen[unit] {
			return nil, fmt.Errorf("--peer %s given twice", unit)
		}
		seen[unit] = true
		c, err := apiclient.NewRemote(u, o)
		if err != nil {
			return nil, fmt.Errorf("--peer %s: %w", unit, err)
		}
		out = append(out, apiclient.Peer{Unit: unit, Client: c})
	}
	return out, nil
}

func newAlertsReviewCmd() *cobra.Command {
	var (
		src         alertSource
		rule        string
		format      string
		peers       []string
		peerTimeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "review [--since 1h] [--namespace NS] [--rule R] [--priority P] [-o table|json] (--url URL | --file FILE | --peer UNIT=URL... --token-file F)",
		Short: "Summarise alerts: totals, then one table per rule",
		Long: "Prints a summary (alerts, rules, namespaces, time range, priorities) and then, per rule (most\n" +
			"severe first), a table of namespace, target (resource/name), images, container, user and count.\n" +
			"Values a rule's output does not capture are shown as <NA>.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if format != "table" && format != "json" {
				return exitWith(2, fmt.Errorf("invalid -o %q: use table or json", format))
			}
			f, err := src.filter(rule)
			if err != nil {
				return exitWith(2, err)
			}
			if len(peers) > 0 {
				clients, err := src.peerClients(peers)
				if err != nil {
					return exitWith(2, err)
				}
				r := apiclient.ReviewPeers(cmd.Context(), clients, f, peerTimeout)
				if format == "json" {
					err = r.WriteJSON(cmd.OutOrStdout())
				} else {
					err = r.WriteTable(cmd.OutOrStdout())
				}
				if err == nil && len(r.Units) == 0 {
					err = exitWith(1, errors.New("no unit answered"))
				}
				return err
			}
			list, skipped, truncated, err := src.read(cmd.Context(), cmd.InOrStdin(), f)
			if err != nil {
				return exitWith(2, err)
			}
			r := alerts.NewReview(list)
			r.Skipped, r.Truncated = skipped, truncated
			if format == "json" {
				return r.WriteJSON(cmd.OutOrStdout())
			}
			return r.WriteTable(cmd.OutOrStdout())
		},
	}
	src.register(cmd)
	cmd.Flags().StringVar(&rule, "rule", "", "only alerts of this rule")
	cmd.Flags().StringVarP(&format, "output", "o", "table", "table or json")
	cmd.Flags().StringArrayVar(&peers, "peer", nil, "unit=URL of a unit's peer API (peer.listen), repeatable: one review of every unit's alerts, naming units that do not answer (--token-file: the peer token)")
	cmd.Flags().DurationVar(&peerTimeout, "peer-timeout", apiclient.DefaultPeerTimeout, "how long each --peer may take to answer")
	return cmd
}

// tuningTarget are the flags that locate the tuning file and the rules it is validated with.
type tuningTarget struct {
	path, cfgFile string
	rulesFiles    []string
	noBuiltin     bool
}

func (t *tuningTarget) register(cmd *cobra.Command, withRules bool) {
	f := cmd.Flags()
	f.StringVar(&t.path, "tuning-file", "", "the managed tuning rules file (default: the agent's rules.tuning_file, <state_dir>/tuning.yaml)")
	f.StringVarP(&t.cfgFile, "config", "c", "", "the agent's configuration file: its rules.builtin, rules.files and tuning file are used")
	if withRules {
		f.StringArrayVarP(&t.rulesFiles, "rules", "r", nil, "rules file or directory the agent loads before the tuning file (repeatable; validation)")
		f.BoolVar(&t.noBuiltin, "no-builtin", false, "do not include the built-in ruleset in the base rules")
	}
}

func (t *tuningTarget) resolve() (*config.Config, string, error) {
	cfg, err := config.Load(t.cfgFile, nil)
	if err != nil {
		return nil, "", err
	}
	p := t.path
	if p == "" {
		p = cfg.Rules.TuningPath()
	}
	if p == "" {
		return nil, "", errors.New("no tuning file: pass --tuning-file or set rules.state_dir")
	}
	return cfg, p, nil
}

// base lists the files the agent loads before the tuning file, in its order (followed
// artifacts excepted: pass them with -r).
func (t *tuningTarget) base(cfg *config.Config, stderr io.Writer) ([]engine.File, error) {
	var l rulesfile.Layers[engine.File]
	if cfg.Rules.Builtin && !t.noBuiltin {
		l.Builtin = []engine.File{{Name: rules.DefaultName, Content: rules.Default()}}
	}
	local, ignored, err := rulesfile.ReadFiles(append(append([]string(nil), cfg.Rules.Files...), t.rulesFiles...))
	noticeIgnored(stderr, ignored)
	if err != nil {
		return nil, err
	}
	l.Local = local
	files := l.Ordered()
	if len(files) == 0 {
		return nil, errors.New("no base rules: drop --no-builtin or pass -r FILE")
	}
	return files, nil
}

func newAlertsTuneCmd() *cobra.Command {
	var (
		src    alertSource
		tgt    tuningTarget
		scope  string
		only   []string
		dryRun bool
		format string
	)
	cmd := &cobra.Command{
		Use:   "tune --scope namespace|cluster [--namespace NS] [--rule R]... [--since 1h] [--dry-run] [--tuning-file PATH] [-r RULES]... (--url URL | --file FILE)",
		Short: "Turn reviewed alerts into exceptions in the managed tuning file",
		Long: "For every alert (after the filters), adds a Falco exception value to the rule that fired, keyed on\n" +
			"what the rule's output captured: the namespace (namespace scope only), the user and the pod's\n" +
			"image repositories. The tuning file gets `override: {exceptions: append}` items; existing\n" +
			"exceptions are never changed or duplicated, so running tune twice adds nothing the second time.\n" +
			"The result is loaded with the base rules (built-in, rules.files, -r) before it is written\n" +
			"atomically. Send the agent SIGHUP (the charm does) to apply it.\n" +
			"Exit status: 0 after a run (also when nothing is added), 1 when the tuned rules do not load,\n" +
			"2 on bad input.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if scope != alerts.ScopeNamespace && scope != alerts.ScopeCluster {
				return exitWith(2, fmt.Errorf("invalid --scope %q: use namespace or cluster", scope))
			}
			if format != "text" && format != "json" {
				return exitWith(2, fmt.Errorf("invalid -o %q: use text or json", format))
			}
			rule := ""
			if len(only) == 1 {
				rule = only[0]
			}
			f, err := src.filter(rule)
			if err != nil {
				return exitWith(2, err)
			}
			cfg, path, err := tgt.resolve()
			if err != nil {
				return exitWith(2, err)
			}
			base, err := tgt.base(cfg, cmd.ErrOrStderr())
			if err != nil {
				return exitWith(2, err)
			}
			list, _, truncated, err := src.read(cmd.Context(), cmd.InOrStdin(), f)
			if err != nil {
				return exitWith(2, err)
			}
			if len(only) > 1 {
				want := map[string]bool{}
				for _, r := range only {
					want[r] = true
				}
				kept := list[:0]
				for _, a := range list {
					if want[a.Rule] {
						kept = append(kept, a)
					}
				}
				list = kept
			}
			res, err := alerts.TuneFile(cmd.Context(), alerts.LocalFiles{}, list,
				alerts.TuneOptions{Scope: scope, Base: base, Path: path, Now: time.Now()}, dryRun)
			switch {
			case errors.Is(err, alerts.ErrReadTuning):
				return exitWith(2, err)
			case err != nil:
				return exitWith(1, err)
			}
			if format == "json" {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(struct {
					*alerts.TuneResult
					DryRun    bool `json:"dry_run"`
					Reviewed  int  `json:"alerts_reviewed"`
					Truncated bool `json:"truncated,omitempty"`
				}{res, dryRun, len(list), truncated})
			}
			return printTune(cmd.OutOrStdout(), res, len(list), dryRun, truncated)
		},
	}
	src.register(cmd)
	tgt.register(cmd, true)
	cmd.Flags().StringVar(&scope, "scope", "", "namespace: exceptions keyed by namespace (+ user, images); cluster: the same without the namespace")
	cmd.Flags().StringArrayVar(&only, "rule", nil, "only tune this rule (repeatable)")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print what would be added, write nothing")
	cmd.Flags().StringVarP(&format, "output", "o", "text", "text or json")
	return cmd
}

func printTune(w io.Writer, res *alerts.TuneResult, reviewed int, dryRun, truncated bool) error {
	ew := alerts.NewErrWriter(w)
	fmt.Fprintf(ew, "Tuning file: %s (scope %s), %d alerts reviewed\n", res.File, res.Scope, reviewed)
	if truncated {
		fmt.Fprintln(ew, "Warning: the agent had more alerts than the limit; narrow --since or raise --limit")
	}
	if len(res.Added) == 0 {
		fmt.Fprintf(ew, "Nothing to add: every tunable alert is already covered (%d exception values present)\n", res.Present)
	} else {
		verb := "Added"
		if dryRun {
			verb = "Would add"
		}
		fmt.Fprintf(ew, "%s %d exception values (%d already present):\n", verb, len(res.Added), res.Present)
		for _, ad := range res.Added {
			fmt.Fprintf(ew, "  + %s\n", alerts.FormatAddition(ad))
		}
	}
	for _, s := range res.Skipped {
		fmt.Fprintf(ew, "  skipped %s (%d alerts): %s\n", s.Rule, s.Alerts, s.Reason)
	}
	switch {
	case dryRun && res.Changed:
		fmt.Fprintln(ew, "Dry run: nothing written.")
	case res.Written:
		fmt.Fprintf(ew, "Written %s; send the agent SIGHUP (or run the charm's tune-rules action) to apply it.\n", res.File)
	}
	return ew.Err()
}

func newAlertsResetCmd() *cobra.Command {
	var (
		tgt    tuningTarget
		format string
	)
	cmd := &cobra.Command{
		Use:   "reset [--tuning-file PATH]",
		Short: "Set the tuning file aside (renamed with a timestamp) to return to the untuned rules",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, path, err := tgt.resolve()
			if err != nil {
				return exitWith(2, err)
			}
			moved, err := alerts.ResetFile(cmd.Context(), alerts.LocalFiles{}, path, time.Now())
			if err != nil {
				return exitWith(1, err)
			}
			if format == "json" {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(map[string]any{"file": path, "moved_to": moved, "reset": moved != ""})
			}
			if moved == "" {
				fmt.Fprintf(cmd.OutOrStdout(), "Nothing to reset: %s does not exist\n", path)
				return nil
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Moved %s to %s; send the agent SIGHUP to return to the untuned rules.\n", path, moved)
			return nil
		},
	}
	tgt.register(cmd, false)
	cmd.Flags().StringVarP(&format, "output", "o", "text", "text or json")
	return cmd
}
