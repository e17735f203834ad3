package webhook

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/falco-k8s/falco-k8s/agent/metrics"
	"github.com/falco-k8s/falco-k8s/agent/queue"
)

func event(id string, pad int) string {
	return fmt.Sprintf(`{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":%q,"stage":"ResponseComplete","verb":"get","requestURI":"/api/v1/pods","user":{"username":"u"},"annotations":{"pad":%q},"stageTimestamp":"2024-01-01T00:00:00.000000Z"}`, id, strings.Repeat("x", pad))
}

func eventList(version string, events ...string) string {
	return fmt.Sprintf(`{"kind":"EventList","apiVersion":"audit.k8s.io/%s","metadata":{},"items":[%s]}`, version, strings.Join(events, ","))
}

func gz(s string) []byte {
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	w.Write([]byte(s))
	w.Close()
	return b.Bytes()
}

type fixture struct {
	h *Handler
	q *queue.Queue
	m *metrics.Metrics
}

func newFixture(capacity int, token string) *fixture {
	q := queue.New(capacity, 1<<30)
	m := metrics.New(func() float64 { return 0 }, func() float64 { return 0 })
	h := New(Config{MaxEventSize: 1024, MaxBodySize: 64 << 10, MaxInflight: 2, Wait: 10 * time.Millisecond, RetryAfter: 2 * time.Second}, q, m, zerolog.Nop())
	if token != "" {
		h.SetToken([]byte(token + "\n"))
	}
	return &fixture{h: h, q: q, m: m}
}

func (f *fixture) do(method string, body []byte, hdr map[string]string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, "/k8s-audit?timeout=30s", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for k, v := range hdr {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	rec := httptest.NewRecorder()
	f.h.ServeHTTP(rec, req)
	return rec
}

func TestStatusCodes(t *testing.T) {
	big := strings.Repeat(" ", 70<<10)
	bomb := gz(eventList("v1", event("a", 0)) + big) // small compressed, large decompressed
	tests := []struct {
		name       string
		method     string
		body       []byte
		hdr        map[string]string
		wantCode   int
		wantEvents int
		wantBody   string
		wantHeader map[string]string
	}{
		{name: "v1 EventList", body: []byte(eventList("v1", event("a", 0), event("b", 0))), wantCode: 200, wantEvents: 2},
		{name: "v1beta1 EventList", body: []byte(eventList("v1beta1", event("a", 0))), wantCode: 200, wantEvents: 1},
		{name: "single Event", body: []byte(event("a", 0)), wantCode: 200, wantEvents: 1},
		{name: "empty EventList", body: []byte(eventList("v1")), wantCode: 200},
		{name: "no content type", body: []byte(event("a", 0)), hdr: map[string]string{"Content-Type": ""}, wantCode: 200, wantEvents: 1},
		{name: "gzip", body: gz(eventList("v1", event("a", 0))), hdr: map[string]string{"Content-Encoding": "gzip"}, wantCode: 200, wantEvents: 1},
		{name: "oversize event dropped, rest kept", body: []byte(eventList("v1", event("a", 0), event("big", 2000), event("c", 0))), wantCode: 200, wantEvents: 2},
		{name: "GET", method: http.MethodGet, wantCode: 405, wantHeader: map[string]string{"Allow": "POST"}},
		{name: "PUT", method: http.MethodPut, body: []byte(event("a", 0)), wantCode: 405},
		{name: "wrong content type", body: []byte(event("a", 0)), hdr: map[string]string{"Content-Type": "text/plain"}, wantCode: 415},
		{name: "unknown encoding", body: []byte(event("a", 0)), hdr: map[string]string{"Content-Encoding": "br"}, wantCode: 415},
		{name: "body too large", body: []byte(eventList("v1", event("a", 0)) + big), wantCode: 413, wantBody: "webhook.max_body_size"},
		{name: "gzip bomb", body: bomb, hdr: map[string]string{"Content-Encoding": "gzip"}, wantCode: 413},
		{name: "bad gzip", body: []byte("not gzip"), hdr: map[string]string{"Content-Encoding": "gzip"}, wantCode: 400, wantBody: "invalid gzip body"},
		{name: "malformed JSON", body: []byte(`{"kind":"EventList","items":[`), wantCode: 400, wantBody: "malformed JSON"},
		{name: "empty body", body: nil, wantCode: 400, wantBody: "malformed JSON"},
		{name: "not an audit event", body: []byte(`{"kind":"Pod"}`), wantCode: 400, wantBody: "data not recognized as a k8s audit event"},
		{name: "EventList without items", body: []byte(`{"kind":"EventList"}`), wantCode: 400},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(100, "")
			method := tc.method
			if method == "" {
				method = http.MethodPost
			}
			rec := f.do(method, tc.body, tc.hdr)
			if rec.Code != tc.wantCode {
				t.Fatalf("code = %d (%s), want %d", rec.Code, rec.Body, tc.wantCode)
			}
			if !strings.Contains(rec.Body.String(), tc.wantBody) {
				t.Errorf("body %q does not contain %q", rec.Body, tc.wantBody)
			}
			for k, v := range tc.wantHeader {
				if got := rec.Header().Get(k); got != v {
					t.Errorf("header %s = %q, want %q", k, got, v)
				}
			}
			if n, _ := f.q.Len(); n != tc.wantEvents {
				t.Errorf("queued %d events, want %d", n, tc.wantEvents)
			}
			snap := f.m.Snapshot()
			if int(snap.Received) != tc.wantEvents {
				t.Errorf("received counter %d, want %d", snap.Received, tc.wantEvents)
			}
			if tc.name == "oversize event dropped, rest kept" && snap.Dropped[metrics.DropOversize] != 1 {
				t.Errorf("dropped = %v, want 1 oversize", snap.Dropped)
			}
			if tc.wantCode >= 300 && snap.Rejected[fmt.Sprint(tc.wantCode)] != 1 {
				t.Errorf("rejected = %v", snap.Rejected)
			}
		})
	}
}

