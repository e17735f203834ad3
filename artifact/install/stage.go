// Package install turns registry artifacts into files on disk, safely.
//
// The two-step API is what the follower uses:
//
//	st, err := install.Stage(ctx, client, a, destDir, opts) // download+verify+extract, nothing visible
//	defer st.Discard()
//	... compile the candidate rules from st.Path(f) ...
//	files, err := st.Promote(prevFiles)                     // fsync+rename, drop removed files
//
// Stage streams the layer through digest verification into a safe tar
// extraction in a staging directory on the destination's filesystem (a
// hidden sibling of the destination when possible, so Falco's inotify watch on
// the destination sees no staging noise). Promote renames each file into
// place, so readers see either the old or the new complete file, and removes
// files the previous version had and the new one dropped.
//
// Installer is the falcoctl "artifact install" pipeline on top: reference
// resolution, de-duplication by config name, dependency resolution (highest
// compatible, never downgrade), allowed types, staging of the whole batch
// before any promotion, and state files.
package install

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"github.com/falco-k8s/falco-k8s/artifact/extract"
	"github.com/falco-k8s/falco-k8s/artifact/oci"
	"github.com/falco-k8s/falco-k8s/internal/atomicfile"
)

// StageOptions bound a download.
type StageOptions struct {
	MaxLayerBytes int64 // compressed layer; default 256 MiB
	Limits        extract.Limits
	// StagingDir overrides where staging directories are created; it must be
	// on the destination's filesystem for Promote to be atomic.
	StagingDir string
	// Progress, when set, receives the bytes as they are downloaded.
	Progress io.Writer
}

var errStopped = errors.New("extraction stopped")

// DefaultMaxLayerBytes bounds a compressed layer.
const DefaultMaxLayerBytes = 256 << 20

// Staged is an extracted, verified artifact that is not visible yet.
type Staged struct {
	Artifact *oci.Artifact
	DestDir  string
	Files    []extract.File
	dir      string // staging root; files live in dir/files
}

// Path returns where a staged file currently is.
func (s *Staged) Path(f extract.File) string {
	return filepath.Join(s.dir, "files", filepath.FromSlash(f.Path))
}

// Discard removes the staging directory; safe to call after Promote.
func (s *Staged) Discard() {
	if s != nil && s.dir != "" {
		_ = os.RemoveAll(s.dir)
	}
}

