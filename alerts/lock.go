package alerts

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// LockTuning takes an exclusive lock for a read-modify-write of the tuning file at path, so two
// `alerts tune` (or tune and reset) runs cannot each add their exceptions to the same old
// content and lose the other's. The lock is an flock on "<path>.lock" in the same directory
// (created 0600; the file is left in place, an empty lock file is harmless). It waits for a
// concurrent holder; unlock releases it.
func LockTuning(path string) (unlock func(), err error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("lock tuning file: %w", err)
	}
	lockPath := path + ".lock"
	f, err := os.OpenFile(lockPath, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock tuning file: %w", err)
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lock tuning file %s: %w", lockPath, err)
	}
	return func() {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN) //nolint:errcheck // closing releases it too
		f.Close()
	}, nil
}
