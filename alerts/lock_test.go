package alerts

import (
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// TestLockTuningSerialises runs many read-modify-write cycles on one file from goroutines that
// each open the lock on their own (as separate `alerts tune` processes would): with the lock no
// increment is lost.
func TestLockTuningSerialises(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "tuning.yaml")
	const workers, rounds = 8, 25
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range rounds {
				unlock, err := LockTuning(path)
				if err != nil {
					t.Error(err)
					return
				}
				b, _ := os.ReadFile(path)
				if err := WriteFile(path, append(b, 'x'), 0o644); err != nil {
					t.Error(err)
				}
				unlock()
			}
		}()
	}
	wg.Wait()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != workers*rounds {
		t.Fatalf("%d writes survived, want %d: concurrent tunes lost updates", len(b), workers*rounds)
	}
	st, err := os.Stat(path + ".lock")
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("lock file: %v %v", st, err)
	}
}