// CheckWritable verifies dir exists (creating it if needed) and is writable
// without creating probe files, which would wake Falco's directory watch.
func CheckWritable(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("destination %s: %w", dir, err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("destination %s: %w", dir, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("destination %s is not a directory", dir)
	}
	if err := syscall.Access(dir, 2 /* W_OK */); err != nil {
		return fmt.Errorf("destination %s is not writable: %w (choose another directory with --rulesfiles-dir/--plugins-dir/--assets-dir)", dir, err)
	}
	return nil
}

func sameDevice(a, b string) bool {
	var sa, sb syscall.Stat_t
	if syscall.Stat(a, &sa) != nil || syscall.Stat(b, &sb) != nil {
		return false
	}
	return sa.Dev == sb.Dev
}

// stagingRoot picks a directory on destDir's filesystem: the explicit one, a
// hidden sibling of destDir, or, if the parent is not writable (an emptyDir
// mounted at /rules), a hidden directory inside destDir.
func stagingRoot(destDir, explicit string) (string, error) {
	base := "." + filepath.Base(destDir) + ".staging-"
	if explicit != "" {
		if err := os.MkdirAll(explicit, 0o700); err != nil {
			return "", err
		}
		return os.MkdirTemp(explicit, base)
	}
	parent := filepath.Dir(destDir)
	if parent != destDir && sameDevice(parent, destDir) {
		if d, err := os.MkdirTemp(parent, base); err == nil {
			return d, nil
		}
	}
	return os.MkdirTemp(destDir, ".falco-k8s-staging-")
}

// Stage downloads a's layer, verifying size and digest while streaming it
// into a safe extraction. On any error nothing is left behind.
func Stage(ctx context.Context, c *oci.Client, a *oci.Artifact, destDir string, o StageOptions) (_ *Staged, err error) {
	if o.MaxLayerBytes <= 0 {
		o.MaxLayerBytes = DefaultMaxLayerBytes
	}
	destDir, err = filepath.Abs(destDir)
	if err != nil {
		return nil, err
	}
	if err := CheckWritable(destDir); err != nil {
		return nil, err
	}
	dir, err := stagingRoot(destDir, o.StagingDir)
	if err != nil {
		return nil, fmt.Errorf("create staging directory for %s: %w", destDir, err)
	}
	st := &Staged{Artifact: a, DestDir: destDir, dir: dir}
	defer func() {
		if err != nil {
			st.Discard()
		}
	}()
	filesDir := filepath.Join(dir, "files")
	if err := os.Mkdir(filesDir, 0o755); err != nil {
		return nil, err
	}
	pr, pw := io.Pipe()
	fetchErr := make(chan error, 1)
	go func() {
		var w io.Writer = pw
		if o.Progress != nil {
			w = io.MultiWriter(pw, o.Progress)
		}
		err := c.FetchLayer(ctx, a, w, o.MaxLayerBytes)
		pw.CloseWithError(err)
		fetchErr <- err
	}()
	files, xerr := extract.TarGz(pr, filesDir, o.Limits)
	if xerr == nil || errors.Is(xerr, extract.ErrCorrupt) {
		// Drain tar padding so the digest covers the whole blob, and after a
		// decoding error the rest too: whether the layer verifies tells bad
		// content at that digest from damage in transit.
		if _, derr := io.Copy(io.Discard, pr); xerr == nil {
			xerr = derr
		}
	}
	pr.CloseWithError(errStopped)
	ferr := <-fetchErr
	switch {
	case ferr != nil && !errors.Is(ferr, errStopped) && (xerr == nil || !errors.Is(xerr, extract.ErrUnsafe)):
		// A digest, size or connection error explains a broken archive
		// better than the tar error it caused.
		return nil, ferr
	case xerr != nil && errors.Is(xerr, extract.ErrCorrupt):
		// The layer matched its digest and still does not decode: the
		// content stored under that digest is bad.
		return nil, oci.Explain("extract", a.Ref, oci.BadContent(xerr))
	case xerr != nil:
		return nil, fmt.Errorf("extract %s: %w", a.Ref, xerr)
	case ferr != nil:
		return nil, ferr
	}
	st.Files = files
	return st, nil
}

// Promote moves the staged files into DestDir. prev lists the files (slash
// paths relative to DestDir) the previous version installed; those the new
// version no longer has are removed. It returns the installed paths.
func (s *Staged) Promote(prev []string) ([]string, error) {
	defer s.Discard()
	newSet := map[string]bool{}
	var out []string
	dirs := map[string]bool{s.DestDir: true}
	for _, f := range s.Files {
		dst := filepath.Join(s.DestDir, filepath.FromSlash(f.Path))
		if err := safeParents(s.DestDir, f.Path); err != nil {
			return out, err
		}
		if fi, err := os.Lstat(dst); err == nil && !fi.Mode().IsRegular() {
			return out, fmt.Errorf("promote %s: destination %s exists and is not a regular file; remove it first", f.Path, dst)
		}
		if err := moveFile(s.Path(f), dst, f.Mode); err != nil {
			return out, fmt.Errorf("promote %s: %w", f.Path, err)
		}
		newSet[f.Path] = true
		out = append(out, f.Path)
		dirs[filepath.Dir(dst)] = true
	}
	for _, p := range prev {
		if newSet[p] {
			continue
		}
		clean, err := extract.CleanName(p)
		if err != nil || clean == "" {
			continue // never delete outside DestDir on a tampered state file
		}
		dst := filepath.Join(s.DestDir, filepath.FromSlash(clean))
		if fi, err := os.Lstat(dst); err == nil && fi.Mode().IsRegular() {
			if err := os.Remove(dst); err != nil {
				return out, fmt.Errorf("remove %s dropped by the new version: %w", dst, err)
			}
			dirs[filepath.Dir(dst)] = true
		}
	}
	keys := make([]string, 0, len(dirs))
	for d := range dirs {
		keys = append(keys, d)
	}
	sort.Strings(keys)
	for _, d := range keys {
		atomicfile.SyncDir(d)
	}
	return out, nil
}

// safeParents creates the parent directories of rel under dest, refusing to
// follow a symlinked directory out of dest.
func safeParents(dest, rel string) error {
	parts := strings.Split(rel, "/")
	cur := dest
	for _, seg := range parts[:len(parts)-1] {
		cur = filepath.Join(cur, seg)
		fi, err := os.Lstat(cur)
		switch {
		case errors.Is(err, os.ErrNotExist):
			if err := os.Mkdir(cur, 0o755); err != nil {
				return err
			}
		case err != nil:
			return err
		case fi.Mode()&os.ModeSymlink != 0:
			return fmt.Errorf("refusing to install through symlinked directory %s", cur)
		case !fi.IsDir():
			return fmt.Errorf("%s exists and is not a directory", cur)
		}
	}
	return nil
}

// moveFile renames src over dst; across filesystems (EXDEV) it copies into a
// temp file beside dst, fsyncs it and renames, so dst is never half-written.
func moveFile(src, dst string, mode os.FileMode) error {
	err := os.Rename(src, dst)
	if err == nil || !errors.Is(err, syscall.EXDEV) {
		return err
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	return atomicfile.WriteStream(dst, mode, atomicfile.Options{}, func(w io.Writer) error {
		_, err := io.Copy(w, in)
		return err
	})
}
