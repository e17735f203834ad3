package output

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/falco-k8s/falco-k8s/engine"
)

func alert(n int) *Alert {
	return &Alert{Rule: "r", Priority: engine.PriorityWarning, Text: "text " + string(rune('a'+n)), JSON: []byte(`{"n":` + string(rune('0'+n)) + `}`)}
}

func TestHTTPRetriesWithBackoff(t *testing.T) {
	var calls atomic.Int32
	var mu sync.Mutex
	var got [][]byte
	var times []time.Time
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		times = append(times, time.Now())
		mu.Unlock()
		if r.Header.Get("Content-Type") != "application/json" || r.Method != http.MethodPost {
			t.Errorf("request %s %s", r.Method, r.Header.Get("Content-Type"))
		}
		if calls.Add(1) <= 2 {
			http.Error(w, "not yet", http.StatusServiceUnavailable)
			return
		}
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, b)
		mu.Unlock()
	}))
	defer srv.Close()
	h := NewHTTP(HTTPConfig{URL: srv.URL, Timeout: time.Second, MaxRetries: 3, InitialBackoff: 20 * time.Millisecond, MaxBackoff: time.Second, BufferSize: 10}, nil, zerolog.Nop())
	h.Send(alert(1))
	if err := h.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || string(got[0]) != `{"n":1}` {
		t.Fatalf("server got %q", got)
	}
	sent, failed, dropped := h.Counts()
	if sent != 1 || failed != 2 || dropped != 0 {
		t.Fatalf("sent %d failed %d dropped %d", sent, failed, dropped)
	}
	// Exponential: the second wait is about twice the first.
	d1, d2 := times[1].Sub(times[0]), times[2].Sub(times[1])
	if d1 < 20*time.Millisecond || d2 < 40*time.Millisecond {
		t.Fatalf("backoff waits %v, %v; want >= 20ms, 40ms", d1, d2)
	}
}

func TestHTTPGivesUpAndHonoursRetryAfter(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			w.Header().Set("Retry-After", "1")
		}
		http.Error(w, "busy", http.StatusTooManyRequests)
	}))
	defer srv.Close()
	h := NewHTTP(HTTPConfig{URL: srv.URL, Timeout: time.Second, MaxRetries: 1, InitialBackoff: time.Millisecond, MaxBackoff: time.Millisecond, BufferSize: 10}, nil, zerolog.Nop())
	start := time.Now()
	h.Send(alert(1))
	h.Close(context.Background())
	if el := time.Since(start); el < 900*time.Millisecond {
		t.Fatalf("Retry-After: 1 not honoured (took %v)", el)
	}
	if sent, failed, dropped := h.Counts(); sent != 0 || failed != 2 || dropped != 1 {
		t.Fatalf("sent %d failed %d dropped %d", sent, failed, dropped)
	}
}

func TestHTTPBufferFullDropsWithoutBlocking(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-release }))
	defer srv.Close()
	h := NewHTTP(HTTPConfig{URL: srv.URL, Timeout: 5 * time.Second, BufferSize: 2}, nil, zerolog.Nop())
	start := time.Now()
	for i := range 10 {
		h.Send(alert(i))
	}
	if el := time.Since(start); el > 100*time.Millisecond {
		t.Fatalf("Send blocked for %v", el)
	}
	_, _, dropped := h.Counts()
	if dropped < 7 {
		t.Fatalf("dropped %d, want >= 7 (1 in flight + 2 buffered)", dropped)
	}
	close(release)
	h.Close(context.Background())
	sent, _, dropped2 := h.Counts()
	if sent+dropped2 != 10 {
		t.Fatalf("sent %d + dropped %d != 10", sent, dropped2)
	}
}

func TestHTTPCloseTimeout(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "down", http.StatusBadGateway)
	}))
	defer srv.Close()
	h := NewHTTP(HTTPConfig{URL: srv.URL, Timeout: time.Second, MaxRetries: 10, InitialBackoff: time.Second, MaxBackoff: time.Second, BufferSize: 5}, nil, zerolog.Nop())
	h.Send(alert(1))
	h.Send(alert(2))
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := h.Close(ctx); err == nil {
		t.Fatal("Close with stuck alerts returned nil")
	}
	if _, _, dropped := h.Counts(); dropped != 2 {
		t.Fatalf("dropped %d, want 2", dropped)
	}
	h.Send(alert(3)) // after Close: counted, no panic
}

func TestFileReopen(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "alerts.log")
	w, err := OpenFile(p, false, nil, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	w.Send(alert(0))
	if err := os.Rename(p, p+".1"); err != nil {
		t.Fatal(err)
	}
	w.Send(alert(1)) // still into the rotated file
	if err := w.Reopen(); err != nil {
		t.Fatal(err)
	}
	w.Send(alert(2))
	if err := w.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	old, _ := os.ReadFile(p + ".1")
	cur, _ := os.ReadFile(p)
	if string(old) != "text a\ntext b\n" || string(cur) != "text c\n" {
		t.Fatalf("rotated %q, current %q", old, cur)
	}
	st, _ := os.Stat(p)
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, want 0600", st.Mode().Perm())
	}
}

func TestWriterJSONAndMinPriority(t *testing.T) {
	var buf bytes.Buffer
	w := NewStream("stdout", &buf, true, nil, zerolog.Nop())
	s := NewSet(Filtered{Output: w, MinPriority: engine.PriorityError, JSON: true})
	s.Send(&Alert{Priority: engine.PriorityWarning, Text: "low", JSON: []byte(`{"low":1}`)})
	s.Send(&Alert{Priority: engine.PriorityCritical, Text: "high", JSON: []byte(`{"high":1}`)})
	if buf.String() != "{\"high\":1}\n" {
		t.Fatalf("got %q", buf.String())
	}
	if !s.NeedJSON() {
		t.Fatal("NeedJSON false")
	}
}

func TestInternalAlert(t *testing.T) {
	now := time.Date(2024, 1, 2, 3, 4, 5, 6, time.UTC)
	a := Internal(now, "Falco internal: hot restart failure", engine.PriorityCritical, "Falco internal: hot restart failure: x.yaml:3:1: error: <b>", "h")
	var doc map[string]any
	if err := json.Unmarshal(a.JSON, &doc); err != nil {
		t.Fatal(err)
	}
	if doc["source"] != "internal" || doc["priority"] != "Critical" || doc["hostname"] != "h" || doc["time"] != "2024-01-02T03:04:05.000000006Z" {
		t.Fatalf("doc %v", doc)
	}
	if _, ok := doc["tags"]; ok {
		t.Fatal("internal alerts have no tags")
	}
	if !strings.Contains(string(a.JSON), "<b>") || !strings.HasSuffix(a.Text, "Critical Falco internal: hot restart failure: x.yaml:3:1: error: <b>") {
		t.Fatalf("json %s text %s", a.JSON, a.Text)
	}
	keys := []string{`"hostname"`, `"output"`, `"output_fields"`, `"priority"`, `"rule"`, `"source"`, `"time"`}
	last := -1
	for _, k := range keys {
		i := strings.Index(string(a.JSON), k)
		if i < last {
			t.Fatalf("keys not sorted: %s", a.JSON)
		}
		last = i
	}
}
