// Package falcofwd owns the hop from a real Falco's alerts to the falco-k8s agent (engine=falco):
// Falco's program output (keep_alive) writes one JSON alert per line to the forwarder's stdin,
// and the forwarder POSTs each to the agent's POST /falco/alerts/<token>. It exists because
// Falco's http_output is not in every Falco build (the minimal build refuses it) while the
// program output is; it also keeps the token out of Falco's configuration and command line.
//
// The forwarder never stops reading while stdin is open (Falco would block on a full pipe):
// an alert the agent cannot take after the retries is dropped and counted in the log.
package falcofwd

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/rs/zerolog"
)

// Config is where and how alerts are posted.
type Config struct {
	// URL is the agent's alerts endpoint without the token, e.g.
	// http://127.0.0.1:9766/falco/alerts/.
	URL string
	// TokenFile holds the token (written by the agent); re-read when the agent refuses it.
	TokenFile string
	// MaxLine bounds one alert; longer lines are dropped (memory stays bounded).
	MaxLine int
	// Attempts per alert, with Backoff doubling between them (the agent restarting).
	Attempts int
	Backoff  time.Duration
	Client   *http.Client
}

// Defaults fills unset fields.
func (c *Config) defaults() {
	if c.MaxLine <= 0 {
		c.MaxLine = 1 << 20
	}
	if c.Attempts <= 0 {
		c.Attempts = 6
	}
	if c.Backoff <= 0 {
		c.Backoff = 250 * time.Millisecond
	}
	if c.Client == nil {
		c.Client = &http.Client{Timeout: 10 * time.Second}
	}
}

// Stats count what a Run did.
type Stats struct{ Sent, Dropped int }

// errRefused is the agent refusing the token: re-read it and try again.
var errRefused = errors.New("agent refused the alerts token")

// Run forwards every line of in until EOF or ctx ends.
func Run(ctx context.Context, in io.Reader, cfg Config, log zerolog.Logger) (Stats, error) {
	cfg.defaults()
	if cfg.URL == "" || cfg.TokenFile == "" {
		return Stats{}, fmt.Errorf("falco-forward: --url and --token-file are required")
	}
	var st Stats
	r := bufio.NewReaderSize(in, 64<<10)
	var token string
	for {
		line, tooLong, err := readLine(r, cfg.MaxLine)
		if tooLong {
			st.Dropped++
			log.Warn().Int("max_bytes", cfg.MaxLine).Msg("alert longer than the limit dropped")
		} else if len(bytes.TrimSpace(line)) > 0 {
			var perr error
			if token, perr = post(ctx, cfg, token, line, log); perr != nil {
				st.Dropped++
				log.Error().Err(perr).Int("dropped", st.Dropped).Msg("alert not delivered to the agent; dropped")
			} else {
				st.Sent++
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				return st, nil
			}
			return st, fmt.Errorf("read alerts: %w", err)
		}
		if ctx.Err() != nil {
			return st, ctx.Err()
		}
	}
}

// readLine returns the next line without its newline; a line over max is consumed and
// reported as tooLong without being kept.
func readLine(r *bufio.Reader, max int) (line []byte, tooLong bool, err error) {
	var buf []byte
	for {
		chunk, err := r.ReadSlice('\n')
		if !tooLong {
			if len(buf)+len(bytes.TrimRight(chunk, "\r\n")) > max {
				tooLong, buf = true, nil
			} else {
				buf = append(buf, chunk...)
			}
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		return bytes.TrimRight(buf, "\r\n"), tooLong, err
	}
}

// post delivers one alert, reading the token when it is not known yet or was refused.
func post(ctx context.Context, cfg Config, token string, body []byte, log zerolog.Logger) (string, error) {
	delay := cfg.Backoff
	var last error
	for attempt := 0; attempt < cfg.Attempts; attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return token, ctx.Err()
			case <-time.After(delay):
			}
			delay *= 2
		}
		if token == "" {
			b, err := os.ReadFile(cfg.TokenFile)
			if err != nil {
				// The agent writes it when it starts: wait for it like for the agent itself.
				last = fmt.Errorf("token file: %w", err)
				continue
			}
			token = strings.TrimSpace(string(b))
		}
		last = send(ctx, cfg, token, body)
		if last == nil {
			return token, nil
		}
		if errors.Is(last, errRefused) {
			token = ""
		}
		log.Debug().Err(last).Int("attempt", attempt+1).Msg("posting alert to the agent")
	}
	return token, last
}

func send(ctx context.Context, cfg Config, token string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, cfg.URL+token, bytes.NewReader(body))
	if err != nil {
		// The URL holds the token: never show it.
		return fmt.Errorf("alerts request: invalid --url")
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := cfg.Client.Do(req)
	if err != nil {
		var ue interface{ Unwrap() error }
		if errors.As(err, &ue) {
			return fmt.Errorf("post alert: %w", ue.Unwrap()) // without the URL
		}
		return fmt.Errorf("post alert failed")
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) //nolint:errcheck // draining for reuse
	resp.Body.Close()
	switch {
	case resp.StatusCode/100 == 2:
		return nil
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden || resp.StatusCode == http.StatusNotFound:
		return fmt.Errorf("%w (HTTP %d)", errRefused, resp.StatusCode)
	}
	return fmt.Errorf("agent answered HTTP %d", resp.StatusCode)
}
