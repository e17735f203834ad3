package webhook

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/valyala/fastjson"

	"github.com/falco-k8s/falco-k8s/agent/metrics"
	"github.com/falco-k8s/falco-k8s/agent/queue"
)

// countingBody records whether the handler read the body at all.
type countingBody struct {
	r     io.Reader
	reads atomic.Int64
}

func (c *countingBody) Read(p []byte) (int, error) { c.reads.Add(1); return c.r.Read(p) }

func budgetFixture(budget int64, maxEvents int) (*Handler, *queue.Queue, *queue.Budget) {
	q := queue.New(1<<20, 1<<30)
	m := metrics.New(func() float64 { return 0 }, func() float64 { return 0 })
	b := queue.NewBudget(budget)
	h := New(Config{MaxEventSize: 1024, MaxBodySize: 1 << 20, MaxInflight: 2, MaxEvents: maxEvents, Budget: b,
		Wait: 20 * time.Millisecond, RetryAfter: time.Second}, q, m, zerolog.Nop())
	return h, q, b
}

// TestMemoryBudget: a request is charged its body size before the body is read and its parse
// cost before it is parsed; what does not fit now gets 429 without reading a byte, what never
// could gets 413, and everything is given back once the batch is queued.
func TestMemoryBudget(t *testing.T) {
	var evs []string
	for i := range 100 {
		evs = append(evs, event(fmt.Sprint(i), 0))
	}
	body := []byte(eventList("v1", evs...))
	tokens, _ := scanCost(body)
	cost := int64(len(body)) + 1 + int64(tokens)*CostPerToken

	post := func(h *Handler, body []byte) (*httptest.ResponseRecorder, *countingBody) {
		cb := &countingBody{r: bytes.NewReader(body)}
		req := httptest.NewRequest(http.MethodPost, "/k8s-audit", cb)
		req.ContentLength = int64(len(body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec, cb
	}

	t.Run("busy budget: 429 before reading", func(t *testing.T) {
		h, q, b := budgetFixture(cost+1000, 0)
		held, _ := b.Acquire(context.Background(), b.Size()-int64(len(body))/2)
		rec, cb := post(h, body)
		if rec.Code != http.StatusTooManyRequests || !strings.Contains(rec.Body.String(), "webhook.memory_budget") || cb.reads.Load() != 0 {
			t.Fatalf("code %d (%s), %d reads: want 429 before reading", rec.Code, rec.Body.String(), cb.reads.Load())
		}
		b.Release(held)
		if rec, _ := post(h, body); rec.Code != 200 {
			t.Fatalf("with the budget free: %d %s", rec.Code, rec.Body.String())
		}
		if b.Used() != 0 {
			t.Fatalf("%d bytes still reserved after the batch was queued", b.Used())
		}
		bt := <-q.C()
		if bt.Events != 100 || bt.Cost != int64(tokens)*CostPerToken {
			t.Fatalf("batch %d events, cost %d", bt.Events, bt.Cost)
		}
	})
	t.Run("busy budget after the body: 429 before parsing", func(t *testing.T) {
		h, _, b := budgetFixture(cost+1000, 0)
		// Leave room for the body but not for parsing it.
		held, _ := b.Acquire(context.Background(), b.Size()-int64(len(body))-10)
		rec, _ := post(h, body)
		if rec.Code != http.StatusTooManyRequests {
			t.Fatalf("code %d (%s), want 429", rec.Code, rec.Body.String())
		}
		b.Release(held)
		if b.Used() != 0 {
			t.Fatalf("%d bytes still reserved after a refusal", b.Used())
		}
	})
	t.Run("never fits: 413", func(t *testing.T) {
		h, _, _ := budgetFixture(cost-1, 0)
		rec, _ := post(h, body)
		if rec.Code != http.StatusRequestEntityTooLarge || !strings.Contains(rec.Body.String(), "webhook.memory_budget") {
			t.Fatalf("code %d (%s), want 413 naming webhook.memory_budget", rec.Code, rec.Body.String())
		}
	})
	t.Run("too many events: 413 before parsing", func(t *testing.T) {
		h, _, b := budgetFixture(1<<30, 99)
		rec, _ := post(h, body)
		if rec.Code != http.StatusRequestEntityTooLarge || !strings.Contains(rec.Body.String(), "webhook.max_events") {
			t.Fatalf("code %d (%s), want 413 naming webhook.max_events", rec.Code, rec.Body.String())
		}
		if b.Used() != 0 {
			t.Fatalf("%d bytes still reserved", b.Used())
		}
	})
}

// TestSlowUploadsDoNotBlockBatches: clients that start a body and stop (or trickle) occupy more
// connections than there are parsing slots; a legitimate batch still gets 200 meanwhile, and
// the slow ones get 408 once the progress rule is broken, long before read_timeout.
func TestSlowUploadsDoNotBlockBatches(t *testing.T) {
	q := queue.New(1<<20, 1<<30)
	m := metrics.New(func() float64 { return 0 }, func() float64 { return 0 })
	h := New(Config{MaxEventSize: 1024, MaxBodySize: 1 << 20, MaxInflight: 2, Budget: queue.NewBudget(64 << 20),
		BodyTimeout: 20 * time.Second, BodyGrace: 300 * time.Millisecond, MinBodyRate: 4 << 10,
		Wait: 200 * time.Millisecond, RetryAfter: time.Second}, q, m, zerolog.Nop())
	srv := httptest.NewServer(h)
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	body := eventList("v1", event("a", 0), event("b", 0))

	type slow struct {
		conn net.Conn
		stop chan struct{}
	}
	var slows []slow
	for i := range 4 { // twice the slots
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(c, "POST /k8s-audit HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body[:10])
		s := slow{conn: c, stop: make(chan struct{})}
		if i%2 == 1 { // trickles a byte every 100ms: 10 B/s, under the 4 KiB/s rule
			go func() {
				for k := 10; k < len(body)-1; k++ {
					select {
					case <-s.stop:
						return
					case <-time.After(100 * time.Millisecond):
					}
					if _, err := c.Write([]byte{body[k]}); err != nil {
						return
					}
				}
			}()
		}
		slows = append(slows, s)
	}
	time.Sleep(100 * time.Millisecond) // the slow requests are in their handlers
	resp, err := http.Post(srv.URL+"/k8s-audit", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("legitimate batch: %d %s", resp.StatusCode, msg)
	}
	for i, s := range slows {
		s.conn.SetReadDeadline(time.Now().Add(10 * time.Second)) //nolint:errcheck
		r, err := http.ReadResponse(bufio.NewReader(s.conn), nil)
		if err != nil {
			t.Fatalf("slow client %d: %v", i, err)
		}
		b, _ := io.ReadAll(r.Body)
		if r.StatusCode != http.StatusRequestTimeout || !strings.Contains(string(b), "webhook.min_body_rate") {
			t.Errorf("slow client %d: %d %s, want 408 naming webhook.min_body_rate", i, r.StatusCode, b)
		}
		close(s.stop)
		s.conn.Close()
	}
}

// FuzzScanCost: the cost scan never under-counts what the parser builds (every parsed value
// but the root follows a token), whatever the input.
func FuzzScanCost(f *testing.F) {
	f.Add([]byte(eventList("v1", event("a", 0), event("b", 3))))
	f.Add([]byte(`[[{"kind":"Event"}],{"a":"\"{[,:"}]`))
	f.Add([]byte(`{"a":[1,2,{"b":[]}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		tokens, events := scanCost(b)
		if tokens < 1 || events < 0 || events > tokens {
			t.Fatalf("tokens %d, events %d", tokens, events)
		}
		var p fastjson.Parser
		v, err := p.ParseBytes(b)
		if err != nil {
			return
		}
		if n := countValues(v); n > tokens {
			t.Fatalf("%d values parsed, %d tokens counted", n, tokens)
		}
	})
}

func countValues(v *fastjson.Value) int {
	n := 1
	switch v.Type() {
	case fastjson.TypeArray:
		for _, e := range v.GetArray() {
			n += countValues(e)
		}
	case fastjson.TypeObject:
		v.GetObject().Visit(func(_ []byte, e *fastjson.Value) { n += countValues(e) })
	}
	return n
}
