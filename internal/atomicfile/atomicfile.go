// Package atomicfile owns the one way falco-k8s replaces a file on disk: a uniquely named
// temporary file in the same directory is written, given its mode, fsynced and renamed over the
// target, and the directory is fsynced, so a reader (or a crash at any step) sees either the old
// or the new content, never half a file, and two concurrent writers never share a temporary name.
package atomicfile

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// TempPrefix and TempSuffix frame the names of this package's temporary files
// (".NAME.tmp-RANDOM"), so a cleaner can tell a crash remnant from a user's file.
const (
	TempPrefix = "."
	TempMarker = ".tmp-"
)

// Options adjust WriteFile. The zero value writes with the given mode and creates no
// directories.
type Options struct {
	// MkdirAll creates the parent directory (0o755) when it is missing.
	MkdirAll bool
	// KeepMode keeps the mode of an existing file instead of the given one.
	KeepMode bool
	// Hook, when set, is called before each step ("create", "chmod", "write", "fsync",
	// "close", "rename", "syncdir"): crash tests stop the process at exactly that point.
	Hook func(step string)
}

// WriteFile replaces path with data, mode perm (see Options for the variants).
func WriteFile(path string, data []byte, perm os.FileMode) error {
	return WriteFileWith(path, data, perm, Options{})
}

// WriteFileWith is WriteFile with options.
func WriteFileWith(path string, data []byte, perm os.FileMode, opt Options) error {
	return WriteStream(path, perm, opt, func(w io.Writer) error {
		if _, err := w.Write(data); err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
		return nil
	})
}

// WriteStream is WriteFileWith for content too large to hold in memory (a pulled layer, a
// charm archive): write streams it into the temporary file. An error write returns is passed
// back unchanged (it carries its own context, and its type, for errors.Is/As); the
// temporary file is removed and path is left as it was.
func WriteStream(path string, perm os.FileMode, opt Options, write func(io.Writer) error) (err error) {
	dir := filepath.Dir(path)
	if opt.MkdirAll {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
	}
	if opt.KeepMode {
		if st, err := os.Stat(path); err == nil {
			perm = st.Mode().Perm()
		}
	}
	hook := opt.Hook
	if hook == nil {
		hook = func(string) {}
	}
	hook("create")
	f, err := os.CreateTemp(dir, TempPrefix+filepath.Base(path)+TempMarker+"*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	callerErr := false
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(tmp)
			if !callerErr {
				err = fmt.Errorf("write %s: %w", path, err)
			}
		}
	}()
	// Chmod before writing: a credential must never exist, even briefly, with the
	// CreateTemp default of 0600 widened or narrowed after its content is there.
	hook("chmod")
	if err = f.Chmod(perm); err != nil {
		return err
	}
	hook("write")
	if err = write(f); err != nil {
		callerErr = true
		return err
	}
	hook("fsync")
	if err = f.Sync(); err != nil {
		return err
	}
	hook("close")
	if err = f.Close(); err != nil {
		return err
	}
	hook("rename")
	if err = os.Rename(tmp, path); err != nil {
		return err
	}
	hook("syncdir")
	SyncDir(dir)
	return nil
}

// SyncDir fsyncs a directory so that a rename or a new entry in it survives a crash. Errors
// are ignored on purpose: some filesystems refuse fsync on directories and the rename itself
// has already succeeded.
func SyncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
}

// IsTemp reports whether name (a base name) is one of this package's temporary files, i.e. a
// remnant of a write that a crash interrupted.
func IsTemp(name string) bool {
	return strings.HasPrefix(name, TempPrefix) && strings.Contains(name, TempMarker)
}

// RemoveTemps deletes the temporary files a crash left in dir and returns how many it removed.
func RemoveTemps(dir string) (int, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	n := 0
	for _, e := range entries {
		if e.Type().IsRegular() && IsTemp(e.Name()) {
			if err := os.Remove(filepath.Join(dir, e.Name())); err == nil {
				n++
			}
		}
	}
	return n, nil
}
