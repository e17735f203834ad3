package main

import (
	"os"

	"github.com/spf13/cobra"

	"github.com/falco-k8s/falco-k8s/internal/falcofwd"
	"github.com/falco-k8s/falco-k8s/internal/logging"
)

// newFalcoForwardCmd is the program Falco's program output pipes its JSON alerts to when the
// charm runs a real Falco (engine=falco): each line is posted to the agent.
func newFalcoForwardCmd() *cobra.Command {
	var cfg falcofwd.Config
	cmd := &cobra.Command{
		Use:   "falco-forward --url URL --token-file FILE",
		Short: "Post a real Falco's JSON alerts (one per line on stdin) to the agent's /falco/alerts/<token>",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := logging.New(os.Stderr, "json", "info")
			if err != nil {
				return err
			}
			st, err := falcofwd.Run(cmd.Context(), cmd.InOrStdin(), cfg, log)
			log.Info().Int("sent", st.Sent).Int("dropped", st.Dropped).Msg("falco alerts forwarder stopped")
			return err
		},
	}
	cmd.Flags().StringVar(&cfg.URL, "url", "", "the agent's alerts endpoint without the token, e.g. http://127.0.0.1:9766/falco/alerts/")
	cmd.Flags().StringVar(&cfg.TokenFile, "token-file", "", "file holding the token (the agent's falco.alerts_token_file)")
	return cmd
}
