package agent

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/falco-k8s/falco-k8s/agent/config"
	"github.com/falco-k8s/falco-k8s/agent/journal"
	"github.com/falco-k8s/falco-k8s/agent/metrics"
	"github.com/falco-k8s/falco-k8s/agent/output"
	"github.com/falco-k8s/falco-k8s/agent/queue"
	"github.com/falco-k8s/falco-k8s/agent/status"
	"github.com/falco-k8s/falco-k8s/agent/webhook"
	"github.com/falco-k8s/falco-k8s/engine"
	"github.com/falco-k8s/falco-k8s/internal/atomicfile"
)

// Options are the agent's non-configuration inputs.
type Options struct {
	// Version is reported in /status.
	Version string
	// Logger receives the agent's logs; the zero value logs nothing.
	Logger zerolog.Logger
	// Stdout is the stdout output's destination (os.Stdout when nil).
	Stdout io.Writer
	// Sources contribute rules files (the OCI follower).
	Sources []RuleSource
	// WebhookListener and ObservabilityListener, when set, are used instead of listening on the
	// configured addresses (tests pass 127.0.0.1:0 listeners).
	WebhookListener       net.Listener
	ObservabilityListener net.Listener
	// OnChange, when set, is called with every recorded ruleset change: start-up, reloads and
	// candidates, accepted or ignored (what /status shows as last_accepted / last_ignored). It
	// runs with the ruleset lock held, so it must return at once and not call the Agent; the
	// command uses it to queue Kubernetes Events.
	OnChange func(status.Change)
}

// Agent is one running agent. Create it with New, then call Run.
type Agent struct {
	cfg        *config.Config
	opts       Options
	log        zerolog.Logger
	m          *metrics.Metrics
	q          *queue.Queue
	budget     *queue.Budget // webhook.memory_budget, shared by the webhook and the workers
	wh         *webhook.Handler
	adm        http.Handler // the validating admission webhook (agent/admission)
	outs       *output.Set
	fileOut    *output.Writer
	hostname   string
	engineOpts engine.Options
	all        bool
	started    time.Time

	cur      atomic.Pointer[active]
	draining atomic.Bool
	cert     atomic.Pointer[tls.Certificate]

	mu           sync.Mutex // serialises ruleset rebuilds; guards the fields below
	generation   uint64
	inputs       uint64 // bumped when local files or a source's accepted set change
	localPaths   []string
	local        []engine.File
	sources      []RuleSource
	sourceOrder  []string
	sourceFiles  map[string][]SourceFile
	sourceStatus map[string]status.Source
	lastReload   *status.Change
	lastAccepted *status.Change
	lastIgnored  *status.Change

	whLn, obsLn, metricsLn net.Listener
	addrReady              chan struct{}

	journal    *journal.Journal // nil when disabled or unavailable (see journalErr)
	journalErr string

	falco      *falcoEngine           // engine: falco (falco.go); nil with engine: falco-k8s
	falcoToken atomic.Pointer[[]byte] // falco.alerts_token_file's token
}

