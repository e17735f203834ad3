package agent

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// lockedBuffer collects logs written from several goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestNoSecretInLogsOrStatus: an HTTP output whose URL carries a password and a token in its
// query fails to post; the failure is logged and counted, and neither secret appears in the
// logs, /status or /metrics.
func TestNoSecretInLogsOrStatus(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close() // nothing listens: every post fails with connection refused
	var logs lockedBuffer
	log := zerolog.New(&logs).Level(zerolog.TraceLevel) // not Debug: startAgent silences that
	ta := startAgent(t, []string{"outputs.http.url=http://alice:PASSWORD-S3CRET@" + dead + "/post?token=TOKEN-S3CRET",
		"outputs.http.max_retries=1", "outputs.http.initial_backoff=10ms"}, Options{Logger: log})
	if code := post(t, ta.url, batch("sec", 0, 3)); code != 200 {
		t.Fatalf("post %d", code)
	}
	waitFor(t, func() bool {
		for _, o := range ta.Status().Outputs {
			if o.Name == "http" && o.Failed+o.Dropped >= 3 {
				return true
			}
		}
		return false
	})
	get := func(path string) string {
		resp, err := http.Get(ta.url + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	status, metrics := get("/status"), get("/metrics")
	time.Sleep(50 * time.Millisecond) // let the sender log its last failure
	ta.stop(t)
	if !strings.Contains(logs.String(), dead) {
		t.Fatalf("the failure was not logged with the output's address:\n%s", logs.String())
	}
	for what, text := range map[string]string{"logs": logs.String(), "/status": status, "/metrics": metrics} {
		for _, secret := range []string{"PASSWORD-S3CRET", "TOKEN-S3CRET", "alice"} {
			if strings.Contains(text, secret) {
				t.Errorf("%s contains %q:\n%s", what, secret, text)
			}
		}
	}
}
