package output

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/falco-k8s/falco-k8s/agent/metrics"
	"github.com/falco-k8s/falco-k8s/internal/redact"
)

// HTTPConfig configures the HTTP output.
type HTTPConfig struct {
	URL            string
	Timeout        time.Duration
	MaxRetries     int
	InitialBackoff time.Duration
	MaxBackoff     time.Duration
	BufferSize     int
	// TLS is used for https URLs; nil uses the system roots.
	TLS *tls.Config
	// UserAgent defaults to "falco-k8s".
	UserAgent string
	// Name labels the output in metrics, logs and /status; empty is "http".
	Name string
}

// ClientTLS builds the client TLS configuration from files.
func ClientTLS(insecure bool, caFile, certFile, keyFile string) (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: insecure} //nolint:gosec // opt-in, documented as testing only
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("read http output CA: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("http output CA %s: no PEM certificates", caFile)
		}
		c.RootCAs = pool
	}
	if certFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("load http output client certificate: %w", err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}

// HTTP posts Falco JSON alerts, one per request, as Falco's http_output does and falcosidekick
// expects. A single sender keeps alerts in order; a bounded buffer absorbs bursts.
type HTTP struct {
	cfg    HTTPConfig
	logURL string // cfg.URL without credentials or query, for errors and logs
	client *http.Client
	ch     chan []byte
	m      *metrics.Metrics
	elog   errLog
	Counters

	ctx    context.Context // cancelled when Close gives up, to abort a post or a backoff wait
	cancel context.CancelFunc
	once   sync.Once
	done   chan struct{}
	// mu orders Send against Close so a Send never writes to the closed channel.
	mu     sync.RWMutex
	closed bool
}

// NewHTTP starts the output's sender goroutine.
func NewHTTP(cfg HTTPConfig, m *metrics.Metrics, log zerolog.Logger) *HTTP {
	if cfg.UserAgent == "" {
		cfg.UserAgent = "falco-k8s"
	}
	if cfg.BufferSize <= 0 {
		cfg.BufferSize = 1
	}
	if cfg.Name == "" {
		cfg.Name = "http"
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = cfg.TLS
	tr.MaxIdleConnsPerHost = 2
	ctx, cancel := context.WithCancel(context.Background())
	h := &HTTP{
		cfg: cfg, logURL: redactURL(cfg.URL), client: &http.Client{Transport: tr, Timeout: cfg.Timeout},
		ch: make(chan []byte, cfg.BufferSize), m: metricsOrNop(m),
		elog: errLog{log: log.With().Str("output", cfg.Name).Logger()},
		ctx:  ctx, cancel: cancel, done: make(chan struct{}),
	}
	go h.run()
	return h
}

// Name implements Output.
func (h *HTTP) Name() string { return h.cfg.Name }

// Counts implements StatusCounter.
func (h *HTTP) Counts() (sent, failed, dropped uint64) { return h.Counters.Load() }

// Send queues the JSON alert, or drops and counts it when the buffer is full.
func (h *HTTP) Send(a *Alert) {
	if a.JSON == nil {
		return
	}
	h.mu.RLock()
	defer h.mu.RUnlock()
	if h.closed {
		h.drop(errors.New("output closed"))
		return
	}
	select {
	case h.ch <- a.JSON:
	default:
		h.drop(errors.New("buffer full"))
	}
}

func (h *HTTP) drop(err error) {
	h.add(0, 0, 1)
	h.m.OutputDropped(h.cfg.Name)
	h.elog.error(err, "alert dropped by http output")
}

func (h *HTTP) run() {
	defer close(h.done)
	for body := range h.ch {
		if err := h.post(body); err != nil {
			h.drop(err)
		}
	}
}

// post sends one alert with retries: exponential backoff from InitialBackoff, doubling up to
// MaxBackoff, or the server's Retry-After when it gives one (capped at a minute so one bad
// header cannot stall the output).
func (h *HTTP) post(body []byte) error {
	backoff := h.cfg.InitialBackoff
	var lastErr error
	for attempt := 0; attempt <= h.cfg.MaxRetries; attempt++ {
		wait, err := h.once1(body)
		if err == nil {
			h.add(1, 0, 0)
			h.m.OutputSent(h.cfg.Name)
			return nil
		}
		lastErr = err
		h.add(0, 1, 0)
		h.m.OutputFailed(h.cfg.Name)
		if attempt == h.cfg.MaxRetries {
			break
		}
		if wait <= 0 {
			wait = backoff
			backoff = min(backoff*2, h.cfg.MaxBackoff)
		}
		t := time.NewTimer(min(wait, time.Minute))
		select {
		case <-t.C:
		case <-h.ctx.Done():
			t.Stop()
			return fmt.Errorf("shutting down: %w", lastErr)
		}
	}
	return fmt.Errorf("giving up after %d attempts: %w", h.cfg.MaxRetries+1, lastErr)
}

// once1 makes one attempt; wait is the server's Retry-After, if any.
func (h *HTTP) once1(body []byte) (wait time.Duration, err error) {
	req, err := http.NewRequestWithContext(h.ctx, http.MethodPost, h.cfg.URL, bytes.NewReader(body))
	if err != nil {
		// url.Parse's error quotes the whole URL, password included.
		return 0, fmt.Errorf("http output request for %s: invalid URL", h.logURL)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", h.cfg.UserAgent)
	resp, err := h.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			// net/http strips the password but keeps the query, which may hold a token.
			ue.URL = h.logURL
		}
		return 0, fmt.Errorf("post alert: %w", err)
	}
	// Drain (a little) and close so the connection is reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return 0, nil
	}
	if s, perr := strconv.Atoi(resp.Header.Get("Retry-After")); perr == nil && s > 0 {
		wait = time.Duration(s) * time.Second
	}
	return wait, fmt.Errorf("post alert: %s answered %s", h.logURL, resp.Status)
}

// redactURL returns u without user info and query, which may carry credentials.
func redactURL(u string) string { return redact.URL(u) }

// Close stops accepting alerts and waits for the buffer to be posted; when ctx ends first the
// pending posts are abandoned (and counted as dropped).
func (h *HTTP) Close(ctx context.Context) error {
	h.once.Do(func() {
		h.mu.Lock()
		h.closed = true
		close(h.ch)
		h.mu.Unlock()
	})
	select {
	case <-h.done:
		h.cancel()
		return nil
	case <-ctx.Done():
		h.cancel()
		<-h.done
		return fmt.Errorf("http output: alerts left unsent at shutdown: %w", ctx.Err())
	}
}
