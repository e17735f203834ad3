// Package webhook is the HTTP endpoint kube-apiserver's audit webhook backend posts to. A request
// is read (gzip or not) within a size limit, authenticated, checked to be audit.k8s.io Event or
// EventList JSON, has its oversized events dropped and counted, and is then admitted whole into
// the bounded evaluation queue. Only then does it get 200; a batch that does not fit gets 429
// with Retry-After, which kube-apiserver's client retries, so no event is acknowledged and lost.
//
// Memory is charged before it is allocated, against the budget shared with the workers
// (webhook.memory_budget, a queue.Budget): the body's size before it is read (its
// Content-Length, or max_body_size when unknown or gzipped), then the parse cost (scanCost's
// structural tokens x CostPerToken) before it is parsed. What does not fit within queue.wait gets
// 429; what could never fit, or has more than max_events events, gets 413. Parsing also takes one
// of max_inflight slots, taken only once the body is in, so slow uploads never hold one: a body
// must arrive within body_timeout, at min_body_rate bytes/s or more after body_grace, or the
// request gets 408 and its reservation is released.
//
// Status codes are chosen for kube-apiserver's retry behaviour: it retries every non-2xx answer
// five times with backoff and then drops the batch, so each refusal carries a clear message in
// the body (it ends up in the apiserver log) and the metrics say which kind it was.
package webhook

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/falco-k8s/falco-k8s/agent/metrics"
	"github.com/falco-k8s/falco-k8s/agent/queue"
	"github.com/falco-k8s/falco-k8s/engine/k8saudit"
)

// Config tunes the handler.
type Config struct {
	// MaxEventSize drops larger events (compact JSON size), keeping the rest of the batch.
	MaxEventSize int
	// MaxBodySize bounds the request body after decompression; larger requests get 413.
	MaxBodySize int64
	// MaxInflight bounds requests being parsed and checked at once (bodies being read do not
	// take a slot: their memory is in Budget).
	MaxInflight int
	// KeptParsers is how many decoders are kept for reuse between requests (the agent passes
	// its worker count: more cannot parse at once on that many cores).
	KeptParsers int
	// MaxKeptCost is the largest parse (charged cost) whose decoder is kept
	// (config.KeptParserCost); 0 keeps none.
	MaxKeptCost int64
	// MaxEvents refuses (413) a request holding more events; 0 is no limit.
	MaxEvents int
	// Budget is the memory budget shared with the evaluation workers; nil is unbounded.
	Budget *queue.Budget
	// BodyTimeout bounds reading one body; after BodyGrace it must arrive at MinBodyRate bytes
	// per second or more (0: no rate rule). Both are enforced with read deadlines, so a client
	// that stops sending is cut off too.
	BodyTimeout time.Duration
	BodyGrace   time.Duration
	MinBodyRate int64
	// Wait is how long a request may wait for memory or a slot before 429.
	Wait time.Duration
	// RetryAfter is sent with 429 and 503.
	RetryAfter time.Duration
	// RequireClientCert refuses requests without a verified client certificate (the TLS layer
	// verifies certificates that are given; health checks on the same port need none).
	RequireClientCert bool
}

// Handler serves POST requests of audit events.
type Handler struct {
	cfg   Config
	q     *queue.Queue
	m     *metrics.Metrics
	log   zerolog.Logger
	sem   chan struct{}
	token atomic.Pointer[[]byte]
	// kept holds decoders for reuse (a parser grows to the batches it parses; a fresh one per
	// batch costs a third of the CPU): at most KeptParsers, each from a parse of at most
	// maxPooledCost, so what they retain is bounded (agent/doc.go, the memory model).
	kept chan *k8saudit.Decoder
}

// New returns a handler feeding q.
func New(cfg Config, q *queue.Queue, m *metrics.Metrics, log zerolog.Logger) *Handler {
	if cfg.MaxInflight <= 0 {
		cfg.MaxInflight = 1
	}
	if cfg.Budget == nil {
		cfg.Budget = queue.NewBudget(math.MaxInt64 / 2)
	}
	if cfg.KeptParsers <= 0 {
		cfg.KeptParsers = 1
	}
	h := &Handler{cfg: cfg, q: q, m: m, log: log, sem: make(chan struct{}, cfg.MaxInflight),
		kept: make(chan *k8saudit.Decoder, cfg.KeptParsers)}
	return h
}

// SetToken sets the bearer token requests must carry; empty disables token authentication.
// The token is never logged.
func (h *Handler) SetToken(tok []byte) {
	tok = bytes.TrimSpace(tok)
	h.token.Store(&tok)
}