// New validates cfg, opens the outputs and loads the start-up ruleset. It does not listen yet.
func New(ctx context.Context, cfg *config.Config, opts Options) (*Agent, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	a := &Agent{
		cfg: cfg, opts: opts, log: opts.Logger, hostname: cfg.Outputs.ResolvedHostname(),
		engineOpts: engine.Options{MinPriority: cfg.Rules.Priority()}, all: cfg.Rules.AllMatches(),
		started: time.Now(), localPaths: append([]string(nil), cfg.Rules.Files...),
		sourceFiles: map[string][]SourceFile{}, sourceStatus: map[string]status.Source{},
		addrReady: make(chan struct{}),
	}
	a.q = queue.New(cfg.Webhook.Queue.Capacity, int64(cfg.Webhook.Queue.MaxBytes))
	a.budget = queue.NewBudget(int64(cfg.Webhook.MemoryBudget))
	a.m = metrics.New(func() float64 { n, _ := a.q.Len(); return float64(n) },
		func() float64 { _, b := a.q.Len(); return float64(b) })
	if cfg.FalcoEngine() {
		fe, err := newFalcoEngine(ctx, cfg.Falco)
		if err != nil {
			return nil, err
		}
		a.falco = fe
		if cfg.Admission.Mode != "off" {
			a.log.Warn().Str("admission.mode", cfg.Admission.Mode).Msg(admissionUnavailable)
		}
	}
	for _, s := range opts.Sources {
		if _, dup := a.sourceFiles[s.Name()]; dup {
			return nil, fmt.Errorf("two rule sources named %q", s.Name())
		}
		a.sources = append(a.sources, s)
		a.sourceOrder = append(a.sourceOrder, s.Name())
		a.sourceFiles[s.Name()] = nil
	}
	if err := a.openOutputs(); err != nil {
		return nil, err
	}
	a.wh = webhook.New(webhook.Config{
		MaxEventSize: int(cfg.Webhook.MaxEventSize), MaxBodySize: int64(cfg.Webhook.MaxBodySize),
		MaxInflight: cfg.Webhook.MaxInflight, KeptParsers: cfg.EvaluationWorkers(), MaxKeptCost: config.KeptParserCost, Wait: cfg.Webhook.Queue.Wait, RetryAfter: cfg.Webhook.RetryAfter,
		RequireClientCert: cfg.Webhook.TLS.ClientCAFile != "",
		MaxEvents:         cfg.Webhook.MaxEvents, Budget: a.budget,
		BodyTimeout: cfg.Webhook.BodyTimeout, BodyGrace: cfg.Webhook.BodyGrace, MinBodyRate: int64(cfg.Webhook.MinBodyRate),
	}, a.q, a.m, a.log.With().Str("component", "webhook").Logger())
	a.adm = a.newAdmission()
	if err := a.loadCredentials(); err != nil {
		a.outs.Close(ctx) //nolint:errcheck // already failing
		return nil, err
	}
	if err := a.loadInitial(ctx); err != nil {
		a.outs.Close(ctx) //nolint:errcheck // already failing
		return nil, err
	}
	return a, nil
}

func (a *Agent) openOutputs() error {
	o := a.cfg.Outputs
	var outs []output.Filtered
	prio := func(s string) engine.Priority { p, _ := engine.ParsePriority(s); return p }
	if o.Stdout.Enabled && a.falco == nil { // engine: falco prints its alerts on its own stdout
		w := a.opts.Stdout
		if w == nil {
			w = os.Stdout
		}
		js := o.JSONFor(o.Stdout.JSON)
		outs = append(outs, output.Filtered{Output: output.NewStream("stdout", w, js, a.m, a.log), MinPriority: prio(o.Stdout.MinPriority), JSON: js})
	}
	if o.File.Path != "" {
		js := o.JSONFor(o.File.JSON)
		f, err := output.OpenFile(o.File.Path, js, a.m, a.log)
		if err != nil {
			return err
		}
		a.fileOut = f
		outs = append(outs, output.Filtered{Output: f, MinPriority: prio(o.File.MinPriority), JSON: js})
	}
	if o.HTTP.URL != "" || len(o.HTTP.ExtraURLs) > 0 {
		h := o.HTTP
		tlsCfg, err := output.ClientTLS(h.TLS.InsecureSkipVerify, h.TLS.CAFile, h.TLS.ClientCertFile, h.TLS.ClientKeyFile)
		if err != nil {
			if a.fileOut != nil {
				a.fileOut.Close(context.Background()) //nolint:errcheck // already failing
			}
			return err
		}
		urls := h.ExtraURLs
		if h.URL != "" {
			urls = append([]string{h.URL}, urls...)
		}
		for i, u := range urls {
			name := "http"
			if i > 0 {
				name = fmt.Sprintf("http-%d", i+1)
			}
			out := output.NewHTTP(output.HTTPConfig{URL: u, Timeout: h.Timeout, MaxRetries: h.MaxRetries, Name: name,
				InitialBackoff: h.InitialBackoff, MaxBackoff: h.MaxBackoff, BufferSize: h.BufferSize,
				// A copy each: the transport writes its HTTP/2 settings into the config.
				TLS: tlsCfg.Clone()}, a.m, a.log)
			outs = append(outs, output.Filtered{Output: out, MinPriority: prio(h.MinPriority), JSON: true})
		}
	}
	outs = append(outs, a.journalOutput()...) // last: opening it cannot fail the agent
	a.outs = output.NewSet(outs...)
	return nil
}

