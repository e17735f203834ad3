package agent

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/falco-k8s/falco-k8s/agent/config"
)

// Main builds and runs an agent with signal handling: SIGTERM/SIGINT shut it down gracefully,
// SIGHUP reloads (credentials, file output, rules files) and SIGUSR1 reopens the file output.
func Main(ctx context.Context, cfg *config.Config, opts Options) error {
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	a, err := New(ctx, cfg, opts)
	if err != nil {
		return err
	}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGUSR1)
	defer signal.Stop(sigs)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case s := <-sigs:
				a.log.Info().Str("signal", s.String()).Msg("signal received")
				if s == syscall.SIGHUP {
					a.HUP(ctx)
				} else {
					a.ReopenOutputs()
				}
			}
		}
	}()
	return a.Run(ctx)
}
