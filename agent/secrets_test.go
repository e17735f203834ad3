package agent

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/falco-k8s/falco-k8s/agent/status"
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

// TestJournalHealthInStatus: a directory in place of a journal segment is set aside at start-up,
// and /status says so (journal.quarantined, last_error) while alerts are journaled as usual.
func TestJournalHealthInStatus(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "journal", "seg-0000000000000007.log"), 0o700); err != nil {
		t.Fatal(err)
	}
	ta := startAgent(t, []string{"rules.state_dir=" + dir}, Options{})
	if code := post(t, ta.url, batch("j", 0, 3)); code != 200 {
		t.Fatalf("post %d", code)
	}
	waitFor(t, func() bool { j := ta.Status().Journal; return j != nil && j.Segments == 1 })
	var st status.Status
	getJSON(t, ta.url+"/status", &st)
	if j := st.Journal; j == nil || !j.Available || j.Quarantined != 1 || !strings.Contains(j.LastError, "seg-0000000000000007.log") {
		t.Fatalf("journal status %+v", st.Journal)
	}
}
