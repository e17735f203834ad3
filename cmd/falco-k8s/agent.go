package main

import (
	"context"
	"fmt"
	"os"
	"runtime/debug"

	"github.com/spf13/cobra"

	"github.com/falco-k8s/falco-k8s/agent"
	"github.com/falco-k8s/falco-k8s/agent/config"
	"github.com/falco-k8s/falco-k8s/agent/follower"
	"github.com/falco-k8s/falco-k8s/internal/logging"
)

func newAgentCmd() *cobra.Command {
	var (
		cfgFile      string
		rulesFiles   []string
		overrides    []string
		printDefault bool
		check        bool
	)
	cmd := &cobra.Command{
		Use:   "agent [-c FILE] [-r RULES]... [-o key=value]...",
		Short: "Run the audit webhook, rules engine and alert outputs (the charm's workload)",
		Long: "Serves the Kubernetes audit webhook kube-apiserver posts to, evaluates every event against the\n" +
			"built-in and configured Falco rules and sends alerts to the configured outputs. Health, readiness,\n" +
			"Prometheus metrics and a JSON status are served on /healthz, /readyz, /metrics and /status.\n" +
			"--print-default-config prints the documented configuration file with every default.\n" +
			"Signals: SIGTERM/SIGINT drain and stop; SIGHUP reloads rules, token and certificate and reopens\n" +
			"the alert file; SIGUSR1 only reopens the alert file.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if printDefault {
				_, err := cmd.OutOrStdout().Write(config.DefaultYAML)
				return err
			}
			cfg, err := config.Load(cfgFile, overrides)
			if err != nil {
				return exitWith(2, err)
			}
			cfg.Rules.Files = append(cfg.Rules.Files, rulesFiles...)
			if err := cfg.Validate(); err != nil {
				return exitWith(2, fmt.Errorf("invalid configuration:\n%w", err))
			}
			log, err := logging.New(os.Stderr, cfg.Log.Format, cfg.Log.Level)
			if err != nil {
				return exitWith(2, err)
			}
			if os.Getenv("GOMEMLIMIT") == "" {
				// Peak memory follows from the configuration (agent/doc.go, "Memory").
				debug.SetMemoryLimit(cfg.GoMemLimit())
			}
			opts := agent.Options{Version: version, Logger: log, Stdout: cmd.OutOrStdout()}
			if len(cfg.Follow.Refs) > 0 {
				f, err := follower.NewFromConfig(cfg, log.With().Str("component", "follower").Logger())
				if err != nil {
					return exitWith(2, err)
				}
				opts.Sources = append(opts.Sources, f)
			}
			if check {
				a, err := agent.New(context.Background(), cfg, opts)
				if err != nil {
					return exitWith(1, err)
				}
				st := a.Status()
				fmt.Fprintf(cmd.OutOrStdout(), "configuration and rules OK: %d files, %d rules (%d active)\n",
					len(st.Ruleset.Files), st.Ruleset.Rules.Total, st.Ruleset.Rules.Active)
				return nil
			}
			stopEvents, err := kubeEvents(cfg.Kubernetes, &opts, log)
			if err != nil {
				return exitWith(2, err)
			}
			defer stopEvents() // after the agent stopped: flush the last change's event
			if err := agent.Main(context.Background(), cfg, opts); err != nil {
				return exitWith(1, err)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&cfgFile, "config", "c", "", "agent configuration file (YAML); defaults apply to missing keys")
	f.StringArrayVarP(&rulesFiles, "rules", "r", nil, "rules file or directory to load after the configured ones (repeatable)")
	f.StringArrayVarP(&overrides, "option", "o", nil, "override a configuration key: dotted.key=value (repeatable)")
	f.BoolVar(&printDefault, "print-default-config", false, "print the commented default configuration and exit")
	f.BoolVar(&check, "check", false, "validate the configuration and load the rules, then exit")
	return cmd
}
