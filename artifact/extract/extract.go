// Package extract unpacks an artifact layer (tar.gz) into an empty staging
// directory, refusing anything that could write outside it or surprise the
// consumer: absolute paths, "..", symlinks, hard links, devices, FIFOs and
// archives over the configured limits. Files are written with O_EXCL and
// O_NOFOLLOW and fsynced, so a later rename publishes complete content.
package extract

import (
	"archive/tar"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
)

// Limits bound what an archive may expand to. Zero fields take the defaults.
type Limits struct {
	MaxFiles     int   // regular files; default 1000
	MaxFileBytes int64 // per file; default 256 MiB
	MaxTotal     int64 // all files; default 1 GiB
}

// DefaultLimits are generous for rules and plugins (a plugin .so is tens of
// MiB) while stopping decompression bombs.
var DefaultLimits = Limits{MaxFiles: 1000, MaxFileBytes: 256 << 20, MaxTotal: 1 << 30}

func (l Limits) withDefaults() Limits {
	if l.MaxFiles <= 0 {
		l.MaxFiles = DefaultLimits.MaxFiles
	}
	if l.MaxFileBytes <= 0 {
		l.MaxFileBytes = DefaultLimits.MaxFileBytes
	}
	if l.MaxTotal <= 0 {
		l.MaxTotal = DefaultLimits.MaxTotal
	}
	return l
}

// ErrUnsafe marks archives rejected for safety reasons (as opposed to I/O
// failures), so callers can report "hostile or malformed artifact".
var ErrUnsafe = errors.New("unsafe archive")

// ErrCorrupt marks archives that do not decode (not gzip, a broken or truncated tar stream),
// as opposed to failures writing the extracted files.
var ErrCorrupt = errors.New("corrupt archive")

// corruptReader marks the decoder's errors as ErrCorrupt, so an io.ErrUnexpectedEOF from a
// truncated archive is never confused with one from a broken connection.
type corruptReader struct{ r io.Reader }

func (c corruptReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if err != nil && err != io.EOF && !errors.Is(err, ErrCorrupt) {
		err = fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	return n, err
}

// File is an extracted regular file.
type File struct {
	Path string      // slash-separated, relative to the staging dir
	Mode os.FileMode // permission bits from the tar header
	Size int64
}

// CleanName validates a tar entry name and returns its clean relative form.
func CleanName(name string) (string, error) {
	n := strings.TrimPrefix(name, "./")
	switch {
	case n == "" || n == ".":
		return "", nil
	case strings.HasPrefix(n, "/") || strings.HasPrefix(name, "/") || filepath.IsAbs(n) || strings.Contains(n, "\\"):
		return "", fmt.Errorf("%w: absolute path %q", ErrUnsafe, name)
	case strings.ContainsRune(n, 0):
		return "", fmt.Errorf("%w: NUL in entry name %q", ErrUnsafe, name)
	}
	for _, seg := range strings.Split(n, "/") {
		if seg == ".." {
			return "", fmt.Errorf("%w: path traversal in %q", ErrUnsafe, name)
		}
	}
	c := path.Clean(n)
	if c == "." {
		return "", nil
	}
	return c, nil
}

// TarGz extracts r into dir, which must exist and should be empty. On error
// dir may hold partial content; the caller owns and removes it.
func TarGz(r io.Reader, dir string, lim Limits) ([]File, error) {
	lim = lim.withDefaults()
	zr, err := gzip.NewReader(r)
	if err != nil {
		return nil, fmt.Errorf("%w: layer is not gzip-compressed: %w", ErrCorrupt, err)
	}
	defer zr.Close()
	tr := tar.NewReader(zr)
	var files []File
	seen := map[string]bool{}
	var total int64
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%w: read tar: %w", ErrCorrupt, err)
		}
		name, err := CleanName(h.Name)
		if err != nil {
			return nil, err
		}
		switch h.Typeflag {
		case tar.TypeDir:
			if name == "" {
				continue
			}
			if err := mkdirs(dir, name); err != nil {
				return nil, err
			}
		case tar.TypeReg, tar.TypeRegA: //nolint:staticcheck // old archives use TypeRegA
			if name == "" {
				return nil, fmt.Errorf("%w: file entry without a name", ErrUnsafe)
			}
			if seen[name] {
				return nil, fmt.Errorf("%w: duplicate entry %q", ErrUnsafe, name)
			}
			seen[name] = true
			if len(files) >= lim.MaxFiles {
				return nil, fmt.Errorf("%w: more than %d files", ErrUnsafe, lim.MaxFiles)
			}
			if h.Size > lim.MaxFileBytes {
				return nil, fmt.Errorf("%w: %q is %d bytes, over the %d-byte per-file limit", ErrUnsafe, name, h.Size, lim.MaxFileBytes)
			}
			if total+h.Size > lim.MaxTotal {
				return nil, fmt.Errorf("%w: archive expands beyond the %d-byte limit", ErrUnsafe, lim.MaxTotal)
			}
			total += h.Size
			if d := path.Dir(name); d != "." {
				if err := mkdirs(dir, d); err != nil {
					return nil, err
				}
			}
			mode := os.FileMode(h.Mode).Perm()
			if err := writeFile(filepath.Join(dir, filepath.FromSlash(name)), corruptReader{tr}, h.Size, mode); err != nil {
				return nil, fmt.Errorf("extract %s: %w", name, err)
			}
			files = append(files, File{Path: name, Mode: mode, Size: h.Size})
		case tar.TypeSymlink, tar.TypeLink:
			return nil, fmt.Errorf("%w: link entry %q -> %q is not allowed", ErrUnsafe, h.Name, h.Linkname)
		case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
			return nil, fmt.Errorf("%w: device or FIFO entry %q is not allowed", ErrUnsafe, h.Name)
		case tar.TypeXGlobalHeader, tar.TypeXHeader, tar.TypeGNULongName, tar.TypeGNULongLink:
			continue
		default:
			return nil, fmt.Errorf("%w: unsupported entry type %q for %q", ErrUnsafe, string(h.Typeflag), h.Name)
		}
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("%w: archive contains no files", ErrUnsafe)
	}
	sort.Slice(files, func(i, j int) bool { return files[i].Path < files[j].Path })
	return files, nil
}

// mkdirs creates rel under dir one segment at a time with Lstat checks, so
// a directory can never be replaced by a link mid-extraction.
func mkdirs(dir, rel string) error {
	cur := dir
	for _, seg := range strings.Split(rel, "/") {
		cur = filepath.Join(cur, seg)
		fi, err := os.Lstat(cur)
		switch {
		case err == nil && fi.IsDir():
			continue
		case err == nil:
			return fmt.Errorf("%w: %q is both a file and a directory", ErrUnsafe, rel)
		case errors.Is(err, os.ErrNotExist):
			if err := os.Mkdir(cur, 0o755); err != nil {
				return err
			}
		default:
			return err
		}
	}
	return nil
}

func writeFile(p string, r io.Reader, size int64, mode os.FileMode) error {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return err
	}
	n, err := io.Copy(f, io.LimitReader(r, size))
	if err == nil && n != size {
		err = fmt.Errorf("%w: truncated archive: got %d of %d bytes", ErrCorrupt, n, size)
	}
	if err == nil {
		err = f.Chmod(mode)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