// loadCredentials (re)reads the bearer token and the serving certificate. On a reload failure
// the previous ones stay in use.
func (a *Agent) loadCredentials() error {
	w := a.cfg.Webhook
	if w.BearerTokenFile != "" {
		tok, err := os.ReadFile(w.BearerTokenFile)
		if err != nil {
			return fmt.Errorf("read webhook.bearer_token_file: %w", err)
		}
		if len(trimSpace(tok)) == 0 {
			// An empty token would silently turn authentication off.
			return fmt.Errorf("webhook.bearer_token_file %s is empty", w.BearerTokenFile)
		}
		a.wh.SetToken(tok)
	}
	if w.TLS.Enabled() {
		c, err := tls.LoadX509KeyPair(w.TLS.CertFile, w.TLS.KeyFile)
		if err != nil {
			return fmt.Errorf("load webhook TLS certificate: %w", err)
		}
		a.cert.Store(&c)
	}
	if a.falco != nil {
		tok, err := readOrCreateToken(a.cfg.Falco.AlertsTokenFile)
		if err != nil {
			return fmt.Errorf("read falco.alerts_token_file: %w", err)
		}
		if tok = trimSpace(tok); len(tok) == 0 {
			return fmt.Errorf("falco.alerts_token_file %s is empty", a.cfg.Falco.AlertsTokenFile)
		}
		a.falcoToken.Store(&tok)
	}
	return nil
}

// readOrCreateToken reads a token file, first creating it (0600, 32 random bytes in hex) when
// it does not exist: Falco's forwarder reads the same file, so nobody else has to make one.
func readOrCreateToken(path string) ([]byte, error) {
	tok, err := os.ReadFile(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return tok, err
	}
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, err
	}
	tok = []byte(hex.EncodeToString(b[:]))
	if err := atomicfile.WriteFileWith(path, append(tok, '\n'), 0o600, atomicfile.Options{MkdirAll: true}); err != nil {
		return nil, err
	}
	return tok, nil
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\n' || b[0] == '\r' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\n' || b[len(b)-1] == '\r' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

func (a *Agent) serverTLS() (*tls.Config, error) {
	t := a.cfg.Webhook.TLS
	c := &tls.Config{
		MinVersion: tls.VersionTLS12,
		// HTTP/1.1 only: over HTTP/2 kube-apiserver's audit client multiplexes every batch on
		// one connection, and Go's HTTP/2 server then took the webhook from ~40k to ~27k
		// events/s on 2 cores (flow control and one frame reader for all uploads). Keep-alive
		// connections serve AdmissionReviews without a handshake per request anyway.
		NextProtos: []string{"http/1.1"},
		// Through a pointer so SIGHUP can rotate the certificate without a restart.
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return a.cert.Load(), nil },
	}
	if t.ClientCAFile != "" {
		pem, err := os.ReadFile(t.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("read webhook.tls.client_ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("webhook.tls.client_ca_file %s: no PEM certificates", t.ClientCAFile)
		}
		c.ClientCAs = pool
		// Verify a certificate when one is given; the webhook handler then requires one, while
		// health checks on the same port (Pebble, kubelet) need none.
		c.ClientAuth = tls.VerifyClientCertIfGiven
	}
	return c, nil
}

// Handler returns the HTTP handler of the webhook listener (webhook plus, when sharing the
// port, the observability endpoints).
func (a *Agent) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle(a.cfg.Webhook.Path, a.wh)
	mux.Handle(a.cfg.Admission.Path, a.wh.Guard(a.adm)) // evaluated in the request, never queued
	if a.cfg.Observability.Listen == "" {
		a.observe(mux, a.wh.Guard)
	}
	return mux
}

// observe registers the observability endpoints (the route table is agent/status's, which
// agent/apiclient requests). guard wraps the ones that reveal request
// contents (/alerts, /rules) or change state (/reload, /sync): on the webhook's port they need
// the webhook's own credentials (bearer token, client certificate), so exposing the webhook does
// not expose the alert journal. Probes, /metrics and /status stay open for kubelet and Pebble.
func (a *Agent) observe(mux *http.ServeMux, guard func(http.Handler) http.Handler) {
	mux.HandleFunc(status.PathHealthz, func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") }) //nolint:errcheck
	mux.HandleFunc(status.PathReadyz, func(w http.ResponseWriter, _ *http.Request) {
		if !a.ready() {
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, "not ready\n") //nolint:errcheck
			return
		}
		io.WriteString(w, "ok\n") //nolint:errcheck
	})
	mux.Handle(status.PathMetrics, a.m.Handler())
	mux.HandleFunc(status.PathStatus, a.serveStatus)
	// The alert journal, for `falco-k8s alerts review` and `tune`.
	mux.Handle(status.PathAlerts, guard(a.alertsHandler()))
	mux.Handle("POST "+status.PathReload, guard(http.HandlerFunc(a.serveReload)))
	// The charm's sync-rules action: check followed references now (agent/follower).
	mux.Handle("POST "+status.PathSync, guard(http.HandlerFunc(a.serveSync)))
	mux.Handle(status.PathRules, guard(http.HandlerFunc(a.serveRules))) // the charm's show-rules action
	if a.falco != nil {
		// Falco's http_output: the token in the path is the credential (Falco sends no headers).
		mux.HandleFunc("POST "+status.PathFalcoAlerts+"{token}", a.serveFalcoAlerts)
		noToken := func(w http.ResponseWriter, _ *http.Request) {
			status.WriteError(w, http.StatusUnauthorized, "unauthorized: the path must end in the token of falco.alerts_token_file")
		}
		mux.HandleFunc("POST "+status.PathFalcoAlerts, noToken)
		mux.HandleFunc("POST "+strings.TrimSuffix(status.PathFalcoAlerts, "/"), noToken)
	}
}

