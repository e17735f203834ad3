package journal

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/falco-k8s/falco-k8s/alerts"
)

// TestSegmentPathNotARegularFile: a directory where the journal's next segment goes (at start-up
// or while running) is set aside and counted, and journaling goes on in a new segment with every
// record served, instead of every later write failing.
func TestSegmentPathNotARegularFile(t *testing.T) {
	for _, when := range []string{"at start-up", "while running"} {
		t.Run(when, func(t *testing.T) {
			dir := t.TempDir()
			c := &clock{t: t0}
			j := open(t, dir, c, 64<<10, time.Hour) // 8 KiB segments
			for range 3 {
				j.Append(alertJSON(t0, "Before", "Warning", "a", ""))
			}
			flush(t, j)
			if when == "at start-up" {
				closeJ(t, j)
				next := j.nextSeq
				if err := os.Mkdir(filepath.Join(dir, segName(next)), 0o700); err != nil {
					t.Fatal(err)
				}
				j = open(t, dir, c, 64<<10, time.Hour)
			} else {
				// The next segment's name taken while the current one fills up.
				if err := os.Mkdir(filepath.Join(dir, segName(j.nextSeq)), 0o700); err != nil {
					t.Fatal(err)
				}
			}
			reg := prometheus.NewRegistry()
			reg.MustRegister(j.mQuarant)
			pad := strings.Repeat("p", 1000)
			for range 20 { // 20 KB: rolls over to new segments
				j.Append(alertJSON(t0, "After", "Warning", "a", pad))
			}
			flush(t, j)
			defer closeJ(t, j)
			got := query(t, j, alerts.Filter{})
			n := map[string]int{}
			for _, a := range got {
				n[a.Rule]++
			}
			if n["Before"] != 3 || n["After"] != 20 {
				t.Fatalf("served %v, want 3 Before and 20 After", n)
			}
			metric := -1.0
			mfs, _ := reg.Gather()
			for _, mf := range mfs {
				if mf.GetName() == "falco_k8s_journal_quarantined_total" {
					metric = mf.GetMetric()[0].GetCounter().GetValue()
				}
			}
			if j.Quarantined() != 1 || metric != 1 || !strings.Contains(j.LastError(), "not a") {
				t.Fatalf("quarantined %d (metric %v), last error %q", j.Quarantined(), metric, j.LastError())
			}
			if q, _ := filepath.Glob(filepath.Join(dir, "quarantine-seg-*")); len(q) != 1 {
				t.Fatalf("quarantined entries %v", q)
			}
			if _, failed, dropped := j.Counts(); failed != 0 || dropped != 0 {
				t.Fatalf("failed %d, dropped %d", failed, dropped)
			}
		})
	}
}

// TestGarbageRunDoesNotHideRecords: runs of garbage far longer than any record (random bytes,
// zeroed blocks), with or without a newline before the next record, are skipped and counted;
// every intact record before and after them is served.
func TestGarbageRunDoesNotHideRecords(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	random := make([]byte, 3*maxRecordLine)
	for i := range random {
		random[i] = byte(rnd.IntN(255)) + 1
		if random[i] == '\n' {
			random[i] = 'x'
		}
	}
	zeros := make([]byte, 3*maxRecordLine)
	// Garbage that looks like record headers everywhere costs at most maxResync checksums a line.
	headers := bytes.Repeat([]byte("0badc0de 1 "), 300)
	rec := func(i int) []byte {
		return appendRecord(nil, t0.UnixNano(), alertJSON(t0, "R", "Warning", "a", strings.Repeat("z", i)))
	}
	for _, tc := range []struct {
		name    string
		garbage []byte
		newline bool
	}{
		{"random bytes glued to the next record", random, false},
		{"random bytes then a newline", random, true},
		{"zeroed blocks glued to the next record", zeros, false},
		{"short zero run", zeros[:100], false},
		{"fake headers", headers, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			var seg []byte
			seg = append(seg, rec(1)...)
			seg = append(seg, rec(2)...)
			seg = append(seg, tc.garbage...)
			if tc.newline {
				seg = append(seg, '\n')
			}
			seg = append(seg, rec(3)...)
			seg = append(seg, rec(4)...)
			seg = append(seg, tc.garbage...) // and garbage up to the end
			if err := os.WriteFile(filepath.Join(dir, segName(1)), seg, 0o600); err != nil {
				t.Fatal(err)
			}
			c := &clock{t: t0}
			j := open(t, dir, c, 64<<20, time.Hour)
			defer closeJ(t, j)
			got := query(t, j, alerts.Filter{})
			if len(got) != 4 {
				t.Fatalf("%d records served, want the 4 intact ones", len(got))
			}
			if j.CorruptRecords() == 0 {
				t.Fatal("the garbage was not counted")
			}
		})
	}
}
