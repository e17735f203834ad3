// Package webhook is the HTTP endpoint kube-apiserver's audit webhook backend posts to. A request
// is read (gzip or not) within a size limit, authenticated, checked to be audit.k8s.io Event or
// EventList JSON, has its oversized events dropped and counted, and is then admitted whole into
// the bounded evaluation queue. Only then does it get 200; a batch that does not fit gets 429
// with Retry-After, which kube-apiserver's client retries, so no event is acknowledged and lost.
//
// Status codes are chosen for kube-apiserver's retry behaviour: it retries every non-2xx answer
// five times with backoff and then drops the batch, so each refusal carries a clear message in
// the body (it ends up in the apiserver log) and the metrics say which kind it was.
package webhook

import (
	"bytes"
	"compress/gzip"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync"
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
	// MaxInflight bounds requests being read and checked at once (and so their memory).
	MaxInflight int
	// Wait is how long a request may wait for a slot before 429.
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
	pool  sync.Pool // *k8saudit.Decoder
}

// New returns a handler feeding q.
func New(cfg Config, q *queue.Queue, m *metrics.Metrics, log zerolog.Logger) *Handler {
	if cfg.MaxInflight <= 0 {
		cfg.MaxInflight = 1
	}
	h := &Handler{cfg: cfg, q: q, m: m, log: log, sem: make(chan struct{}, cfg.MaxInflight)}
	h.pool.New = func() any { return &k8saudit.Decoder{MaxEventSize: cfg.MaxEventSize} }
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
	// A slot bounds the memory of bodies being read; waiting briefly smooths kube-apiserver's
	// bursts (up to 15 concurrent batches) before resorting to 429.
	select {
	case h.sem <- struct{}{}:
	default:
		t := time.NewTimer(h.cfg.Wait)
		select {
		case h.sem <- struct{}{}:
			t.Stop()
		case <-t.C:
			h.reply(w, start, http.StatusTooManyRequests, "too many concurrent requests: retry later")
			return
		case <-r.Context().Done():
			t.Stop()
			h.reply(w, start, http.StatusServiceUnavailable, "request cancelled while waiting")
			return
		}
	}
	defer func() { <-h.sem }()

	body, code, err := h.readBody(w, r)
	if err != nil {
		h.reply(w, start, code, err.Error())
		return
	}
	events, oversize, err := h.check(body)
	if err != nil {
		h.log.Debug().Err(err).Str("remote", r.RemoteAddr).Int("bytes", len(body)).Msg("rejected malformed audit payload")
		h.reply(w, start, http.StatusBadRequest, err.Error())
		return
	}
	if events > 0 {
		switch err := h.q.Put(&queue.Batch{Body: body, Events: events, AllFit: oversize == 0}); {
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

// authenticate returns a refusal message, or "" when the request may proceed.
func (h *Handler) authenticate(r *http.Request) string {
	if h.cfg.RequireClientCert && (r.TLS == nil || len(r.TLS.VerifiedChains) == 0) {
		return "client certificate required"
	}
	tp := h.token.Load()
	if tp == nil || len(*tp) == 0 {
		return ""
	}
	auth := r.Header.Get("Authorization")
	const prefix = "Bearer "
	if len(auth) < len(prefix) || !strings.EqualFold(auth[:len(prefix)], prefix) {
		return "bearer token required"
	}
	// Constant time, so the comparison does not leak how much of a guess was right.
	if subtle.ConstantTimeCompare([]byte(strings.TrimSpace(auth[len(prefix):])), *tp) != 1 {
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
	var in io.Reader = http.MaxBytesReader(w, r.Body, limit)
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
func (h *Handler) check(body []byte) (events, oversized int, err error) {
	d := h.pool.Get().(*k8saudit.Decoder)
	defer h.pool.Put(d)
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