// metricsHandler serves the metrics listener: /metrics and the probes only, because it is
// meant for the pod network without authentication (no /status, /alerts, /rules, /reload or
// /sync).
func (a *Agent) metricsHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") }) //nolint:errcheck
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !a.ready() {
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, "not ready\n") //nolint:errcheck
			return
		}
		io.WriteString(w, "ok\n") //nolint:errcheck
	})
	mux.Handle("/metrics", a.m.Handler())
	return mux
}

// MetricsAddr returns the metrics listener's address once Run is listening (nil without one).
func (a *Agent) MetricsAddr() net.Addr {
	<-a.addrReady
	if a.metricsLn == nil {
		return nil
	}
	return a.metricsLn.Addr()
}

func (a *Agent) ready() bool { return a.cur.Load() != nil && !a.draining.Load() }

// WebhookAddr returns the webhook listener's address once Run is listening (for tests); nil
// with engine: falco, where the port is Falco's.
func (a *Agent) WebhookAddr() net.Addr {
	<-a.addrReady
	if a.whLn == nil {
		return nil
	}
	return a.whLn.Addr()
}

// Metrics returns the agent's metrics.
func (a *Agent) Metrics() *metrics.Metrics { return a.m }

// Run serves until ctx is cancelled, then shuts down gracefully: /readyz turns 503, the
// listeners stop accepting and finish in-flight requests, the queue is evaluated, the outputs
// flushed. It returns nil after a clean shutdown.
func (a *Agent) Run(ctx context.Context) error {
	cfg := a.cfg.Webhook
	tlsCfg := (*tls.Config)(nil)
	if cfg.TLS.Enabled() {
		var err error
		if tlsCfg, err = a.serverTLS(); err != nil {
			return err
		}
	}
	whLn := a.opts.WebhookListener
	if a.falco != nil {
		// The webhook port is Falco's (its k8saudit plugin); the agent serves only its API.
		whLn = nil
	} else if whLn == nil {
		var err error
		if whLn, err = net.Listen("tcp", cfg.Listen); err != nil {
			return fmt.Errorf("webhook listen: %w", err)
		}
	}
	if tlsCfg != nil && whLn != nil {
		whLn = tls.NewListener(whLn, tlsCfg)
	}
	a.whLn = whLn
	newServer := func(h http.Handler) *http.Server {
		return &http.Server{
			Handler: h, ReadHeaderTimeout: cfg.ReadHeaderTimeout, ReadTimeout: cfg.ReadTimeout,
			WriteTimeout: cfg.WriteTimeout, IdleTimeout: cfg.IdleTimeout, MaxHeaderBytes: 64 << 10,
			ErrorLog: nil,
		}
	}
	whSrv := newServer(a.Handler())
	var obsSrv *http.Server
	if a.cfg.Observability.Listen != "" || a.opts.ObservabilityListener != nil {
		ln := a.opts.ObservabilityListener
		if ln == nil {
			var err error
			if ln, err = net.Listen("tcp", a.cfg.Observability.Listen); err != nil {
				whLn.Close()
				return fmt.Errorf("observability listen: %w", err)
			}
		}
		a.obsLn = ln
		mux := http.NewServeMux()
		// A separate listener is the operator's choice of exposure (the charm binds it to
		// 127.0.0.1), so its endpoints need no webhook credentials.
		a.observe(mux, func(h http.Handler) http.Handler { return h })
		obsSrv = newServer(mux)
	}
	var metricsSrv *http.Server
	if a.cfg.Observability.MetricsListen != "" {
		ln, err := net.Listen("tcp", a.cfg.Observability.MetricsListen)
		if err != nil {
			whLn.Close()
			if a.obsLn != nil {
				a.obsLn.Close()
			}
			return fmt.Errorf("observability metrics listen: %w", err)
		}
		a.metricsLn = ln
		metricsSrv = newServer(a.metricsHandler())
	}
	close(a.addrReady)

	workers := a.cfg.EvaluationWorkers()
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() { defer wg.Done(); a.worker() }()
	}

	srcCtx, cancelSources := context.WithCancel(ctx)
	var srcWG sync.WaitGroup
	for _, s := range a.sources {
		srcWG.Add(1)
		go func() {
			defer srcWG.Done()
			if err := s.Run(srcCtx, a); err != nil && !errors.Is(err, context.Canceled) {
				a.log.Error().Err(err).Str("source", s.Name()).Msg("rule source stopped")
			}
		}()
	}

	errc := make(chan error, 3)
	if whLn != nil {
		go func() { errc <- serve(whSrv, whLn) }()
	}
	if obsSrv != nil {
		go func() { errc <- serve(obsSrv, a.obsLn) }()
	}
	if metricsSrv != nil {
		go func() { errc <- serve(metricsSrv, a.metricsLn) }()
	}
	listen := "falco's k8saudit plugin"
	if whLn != nil {
		listen = whLn.Addr().String()
	}
	a.log.Info().Str("engine", a.cfg.Engine).Str("listen", listen).Str("path", cfg.Path).Bool("tls", tlsCfg != nil).
		Bool("mtls", cfg.TLS.ClientCAFile != "").Bool("bearer_token", cfg.BearerTokenFile != "").
		Int("workers", workers).Msg("agent serving")

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
		runErr = fmt.Errorf("serve: %w", runErr)
	}
	err := a.shutdown(whSrv, obsSrv, &wg, cancelSources, &srcWG)
	if metricsSrv != nil {
		// Last, so Prometheus sees the final counters while the queue drains.
		metricsSrv.Close()
	}
	return errors.Join(runErr, err)
}

