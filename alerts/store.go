package alerts

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"
)

// TuningStore is where the tuning file lives: the local file system for the CLI (LocalFiles),
// the workload container through Pebble for the charm's actions. TuneFile and ResetFile are the
// one tuning flow over either.
type TuningStore interface {
	// Lock takes the exclusive lock of the tuning file at path for a read-modify-write.
	Lock(ctx context.Context, path string) (unlock func(), err error)
	// Read returns the file's content; a missing file is fs.ErrNotExist.
	Read(ctx context.Context, path string) ([]byte, error)
	// Write replaces the file atomically.
	Write(ctx context.Context, path string, data []byte) error
	// SetAside moves path to dst, failing with fs.ErrExist when dst exists: it never
	// replaces a file.
	SetAside(ctx context.Context, path, dst string) error
}

// ErrReadTuning wraps a failure to read an existing tuning file (bad input to the caller, not a
// failed tune).
var ErrReadTuning = errors.New("read tuning file")

// TuneFile is the tuning flow: under the store's lock (none for a dry run, which writes
// nothing), read the current tuning file, add the alerts' exceptions (Tune, validated against
// opt.Base) and write the result when it changed.
func TuneFile(ctx context.Context, st TuningStore, list []*Alert, opt TuneOptions, dryRun bool) (*TuneResult, error) {
	if !dryRun {
		unlock, err := st.Lock(ctx, opt.Path)
		if err != nil {
			return nil, err
		}
		defer unlock()
	}
	existing, err := st.Read(ctx, opt.Path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %w", ErrReadTuning, err)
	}
	opt.Existing = existing
	res, err := Tune(list, opt)
	if err != nil {
		return nil, err
	}
	if res.Changed && !dryRun {
		if err := st.Write(ctx, opt.Path, res.Content); err != nil {
			return res, err
		}
		res.Written = true
	}
	return res, nil
}

// ResetFile sets the tuning file aside under the store's lock, as PATH.<UTC timestamp>.bak,
// never overwriting an earlier one (a second reset in the same second gets .1.bak, and so on),
// and returns the new name; "" when there was no file.
func ResetFile(ctx context.Context, st TuningStore, path string, now time.Time) (string, error) {
	unlock, err := st.Lock(ctx, path)
	if err != nil {
		return "", err
	}
	defer unlock()
	if _, err := st.Read(ctx, path); errors.Is(err, fs.ErrNotExist) {
		return "", nil
	} else if err != nil {
		return "", fmt.Errorf("reset %s: %w", path, err)
	}
	base := path + "." + now.UTC().Format("20060102T150405Z")
	for i := 0; ; i++ {
		dst := base + ".bak"
		if i > 0 {
			dst = fmt.Sprintf("%s.%d.bak", base, i)
		}
		switch err := st.SetAside(ctx, path, dst); {
		case errors.Is(err, fs.ErrExist):
			continue
		case err != nil:
			return "", fmt.Errorf("reset %s: %w", path, err)
		}
		return dst, nil
	}
}

// Reset is ResetFile on the local file system.
func Reset(path string, now time.Time) (string, error) {
	return ResetFile(context.Background(), LocalFiles{}, path, now)
}

// LocalFiles is the TuningStore of the local file system: an flock on PATH.lock (LockTuning),
// atomic writes keeping the file's mode (WriteFile), and link-then-remove to set a file aside
// (unlike rename, link never replaces an existing file).
type LocalFiles struct{}

// Lock implements TuningStore.
func (LocalFiles) Lock(_ context.Context, path string) (func(), error) { return LockTuning(path) }

// Read implements TuningStore.
func (LocalFiles) Read(_ context.Context, path string) ([]byte, error) { return os.ReadFile(path) }

// Write implements TuningStore.
func (LocalFiles) Write(_ context.Context, path string, data []byte) error {
	return WriteFile(path, data, 0o644)
}

// SetAside implements TuningStore.
func (LocalFiles) SetAside(_ context.Context, path, dst string) error {
	if _, err := os.Lstat(dst); err == nil {
		return fs.ErrExist
	}
	if err := os.Link(path, dst); err != nil {
		return err // *LinkError wrapping EEXIST is fs.ErrExist
	}
	return os.Remove(path)
}
