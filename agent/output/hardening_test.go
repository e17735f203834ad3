package output

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// A falcosidekick URL may carry basic-auth credentials or a token in its query; failures must
// not write them to the log.
func TestHTTPErrorsDoNotLogURLSecrets(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
	}))
	defer srv.Close()
	var logs syncBuf
	u := strings.Replace(srv.URL, "http://", "http://user:s3cretpass@", 1) + "/?token=s3crettoken"
	h := NewHTTP(HTTPConfig{URL: u, Timeout: time.Second, MaxRetries: 0, BufferSize: 10}, nil, zerolog.New(&logs))
	h.Send(&Alert{JSON: []byte(`{}`)})
	if err := h.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, failed, _ := h.Counts(); failed != 1 {
		t.Fatalf("failed = %d, want 1", failed)
	}
	out := logs.String()
	if !strings.Contains(out, "500") {
		t.Fatalf("failure not logged: %s", out)
	}
	if strings.Contains(out, "s3cret") {
		t.Errorf("log carries URL secrets: %s", out)
	}
}

func TestHTTPTransportErrorsDoNotLogURLSecrets(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	u := strings.Replace(srv.URL, "http://", "http://user:s3cretpass@", 1) + "/?token=s3crettoken"
	srv.Close() // connection refused
	var logs syncBuf
	h := NewHTTP(HTTPConfig{URL: u, Timeout: time.Second, MaxRetries: 0, BufferSize: 10}, nil, zerolog.New(&logs))
	h.Send(&Alert{JSON: []byte(`{}`)})
	if err := h.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	out := logs.String()
	if !strings.Contains(out, "alert dropped") {
		t.Fatalf("failure not logged: %s", out)
	}
	if strings.Contains(out, "s3cret") {
		t.Errorf("log carries URL secrets: %s", out)
	}
}

// SIGHUP can race shutdown: a Reopen after Close must not reopen the file (leaking it and
// writing alerts after the output was flushed and closed).
func TestFileReopenAfterClose(t *testing.T) {
	p := t.TempDir() + "/alerts.log"
	w, err := OpenFile(p, false, nil, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := w.Reopen(); err != nil {
		t.Fatal(err)
	}
	w.Send(&Alert{Text: "late"})
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != 0 {
		t.Errorf("written after Close: %q", b)
	}
}
