// Command falco-k8s is the whole product in one static binary: the Juju charm's dispatch, the
// audit-webhook agent, falcoctl-compatible artifact commands and the rule tools.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/falco-k8s/falco-k8s/actions"
	artifactcli "github.com/falco-k8s/falco-k8s/artifact/cli"
	"github.com/falco-k8s/falco-k8s/charm"
	"github.com/falco-k8s/falco-k8s/hooks"
)

// exitError carries a specific exit status out of a command.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func exitWith(code int, err error) error { return &exitError{code: code, err: err} }

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "falco-k8s",
		Short:         "Kubernetes audit threat detection with Falco rules, delivered as OCI artifacts",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newRulesCmd(), newReplayCmd(), newVersionCmd())
	root.AddCommand(newAgentCmd())
	root.AddCommand(newAlertsCmd())
	root.AddCommand(newFalcoForwardCmd())
	artifactcli.AddCommands(root)
	return root
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version and the rules engine version",
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintf(cmd.OutOrStdout(), "falco-k8s %s (rules engine %s)\n", version, engineVersion())
			return nil
		},
	}
}

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	// Multi-call: Juju runs this binary as the charm's dispatch (JUJU_DISPATCH_PATH set, or the
	// file is named dispatch); otherwise it is the CLI and the workload agent.
	if charm.IsDispatch(os.Args[0]) {
		os.Exit(charm.Main(version, hooks.Run, actions.Run))
	}
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	root := newRootCmd()
	root.SetArgs(args)
	err := root.Execute()
	if err == nil {
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil && ee.err.Error() != "" {
			fmt.Fprintln(os.Stderr, "Error:", ee.err)
		}
		return ee.code
	}
	fmt.Fprintln(os.Stderr, "Error:", err)
	return 1
}
