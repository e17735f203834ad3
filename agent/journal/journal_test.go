package journal

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/falco-k8s/falco-k8s/agent/apiclient"
	"github.com/falco-k8s/falco-k8s/alerts"
	"github.com/falco-k8s/falco-k8s/engine"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

var t0 = time.Date(2025, 6, 1, 10, 0, 0, 0, time.UTC)

func alertJSON(at time.Time, rule, prio, ns, pad string) []byte {
	nsv := "null"
	if ns != "" {
		nsv = fmt.Sprintf("%q", ns)
	}
	return fmt.Appendf(nil, `{"hostname":"h","output":"x%s","output_fields":{"ka.target.namespace":%s,"ka.user.name":"u"},"priority":%q,"rule":%q,"source":"k8s_audit","tags":[],"time":%q}`,
		pad, nsv, prio, rule, at.UTC().Format("2006-01-02T15:04:05.000000000Z"))
}

func open(t *testing.T, dir string, c *clock, maxBytes int64, maxAge time.Duration) *Journal {
	t.Helper()
	j, err := Open(Options{Dir: dir, MaxBytes: maxBytes, MaxAge: maxAge, BufferSize: 100000, Now: c.Now, SyncInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return j
}

func closeJ(t *testing.T, j *Journal) {
	t.Helper()
	if err := j.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func flush(t *testing.T, j *Journal) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := j.Flush(ctx); err != nil {
		t.Fatal(err)
	}
}

func query(t *testing.T, j *Journal, f alerts.Filter) []*alerts.Alert {
	t.Helper()
	raw, _, err := j.Query(context.Background(), f)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]*alerts.Alert, len(raw))
	for i, r := range raw {
		if out[i], err = alerts.Parse(r); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func TestFiltersAndRestart(t *testing.T) {
	dir := t.TempDir()
	c := &clock{t: t0}
	j := open(t, dir, c, 1<<20, 24*time.Hour)
	rules := []string{"R1", "R2"}
	prios := []string{"Critical", "Warning", "Notice"}
	nss := []string{"a", "b", ""}
	for i := range 30 {
		j.Append(alertJSON(t0.Add(time.Duration(i)*time.Minute), rules[i%2], prios[i%3], nss[i%3], ""))
	}
	flush(t, j)
	closeJ(t, j)

	// Everything survives a restart, and new alerts go on after the old ones.
	j = open(t, dir, c, 1<<20, 24*time.Hour)
	defer closeJ(t, j)
	j.Append(alertJSON(t0.Add(30*time.Minute), "R1", "Critical", "a", ""))
	flush(t, j)

	for _, tc := range []struct {
		name string
		f    alerts.Filter
		want int
	}{
		{"all", alerts.Filter{}, 31},
		{"since", alerts.Filter{Since: t0.Add(20 * time.Minute)}, 11},
		{"until", alerts.Filter{Until: t0.Add(9 * time.Minute)}, 10},
		{"namespace", alerts.Filter{Namespace: "a"}, 11},
		{"rule", alerts.Filter{Rule: "R2"}, 15},
		{"priority at least warning", alerts.Filter{Priority: engine.PriorityWarning, HasPriority: true}, 21},
		{"combined", alerts.Filter{Rule: "R1", Namespace: "a", Since: t0.Add(10 * time.Minute)}, 4},
		{"limit keeps the newest", alerts.Filter{Limit: 5}, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := query(t, j, tc.f)
			if len(got) != tc.want {
				t.Fatalf("got %d alerts, want %d", len(got), tc.want)
			}
			for i := 1; i < len(got); i++ {
				if got[i].Time.Before(got[i-1].Time) {
					t.Fatal("not oldest first")
				}
			}
			if tc.f.Limit > 0 && !got[len(got)-1].Time.Equal(t0.Add(30*time.Minute)) {
				t.Fatalf("limit dropped the newest: %v", got[len(got)-1].Time)
			}
		})
	}
	if _, n := j.Size(); n != 2 {
		t.Fatalf("segments after a restart: %d, want 2 (a restart starts a new one)", n)
	}
}

func TestSizeLimit(t *testing.T) {
	dir := t.TempDir()
	c := &clock{t: t0}
	const maxBytes = 64 << 10
	j := open(t, dir, c, maxBytes, 24*time.Hour)
	defer closeJ(t, j)
	pad := strings.Repeat("p", 900)
	for i := range 1000 {
		j.Append(alertJSON(t0.Add(time.Duration(i)*time.Second), "R", "Warning", "a", pad))
		if i%50 == 0 {
			flush(t, j)
		}
	}
	flush(t, j)
	size, segs := j.Size()
	var onDisk int64
	files, _ := filepath.Glob(filepath.Join(dir, "seg-*.log"))
	for _, f := range files {
		st, _ := os.Stat(f)
		onDisk += st.Size()
	}
	if size > maxBytes || onDisk != size || len(files) != segs {
		t.Fatalf("size %d (on disk %d, %d files, %d segments), limit %d", size, onDisk, len(files), segs, maxBytes)
	}
	got := query(t, j, alerts.Filter{})
	if len(got) < 40 || !got[len(got)-1].Time.Equal(t0.Add(999*time.Second)) {
		t.Fatalf("kept %d alerts, newest %v", len(got), got[len(got)-1].Time)
	}
	if _, _, dropped := j.Counts(); dropped != 0 {
		t.Fatalf("dropped %d", dropped)
	}
}

func TestAgeLimit(t *testing.T) {
	dir := t.TempDir()
	c := &clock{t: t0}
	j := open(t, dir, c, 1<<20, time.Hour)
	defer closeJ(t, j)
	for i := range 10 {
		j.Append(alertJSON(c.Now(), "old", "Warning", "a", ""))
		flush(t, j)
		c.Add(time.Duration(i) * time.Second)
	}
	c.Add(50 * time.Minute)
	j.Append(alertJSON(c.Now(), "new", "Warning", "a", ""))
	flush(t, j)
	if n := len(query(t, j, alerts.Filter{})); n != 11 {
		t.Fatalf("before max_age: %d alerts", n)
	}
	// An hour after the old alerts were written they are no longer served, and maintenance
	// deletes their segment even without new alerts.
	c.Add(15 * time.Minute)
	got := query(t, j, alerts.Filter{})
	if len(got) != 1 || got[0].Rule != "new" {
		t.Fatalf("after max_age: %d alerts", len(got))
	}
	j.maintain()
	if _, segs := j.Size(); segs != 1 {
		t.Fatalf("segments after expiry: %d", segs)
	}
	c.Add(2 * time.Hour)
	j.maintain()
	if size, segs := j.Size(); segs != 0 || size != 0 {
		t.Fatalf("after everything expired: %d bytes, %d segments", size, segs)
	}
}

// TestDiskFull writes to /dev/full: every write fails with ENOSPC. The journal counts the
// failures and drops, Send never blocks, and it recovers when writes work again.
func TestDiskFull(t *testing.T) {
	if _, err := os.Stat("/dev/full"); err != nil {
		t.Skip("no /dev/full")
	}
	dir := t.TempDir()
	c := &clock{t: t0}
	reg := prometheus.NewRegistry()
	var full sync.Mutex
	diskFull := true
	j, err := Open(Options{Dir: dir, MaxBytes: 1 << 20, MaxAge: time.Hour, Now: c.Now, Registerer: reg,
		create: func(p string) (segFile, error) {
			full.Lock()
			defer full.Unlock()
			if diskFull {
				return os.OpenFile("/dev/full", os.O_WRONLY, 0)
			}
			return os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o600)
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer closeJ(t, j)
	for range 20 {
		j.Append(alertJSON(t0, "R", "Warning", "a", ""))
	}
	flush(t, j)
	_, failed, dropped := j.Counts()
	if failed == 0 || dropped != 20 || !strings.Contains(j.LastError(), "no space") {
		t.Fatalf("failed %d dropped %d last error %q", failed, dropped, j.LastError())
	}
	if v := gathered(t, reg, "falco_k8s_journal_dropped_total", DropWriteError); v != 20 {
		t.Fatalf("journal_dropped_total{reason=write_error} = %v", v)
	}
	if v := gathered(t, reg, "falco_k8s_journal_write_errors_total", ""); v == 0 {
		t.Fatal("journal_write_errors_total not counted")
	}
	// Space is back: a failed segment is abandoned, so the next write opens a fresh one.
	full.Lock()
	diskFull = false
	full.Unlock()
	j.Append(alertJSON(t0, "R", "Warning", "a", ""))
	flush(t, j)
	if got := query(t, j, alerts.Filter{}); len(got) != 1 {
		t.Fatalf("after recovery: %d alerts", len(got))
	}
}

func TestBufferFullDropsWithoutBlocking(t *testing.T) {
	c := &clock{t: t0}
	j, err := Open(Options{Dir: t.TempDir(), MaxBytes: 1 << 20, MaxAge: time.Hour, BufferSize: 1, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	j.mu.Lock() // the writer is stuck behind a "slow disk"
	start := time.Now()
	for range 1000 {
		j.Append(alertJSON(t0, "R", "Warning", "a", ""))
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("Append blocked for %s", d)
	}
	j.mu.Unlock()
	flush(t, j)
	sent, _, dropped := j.Counts()
	if sent+dropped != 1000 || dropped < 900 {
		t.Fatalf("sent %d dropped %d", sent, dropped)
	}
	closeJ(t, j)
	j.Append(alertJSON(t0, "R", "Warning", "a", ""))
	if _, _, d := j.Counts(); d != dropped+1 {
		t.Fatal("append after close not counted as dropped")
	}
}

func TestCorruptRecordsSkipped(t *testing.T) {
	dir := t.TempDir()
	c := &clock{t: t0}
	j := open(t, dir, c, 1<<20, time.Hour)
	for i := range 3 {
		j.Append(alertJSON(t0.Add(time.Duration(i)*time.Second), "R", "Warning", "a", ""))
	}
	flush(t, j)
	closeJ(t, j)
	files, _ := filepath.Glob(filepath.Join(dir, "seg-*.log"))
	b, _ := os.ReadFile(files[0])
	i := strings.Index(string(b), `"rule":"R"`)
	b[i+8] = 'X' // a flipped byte in the first record
	b = append(b, "0badc0de 123 {\"torn"...)
	if err := os.WriteFile(files[0], b, 0o600); err != nil {
		t.Fatal(err)
	}
	j = open(t, dir, c, 1<<20, time.Hour)
	defer closeJ(t, j)
	if got := query(t, j, alerts.Filter{}); len(got) != 2 {
		t.Fatalf("%d alerts, want the 2 intact ones", len(got))
	}
	if j.corrupt.Load() != 2 {
		t.Fatalf("corrupt %d", j.corrupt.Load())
	}
}

func TestLockedByAnotherAgent(t *testing.T) {
	dir := t.TempDir()
	c := &clock{t: t0}
	j := open(t, dir, c, 1<<20, time.Hour)
	defer closeJ(t, j)
	if _, err := Open(Options{Dir: dir, MaxBytes: 1 << 20, MaxAge: time.Hour}); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second open: %v", err)
	}
}

func TestHandler(t *testing.T) {
	c := &clock{t: t0.Add(time.Hour)}
	j := open(t, t.TempDir(), c, 1<<20, 24*time.Hour)
	defer closeJ(t, j)
	for i := range 5 {
		j.Append(alertJSON(t0.Add(time.Duration(i)*10*time.Minute), "R", "Warning", "ns1", ""))
	}
	flush(t, j)
	srv := httptest.NewServer(j.Handler())
	defer srv.Close()
	for _, tc := range []struct {
		query string
		code  int
		n     int
		trunc bool
	}{
		{"", 200, 5, false},
		{"?since=25m", 200, 1, false},
		{"?since=" + t0.Add(20*time.Minute).Format(time.RFC3339), 200, 3, false},
		{"?namespace=ns1&rule=R&priority=warning", 200, 5, false},
		{"?priority=error", 200, 0, false},
		{"?limit=2", 200, 2, true},
		{"?since=soon", 400, 0, false},
		{"?limit=0", 400, 0, false},
		{"?limit=1000000", 400, 0, false},
		{"?priority=loud", 400, 0, false},
	} {
		resp, err := http.Get(srv.URL + "/alerts" + tc.query)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.code {
			t.Errorf("%s: %d, want %d", tc.query, resp.StatusCode, tc.code)
			continue
		}
		if tc.code != 200 {
			continue
		}
		got, truncated, err := apiclient.New(srv.URL, srv.Client()).Alerts(context.Background(), mustFilter(t, tc.query, c.Now()))
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != tc.n || truncated != tc.trunc {
			t.Errorf("%s: %d alerts truncated=%v, want %d %v", tc.query, len(got), truncated, tc.n, tc.trunc)
		}
	}
	resp, err := http.Post(srv.URL+"/alerts", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST: %d", resp.StatusCode)
	}
}

func mustFilter(t *testing.T, query string, now time.Time) alerts.Filter {
	t.Helper()
	u, _ := http.NewRequest("GET", "http://x/"+query, nil)
	f, err := alerts.FilterFromQuery(u.URL.Query(), now, DefaultLimit, MaxLimit)
	if err != nil {
		t.Fatal(err)
	}
	f.Limit = 0
	if l := u.URL.Query().Get("limit"); l != "" {
		fmt.Sscan(l, &f.Limit)
	}
	return f
}

func TestRecordRoundTrip(t *testing.T) {
	for _, a := range []string{`{}`, `{"a":"b c"}`, strings.Repeat("x", 10000)} {
		rec := appendRecord(nil, 1234567890123, []byte(a))
		if rec[len(rec)-1] != '\n' {
			t.Fatal("no newline")
		}
		ts, got, err := decodeRecord(rec[:len(rec)-1])
		if err != nil || ts != 1234567890123 || string(got) != a {
			t.Fatalf("%q: %d %q %v", a, ts, got, err)
		}
	}
}

// FuzzDecodeRecord: decoding never panics, and whatever decodes re-encodes to the same line.
func FuzzDecodeRecord(f *testing.F) {
	f.Add(appendRecord(nil, 1, []byte(`{"rule":"R"}`)))
	f.Add([]byte("00000000 0 x"))
	f.Add([]byte("zzzzzzzz 1 {}"))
	f.Add([]byte("0badc0de -1 {}"))
	f.Fuzz(func(t *testing.T, line []byte) {
		ts, alert, err := decodeRecord(line)
		if err != nil {
			return
		}
		again := appendRecord(nil, ts, alert)
		if string(again[:len(again)-1]) != string(line) {
			t.Fatalf("decoded %q (%d, %q) re-encodes to %q", line, ts, alert, again)
		}
	})
}

// BenchmarkAppend measures the writer's sustained throughput: alerts appended and written to
// disk (not fsynced per alert), with a typical 1 KiB alert.
func BenchmarkAppend(b *testing.B) {
	c := &clock{t: t0}
	j, err := Open(Options{Dir: b.TempDir(), MaxBytes: 256 << 20, MaxAge: time.Hour, BufferSize: 100000, Now: c.Now})
	if err != nil {
		b.Fatal(err)
	}
	rec := alertJSON(t0, "Privileged Container Started in Pod", "Critical", "payments", strings.Repeat("p", 700))
	b.SetBytes(int64(len(rec)))
	b.ResetTimer()
	for range b.N {
		for len(j.ch) > 90000 {
			time.Sleep(10 * time.Microsecond) // back-pressure in the benchmark only
		}
		j.Append(rec)
	}
	ctx := context.Background()
	if err := j.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	if _, _, dropped := j.Counts(); dropped != 0 {
		b.Fatalf("dropped %d", dropped)
	}
	j.Close(ctx)
}

// gathered reads a counter from the registry (label value "" for an unlabelled one).
func gathered(t *testing.T, reg *prometheus.Registry, name, label string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if label == "" || len(m.GetLabel()) > 0 && m.GetLabel()[0].GetValue() == label {
				return m.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("metric %s{%s} not found", name, label)
	return 0
}
