package falcofwd

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// agent is a stand-in for the agent's /falco/alerts/<token> endpoint.
type agent struct {
	mu       sync.Mutex
	token    string
	fail     int // answer 503 this many times first
	received []string
	paths    []string
}

func (a *agent) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	defer a.mu.Unlock()
	b, _ := io.ReadAll(r.Body)
	a.paths = append(a.paths, r.URL.Path)
	if r.URL.Path != "/falco/alerts/"+a.token || r.Header.Get("Content-Type") != "application/json" {
		w.WriteHeader(http.StatusNotFound)
		return
	}
	if a.fail > 0 {
		a.fail--
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	a.received = append(a.received, string(b))
	w.WriteHeader(http.StatusNoContent)
}

func TestRun(t *testing.T) {
	const alert1, alert2 = `{"rule":"A","output":"a"}`, `{"rule":"B","output":"b"}`
	for _, tc := range []struct {
		name        string
		input       string
		fileToken   string // token in the file at the start ("" = no file yet)
		agentToken  string
		fail        int
		maxLine     int
		rotate      bool // the agent's token changes after the first alert (file rewritten)
		wantRecv    []string
		wantDropped int
	}{
		{name: "lines", input: alert1 + "\n\n" + alert2 + "\n", fileToken: "t1", agentToken: "t1", wantRecv: []string{alert1, alert2}},
		{name: "last line without newline", input: alert1 + "\n" + alert2, fileToken: "t1", agentToken: "t1", wantRecv: []string{alert1, alert2}},
		{name: "agent restarting", input: alert1 + "\n", fileToken: "t1", agentToken: "t1", fail: 2, wantRecv: []string{alert1}},
		{name: "agent never answers", input: alert1 + "\n", fileToken: "t1", agentToken: "t1", fail: 100, wantDropped: 1},
		{name: "too long dropped, next kept", input: strings.Repeat("x", 300) + "\n" + alert1 + "\n", maxLine: 100, fileToken: "t1", agentToken: "t1",
			wantRecv: []string{alert1}, wantDropped: 1},
		{name: "token re-read when refused", input: alert1 + "\n" + alert2 + "\n", fileToken: "t1", agentToken: "t1", rotate: true,
			wantRecv: []string{alert1, alert2}},
		{name: "wrong token everywhere", input: alert1 + "\n", fileToken: "t1", agentToken: "other", wantDropped: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := &agent{token: tc.agentToken, fail: tc.fail}
			srv := httptest.NewServer(a)
			defer srv.Close()
			tokenFile := filepath.Join(t.TempDir(), "token")
			if tc.fileToken != "" {
				if err := os.WriteFile(tokenFile, []byte(tc.fileToken+"\n"), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			in := io.Reader(strings.NewReader(tc.input))
			if tc.rotate {
				// After the first line, the agent restarts with a new token and rewrites the file.
				pr, pw := io.Pipe()
				in = pr
				first, rest, _ := strings.Cut(tc.input, "\n")
				go func() {
					pw.Write([]byte(first + "\n")) //nolint:errcheck
					for {
						a.mu.Lock()
						n := len(a.received)
						if n == 1 {
							a.token = "t2"
						}
						a.mu.Unlock()
						if n == 1 {
							break
						}
						time.Sleep(time.Millisecond)
					}
					os.WriteFile(tokenFile, []byte("t2"), 0o600) //nolint:errcheck
					pw.Write([]byte(rest))                       //nolint:errcheck
					pw.Close()
				}()
			}
			st, err := Run(context.Background(), in, Config{URL: srv.URL + "/falco/alerts/", TokenFile: tokenFile, MaxLine: tc.maxLine,
				Backoff: time.Millisecond, Attempts: 4}, zerolog.Nop())
			if err != nil {
				t.Fatal(err)
			}
			a.mu.Lock()
			defer a.mu.Unlock()
			if strings.Join(a.received, "|") != strings.Join(tc.wantRecv, "|") || st.Dropped != tc.wantDropped || st.Sent != len(tc.wantRecv) {
				t.Fatalf("received %q, stats %+v; want %q, %d dropped", a.received, st, tc.wantRecv, tc.wantDropped)
			}
		})
	}
}

// An error never shows the URL (it carries the token).
func TestErrorsHideToken(t *testing.T) {
	tokenFile := filepath.Join(t.TempDir(), "token")
	os.WriteFile(tokenFile, []byte("s3cr3t-token"), 0o600) //nolint:errcheck
	var logs bytes.Buffer
	st, err := Run(context.Background(), strings.NewReader("{}\n"), Config{URL: "http://127.0.0.1:1/falco/alerts/", TokenFile: tokenFile,
		Backoff: time.Millisecond, Attempts: 2}, zerolog.New(&logs))
	if err != nil || st.Dropped != 1 {
		t.Fatalf("stats %+v, err %v", st, err)
	}
	if strings.Contains(logs.String(), "s3cr3t") {
		t.Fatalf("log shows the token: %s", logs.String())
	}
}

func FuzzReadLine(f *testing.F) {
	f.Add([]byte("a\nbb\n\nccc"), 2)
	f.Add([]byte(strings.Repeat("x", 70000)+"\ny"), 100)
	f.Fuzz(func(t *testing.T, data []byte, max int) {
		if max < 1 || max > 1<<20 {
			return
		}
		r := bufio.NewReaderSize(bytes.NewReader(data), 16)
		var lines int
		for {
			line, tooLong, err := readLine(r, max)
			if tooLong && line != nil && len(line) > 0 {
				t.Fatalf("too long line kept")
			}
			if len(line) > max {
				t.Fatalf("line of %d bytes over %d", len(line), max)
			}
			if bytes.ContainsAny(line, "\n") {
				t.Fatalf("line holds a newline")
			}
			lines++
			if err != nil {
				break
			}
		}
		if want := bytes.Count(data, []byte("\n")) + 1; lines != want {
			t.Fatalf("%d lines, want %d", lines, want)
		}
	})
}
