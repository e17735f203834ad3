package journal

import (
	"sync"
	"testing"
	"time"
)

// A new segment's directory entry must be fsynced, or a crash can lose a segment whose data
// was synced.
func TestNewSegmentSyncsDirectory(t *testing.T) {
	dir := t.TempDir()
	var mu sync.Mutex
	n := 0
	old := syncDir
	syncDir = func(d string) {
		mu.Lock()
		if d == dir {
			n++
		}
		mu.Unlock()
		old(d)
	}
	defer func() { syncDir = old }()
	c := &clock{t: t0}
	j := open(t, dir, c, 1<<20, time.Hour)
	j.Append(alertJSON(t0, "r", "Warning", "ns", ""))
	flush(t, j)
	closeJ(t, j)
	mu.Lock()
	defer mu.Unlock()
	if n == 0 {
		t.Errorf("journal directory not fsynced after creating a segment")
	}
}
