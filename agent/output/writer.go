package output

import (
	"context"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/rs/zerolog"

	"github.com/falco-k8s/falco-k8s/agent/metrics"
)

// Writer writes one alert per line to an io.Writer (stdout) or a file it can reopen.
type Writer struct {
	name string
	json bool
	m    *metrics.Metrics
	elog errLog
	Counters

	mu   sync.Mutex
	w    io.Writer
	f    *os.File // nil for plain writers
	path string
	buf  []byte
	// closed: Close ran; a late Reopen (SIGHUP racing shutdown) must not reopen the file.
	closed bool
}

// NewStream writes to w (stdout); json selects Falco's JSON alert over the text line.
func NewStream(name string, w io.Writer, json bool, m *metrics.Metrics, log zerolog.Logger) *Writer {
	return &Writer{name: name, w: w, json: json, m: metricsOrNop(m), elog: errLog{log: log.With().Str("output", name).Logger()}}
}

// OpenFile appends to path, creating it with mode 0600 because alerts can carry request
// contents (user names, object specs).
func OpenFile(path string, json bool, m *metrics.Metrics, log zerolog.Logger) (*Writer, error) {
	w := &Writer{name: "file", json: json, path: path, m: metricsOrNop(m), elog: errLog{log: log.With().Str("output", "file").Logger()}}
	f, err := openAppend(path)
	if err != nil {
		return nil, err
	}
	w.f, w.w = f, f
	return w, nil
}

func openAppend(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open alert file: %w", err)
	}
	return f, nil
}

// Name implements Output.
func (w *Writer) Name() string { return w.name }

// Counts implements StatusCounter.
func (w *Writer) Counts() (sent, failed, dropped uint64) { return w.Counters.Load() }

// Send writes the alert line with a single write call, so lines from concurrent workers never
// interleave and a reader of the file never sees half a line followed by another alert.
func (w *Writer) Send(a *Alert) {
	w.mu.Lock()
	w.buf = w.buf[:0]
	if w.json && a.JSON != nil {
		w.buf = append(w.buf, a.JSON...)
	} else {
		w.buf = append(w.buf, a.Text...)
	}
	w.buf = append(w.buf, '\n')
	_, err := w.w.Write(w.buf)
	w.mu.Unlock()
	if err != nil {
		w.add(0, 1, 1)
		w.m.OutputFailed(w.name)
		w.m.OutputDropped(w.name)
		w.elog.error(err, "writing alert failed")
		return
	}
	w.add(1, 0, 0)
	w.m.OutputSent(w.name)
}

// Reopen reopens the file at its path (after logrotate moved it away); a no-op for streams. On
// failure the old file stays in use.
func (w *Writer) Reopen() error {
	if w.path == "" {
		return nil
	}
	f, err := openAppend(w.path)
	if err != nil {
		return err
	}
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		f.Close()
		return nil
	}
	old := w.f
	w.f, w.w = f, f
	w.mu.Unlock()
	if old != nil {
		return old.Close()
	}
	return nil
}

// Close implements Output: it syncs and closes a file; streams are left open.
func (w *Writer) Close(context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.closed = true
	if w.f == nil {
		return nil
	}
	err := w.f.Sync()
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	w.f = nil
	w.w = io.Discard
	return err
}