// reply writes a plain-text answer and records it.
func (h *Handler) reply(w http.ResponseWriter, start time.Time, code int, msg string) {
	if code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable {
		secs := int((h.cfg.RetryAfter + time.Second - 1) / time.Second)
		w.Header().Set("Retry-After", strconv.Itoa(max(secs, 1)))
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	io.WriteString(w, msg+"\n") //nolint:errcheck // the client may be gone; nothing to do
	h.m.Request(code, time.Since(start))
}

// Guard serves next only to requests that carry the webhook's credentials (the bearer token
// and, with mTLS, a verified client certificate); others get 401 and the reason.
func (h *Handler) Guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if why := h.authenticate(r); why != "" {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.Header().Set("WWW-Authenticate", `Bearer realm="falco-k8s"`)
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, why+"\n") //nolint:errcheck // the client may be gone
			return
		}
		next.ServeHTTP(w, r)
	})
}

// ServeHTTP implements http.Handler. The ?timeout= query kube-apiserver adds is ignored.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		h.reply(w, start, http.StatusMethodNotAllowed, "method not allowed: POST audit.k8s.io Event or EventList JSON")
		return
	}
	if msg := h.authenticate(r); msg != "" {
		if msg != "client certificate required" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="falco-k8s"`)
		}
		h.reply(w, start, http.StatusUnauthorized, msg)
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			h.reply(w, start, http.StatusUnsupportedMediaType, fmt.Sprintf("unsupported Content-Type %q: want application/json", ct))
			return
		}
	}
	budget := h.cfg.Budget
	if r.ContentLength > h.cfg.MaxBodySize {
		h.reply(w, start, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body of %d bytes exceeds the %d-byte limit (webhook.max_body_size): lower --audit-webhook-batch-max-size", r.ContentLength, h.cfg.MaxBodySize))
		return
	}
	// The body's memory is reserved before it is read; waiting briefly smooths kube-apiserver's
	// bursts (up to 15 concurrent batches) before resorting to 429.
	held, code, msg := h.reserve(r, time.Now().Add(h.cfg.Wait), h.bodyReservation(r), "the request body")
	if code != 0 {
		h.reply(w, start, code, msg)
		return
	}
	defer func() { budget.Release(held) }()

	body, code, err := h.readBody(w, r)
	if err != nil {
		if code == http.StatusRequestTimeout {
			w.Header().Set("Connection", "close")
		}
		h.reply(w, start, code, err.Error())
		return
	}
	if c := int64(cap(body)); c < held {
		budget.Release(held - c) // keep only what the body holds
		held = c
	}
	tokens, estEvents := scanCost(body)
	if h.cfg.MaxEvents > 0 && estEvents > h.cfg.MaxEvents {
		h.reply(w, start, http.StatusRequestEntityTooLarge, fmt.Sprintf("batch of about %d events exceeds the %d-event limit (webhook.max_events): lower --audit-webhook-batch-max-size", estEvents, h.cfg.MaxEvents))
		return
	}
	cost := int64(tokens) * CostPerToken
	if held+cost > budget.Size() {
		h.reply(w, start, http.StatusRequestEntityTooLarge, fmt.Sprintf("checking this batch takes about %d MiB (%d JSON tokens), more than the whole %d MiB memory budget (webhook.memory_budget): lower --audit-webhook-batch-max-size or raise webhook.memory_budget", (held+cost)>>20, tokens, budget.Size()>>20))
		return
	}
	waitUntil := time.Now().Add(h.cfg.Wait)
	parseHeld, code, msg := h.reserve(r, waitUntil, cost, "parsing the batch")
	if code != 0 {
		h.reply(w, start, code, msg)
		return
	}
	// A slot bounds how many requests are parsed at once (CPU); memory is in the budget.
	if code, msg := h.slot(r, waitUntil); code != 0 {
		budget.Release(parseHeld)
		h.reply(w, start, code, msg)
		return
	}
	events, oversize, err := h.check(body, cost)
	<-h.sem
	budget.Release(parseHeld)
	if err == nil && h.cfg.MaxEvents > 0 && events > h.cfg.MaxEvents {
		h.reply(w, start, http.StatusRequestEntityTooLarge, fmt.Sprintf("batch of %d events exceeds the %d-event limit (webhook.max_events): lower --audit-webhook-batch-max-size", events, h.cfg.MaxEvents))
		return
	}
	if err != nil {
		h.log.Debug().Err(err).Str("remote", r.RemoteAddr).Int("bytes", len(body)).Msg("rejected malformed audit payload")
		h.reply(w, start, http.StatusBadRequest, err.Error())
		return
	}
	if events > 0 {
		switch err := h.q.Put(&queue.Batch{Body: body, Events: events, AllFit: oversize == 0, Cost: cost}); {
		case errors.Is(err, queue.ErrFull):
			h.reply(w, start, http.StatusTooManyRequests, fmt.Sprintf("evaluation queue full (%d events): retry later", events))
			return
		case errors.Is(err, queue.ErrClosed):
			h.reply(w, start, http.StatusServiceUnavailable, "shutting down: retry later")
			return
		case err != nil:
			h.reply(w, start, http.StatusServiceUnavailable, err.Error())
			return
		}
		h.m.Received(events)
	}
	h.reply(w, start, http.StatusOK, "ok")
}

// bodyReservation is what reading r's body may take: its Content-Length (plus the byte that
// detects a longer body), or max_body_size when the length is unknown or the body is gzipped.
func (h *Handler) bodyReservation(r *http.Request) int64 {
	enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding")))
	if r.ContentLength >= 0 && (enc == "" || enc == "identity") {
		return r.ContentLength + 1
	}
	return h.cfg.MaxBodySize + 1
}

// reserve takes n bytes of the memory budget, waiting until deadline. It returns the amount
// held, or the status and message of the refusal.
func (h *Handler) reserve(r *http.Request, deadline time.Time, n int64, what string) (int64, int, string) {
	b := h.cfg.Budget
	if n > b.Size() {
		return 0, http.StatusRequestEntityTooLarge, fmt.Sprintf("%s needs %d MiB, more than the whole %d MiB memory budget (webhook.memory_budget)", what, n>>20, b.Size()>>20)
	}
	ctx, cancel := context.WithDeadline(r.Context(), deadline)
	defer cancel()
	held, err := b.Acquire(ctx, n)
	if err == nil {
		return held, 0, ""
	}
	if r.Context().Err() != nil {
		return 0, http.StatusServiceUnavailable, "request cancelled while waiting"
	}
	return 0, http.StatusTooManyRequests, fmt.Sprintf("webhook memory budget in use (%d of %d MiB, webhook.memory_budget): retry later", b.Used()>>20, b.Size()>>20)
}

// slot takes one of max_inflight parsing slots, waiting until deadline.
func (h *Handler) slot(r *http.Request, deadline time.Time) (int, string) {
	select {
	case h.sem <- struct{}{}:
		return 0, ""
	default:
	}
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case h.sem <- struct{}{}:
		return 0, ""
	case <-t.C:
		return http.StatusTooManyRequests, "too many concurrent requests: retry later"
	case <-r.Context().Done():
		return http.StatusServiceUnavailable, "request cancelled while waiting"
	}
}

// authenticate returns a refusal message, or "" when the request may proceed.
func (h *Handler) authenticate(r *http.Request) string {
	if h.cfg.RequireClientCert && (r.TLS == nil || len(r.TLS.VerifiedChains) == 0) {
		return "client certificate required"
	}
	tp := h.token.Load()
	if tp == nil || len(*tp) == 0 {
		return ""
	}
	return CheckBearer(r, *tp)
}

// CheckBearer returns "" when r carries `Authorization: Bearer <token>`, and otherwise why it
// is refused (never quoting either token). The one bearer check of the agent's listeners (the
// webhook's, the peer listener's).
func CheckBearer(r *http.Request, token []byte) string {
	auth := r.Header.Get("Authorization")
	const prefix = "Bearer "
	if len(auth) < len(prefix) || !strings.EqualFold(auth[:len(prefix)], prefix) {
		return "bearer token required"
	}
	// Constant time, so the comparison does not leak how much of a guess was right.
	if subtle.ConstantTimeCompare([]byte(strings.TrimSpace(auth[len(prefix):])), token) != 1 {
		return "invalid bearer token"
	}
	return ""
}

// readBody reads the whole body within MaxBodySize, decompressing gzip. Limits are checked on
// the decompressed size too, so a small gzip bomb cannot exhaust memory.
func (h *Handler) readBody(w http.ResponseWriter, r *http.Request) ([]byte, int, error) {
	limit := h.cfg.MaxBodySize
	if r.ContentLength > limit {
		return nil, http.StatusRequestEntityTooLarge, fmt.Errorf("request body of %d bytes exceeds the %d-byte limit (webhook.max_body_size): lower --audit-webhook-batch-max-size", r.ContentLength, limit)
	}
	body := io.ReadCloser(r.Body)
	if h.cfg.BodyTimeout > 0 || h.cfg.MinBodyRate > 0 {
		paced := newPacedBody(r.Body, http.NewResponseController(w), h.cfg.BodyTimeout, h.cfg.BodyGrace, h.cfg.MinBodyRate)
		defer paced.done()
		body = paced
	}
	var in io.Reader = http.MaxBytesReader(w, body, limit)
	switch enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding"))); enc {
	case "", "identity":
	case "gzip", "x-gzip":
		zr, err := gzip.NewReader(in)
		if err != nil {
			return nil, bodyErrCode(err), fmt.Errorf("invalid gzip body: %w", err)
		}
		defer zr.Close()
		in = zr
	default:
		return nil, http.StatusUnsupportedMediaType, fmt.Errorf("unsupported Content-Encoding %q: want gzip or none", enc)
	}
	size := 64 << 10
	if r.ContentLength > 0 {
		size = int(r.ContentLength) + 1
	}
	// Not bytes.Buffer.ReadFrom: it grows by doubling whenever fewer than 512 bytes are free, so
	// a body of known length would pin twice its size while queued (the queue accounts len).
	buf, err := readAll(io.LimitReader(in, limit+1), size)
	n := int64(len(buf))
	if err != nil {
		var slow *slowBodyError
		if errors.As(err, &slow) {
			return nil, http.StatusRequestTimeout, slow
		}
		code := bodyErrCode(err)
		if code == http.StatusRequestEntityTooLarge {
			return nil, code, fmt.Errorf("request body exceeds the %d-byte limit (webhook.max_body_size): lower --audit-webhook-batch-max-size", limit)
		}
		return nil, code, fmt.Errorf("read request body: %w", err)
	}
	if n > limit {
		return nil, http.StatusRequestEntityTooLarge, fmt.Errorf("decompressed request body exceeds the %d-byte limit (webhook.max_body_size)", limit)
	}
	return buf, 0, nil
}

// readAll reads r to EOF into a buffer of initial capacity size, growing it by append (about
// 1.25x for large buffers) only when it is full, so a body of known length fits exactly.
func readAll(r io.Reader, size int) ([]byte, error) {
	b := make([]byte, 0, size)
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
	}
}

func bodyErrCode(err error) int {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return http.StatusRequestEntityTooLarge
	}
	return http.StatusBadRequest
}

// check decodes the payload exactly as the evaluation workers will, counting the events that
// will be evaluated and recording per-event drops. The decoder is deterministic, so the workers
// see the same events and the handler's count is the number that will be evaluated.
func (h *Handler) check(body []byte, cost int64) (events, oversized int, err error) {
	var d *k8saudit.Decoder
	select {
	case d = <-h.kept:
	default:
		d = &k8saudit.Decoder{MaxEventSize: h.cfg.MaxEventSize}
	}
	if cost <= h.cfg.MaxKeptCost {
		// A decoder keeps its parser's memory: only those of ordinary batches are kept, so
		// a huge batch's memory is given back with its reservation.
		defer func() {
			select {
			case h.kept <- d:
			default:
			}
		}()
	}
	var oversize, badTS int
	d.OnDrop = func(err error) {
		// The decoder reports two kinds of per-event problems: oversize and bad timestamps.
		var tooLarge *k8saudit.EventTooLargeError
		if errors.As(err, &tooLarge) {
			oversize++
		} else {
			badTS++
		}
	}
	n, err := d.Decode(body, func(*k8saudit.Event) error { return nil })
	d.OnDrop = nil
	if err != nil {
		if errors.Is(err, k8saudit.ErrNotAuditEvent) {
			return 0, 0, errors.New("data not recognized as a k8s audit event: want an audit.k8s.io/v1 or v1beta1 Event or EventList")
		}
		return 0, 0, fmt.Errorf("malformed JSON: %v", err)
	}
	for range oversize {
		h.m.Dropped(metrics.DropOversize)
	}
	for range badTS {
		h.m.Dropped(metrics.DropBadTimestamp)
	}
	if oversize+badTS > 0 {
		h.log.Warn().Int("oversize", oversize).Int("bad_timestamp", badTS).Int("kept", n).
			Int("max_event_size", h.cfg.MaxEventSize).Msg("dropped audit events from a batch")
	}
	return n, oversize, nil
}