func serve(s *http.Server, ln net.Listener) error {
	if err := s.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func (a *Agent) shutdown(whSrv, obsSrv *http.Server, workers *sync.WaitGroup, cancelSources func(), srcWG *sync.WaitGroup) error {
	start := time.Now()
	a.draining.Store(true)
	a.log.Info().Msg("shutting down: draining requests and the evaluation queue")
	ctx, cancel := context.WithTimeout(context.Background(), a.cfg.Webhook.ShutdownTimeout)
	defer cancel()
	cancelSources()
	var errs []error
	// Shutdown waits for in-flight requests, which either queue their batch or refuse it.
	if err := whSrv.Shutdown(ctx); err != nil {
		errs = append(errs, fmt.Errorf("webhook shutdown: %w", err))
		whSrv.Close()
	}
	a.q.Close()
	done := make(chan struct{})
	go func() { workers.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		n, _ := a.q.Len()
		errs = append(errs, fmt.Errorf("shutdown timeout: %d acknowledged events not evaluated", n))
		a.log.Error().Int("events", n).Msg("shutdown timeout with acknowledged events not evaluated")
	}
	srcWG.Wait()
	if err := a.outs.Close(ctx); err != nil {
		errs = append(errs, err)
	}
	if obsSrv != nil {
		if err := obsSrv.Shutdown(ctx); err != nil {
			obsSrv.Close()
		}
	}
	snap := a.m.Snapshot()
	a.log.Info().Dur("took", time.Since(start)).Uint64("received", snap.Received).Uint64("evaluated", snap.Evaluated).
		Uint64("alerts", snap.Alerts).Msg("agent stopped")
	return errors.Join(errs...)
}

// HUP handles SIGHUP: re-read credentials, reopen the file output and rebuild the ruleset from
// the configured files. Failures are logged and recorded; the agent keeps running as before.
func (a *Agent) HUP(ctx context.Context) {
	if err := a.loadCredentials(); err != nil {
		a.log.Error().Err(err).Msg("reloading webhook credentials failed; keeping the previous ones")
	}
	a.ReopenOutputs()
	if err := a.reload(ctx, TriggerSIGHUP); err != nil {
		a.log.Error().Err(err).Msg("SIGHUP reload failed")
	}
}

// ReopenOutputs reopens the file output (after log rotation).
func (a *Agent) ReopenOutputs() {
	if a.fileOut == nil {
		return
	}
	if err := a.fileOut.Reopen(); err != nil {
		a.log.Error().Err(err).Msg("reopening the alert file failed; still writing to the old one")
		return
	}
	a.log.Info().Str("path", a.cfg.Outputs.File.Path).Msg("alert file reopened")
}