func TestQueueFull429(t *testing.T) {
	f := newFixture(3, "")
	if rec := f.do(http.MethodPost, []byte(eventList("v1", event("a", 0), event("b", 0))), nil); rec.Code != 200 {
		t.Fatalf("first batch: %d", rec.Code)
	}
	rec := f.do(http.MethodPost, []byte(eventList("v1", event("c", 0), event("d", 0))), nil)
	if rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") != "2" {
		t.Fatalf("full queue: code %d Retry-After %q", rec.Code, rec.Header().Get("Retry-After"))
	}
	// Nothing of the refused batch was taken.
	if n, _ := f.q.Len(); n != 2 || f.m.Snapshot().Received != 2 {
		t.Fatalf("queue holds %d events", n)
	}
	// Once evaluated, room is back and the retry succeeds.
	f.q.Done(<-f.q.C())
	if rec := f.do(http.MethodPost, []byte(eventList("v1", event("c", 0), event("d", 0))), nil); rec.Code != 200 {
		t.Fatalf("retry: %d", rec.Code)
	}
	f.q.Close()
	if rec := f.do(http.MethodPost, []byte(event("e", 0)), nil); rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" {
		t.Fatalf("closed queue: %d", rec.Code)
	}
}

func TestInflightLimit429(t *testing.T) {
	f := newFixture(100, "")
	f.h.sem <- struct{}{}
	f.h.sem <- struct{}{}
	if rec := f.do(http.MethodPost, []byte(event("a", 0)), nil); rec.Code != http.StatusTooManyRequests {
		t.Fatalf("code %d, want 429", rec.Code)
	}
}

func TestBearerToken(t *testing.T) {
	f := newFixture(100, "s3cret")
	body := []byte(event("a", 0))
	for _, tc := range []struct {
		auth string
		code int
	}{{"", 401}, {"Bearer wrong", 401}, {"Basic czNjcmV0", 401}, {"Bearer s3cret", 200}, {"bearer s3cret", 200}} {
		rec := f.do(http.MethodPost, body, map[string]string{"Authorization": tc.auth})
		if rec.Code != tc.code {
			t.Errorf("Authorization %q: code %d, want %d", tc.auth, rec.Code, tc.code)
		}
		if strings.Contains(rec.Body.String(), "s3cret") {
			t.Errorf("token echoed in the answer")
		}
	}
}

func TestClientCertRequired(t *testing.T) {
	f := newFixture(100, "")
	f.h.cfg.RequireClientCert = true
	if rec := f.do(http.MethodPost, []byte(event("a", 0)), nil); rec.Code != 401 {
		t.Fatalf("no client certificate: %d", rec.Code)
	}
}

// FuzzWebhookBody checks that no body makes the handler panic or answer 5xx, and that 200 is
// given only with the events queued.
func FuzzWebhookBody(f *testing.F) {
	f.Add([]byte(eventList("v1", event("a", 0), event("b", 0))), false)
	f.Add([]byte(event("a", 2000)), false)
	f.Add([]byte(`[{"kind":"Event","stageTimestamp":"x"},[]]`), false)
	f.Add(gz(eventList("v1", event("a", 0))), true)
	f.Add([]byte(`{"kind":"EventList","items":{}}`), false)
	f.Add([]byte("\x1f\x8b\x08"), true)
	f.Fuzz(func(t *testing.T, body []byte, gzipped bool) {
		fx := newFixture(1000, "")
		var hdr map[string]string
		if gzipped {
			hdr = map[string]string{"Content-Encoding": "gzip"}
		}
		rec := fx.do(http.MethodPost, body, hdr)
		if rec.Code >= 500 {
			t.Fatalf("code %d for bad input: %s", rec.Code, rec.Body)
		}
		n, _ := fx.q.Len()
		if rec.Code != 200 && n != 0 {
			t.Fatalf("refused (%d) but queued %d events", rec.Code, n)
		}
		if uint64(n) != fx.m.Snapshot().Received {
			t.Fatalf("queued %d, counted %d", n, fx.m.Snapshot().Received)
		}
	})
}
