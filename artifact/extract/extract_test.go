package extract

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func archive(hs ...*tar.Header) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, h := range hs {
		_ = tw.WriteHeader(h)
		if h.Typeflag == tar.TypeReg {
			_, _ = tw.Write(bytes.Repeat([]byte("a"), int(h.Size)))
		}
	}
	tw.Close()
	zw.Close()
	return buf.Bytes()
}

func reg(name string, size int64) *tar.Header {
	return &tar.Header{Name: name, Size: size, Mode: 0o640, Typeflag: tar.TypeReg}
}

func TestTarGz(t *testing.T) {
	for _, tc := range []struct {
		name string
		data []byte
		lim  Limits
		want string
	}{
		{"ok", archive(&tar.Header{Name: "d/", Typeflag: tar.TypeDir, Mode: 0o755}, reg("d/x.yaml", 3), reg("./y.yaml", 1)), Limits{}, ""},
		{"traversal", archive(reg("a/../../x", 1)), Limits{}, "path traversal"},
		{"absolute", archive(reg("/x", 1)), Limits{}, "absolute"},
		{"symlink", archive(&tar.Header{Name: "l", Typeflag: tar.TypeSymlink, Linkname: "/"}), Limits{}, "link"},
		{"hardlink", archive(&tar.Header{Name: "l", Typeflag: tar.TypeLink, Linkname: "x"}), Limits{}, "link"},
		{"fifo", archive(&tar.Header{Name: "f", Typeflag: tar.TypeFifo}), Limits{}, "device or FIFO"},
		{"filesize", archive(reg("x", 100)), Limits{MaxFileBytes: 10}, "per-file limit"},
		{"total", archive(reg("x", 8), reg("y", 8)), Limits{MaxTotal: 10}, "beyond"},
		{"count", archive(reg("x", 1), reg("y", 1)), Limits{MaxFiles: 1}, "more than 1 files"},
		{"dup", archive(reg("x", 1), reg("x", 1)), Limits{}, "duplicate"},
		{"empty", archive(), Limits{}, "no files"},
		{"notgzip", []byte("hello"), Limits{}, "not gzip"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			files, err := TarGz(bytes.NewReader(tc.data), dir, tc.lim)
			if tc.want == "" {
				if err != nil || len(files) != 2 || files[0].Path != "d/x.yaml" || files[1].Path != "y.yaml" || files[0].Mode != 0o640 {
					t.Fatalf("%v %v", files, err)
				}
				fi, _ := os.Stat(filepath.Join(dir, "d", "x.yaml"))
				if fi.Mode().Perm() != 0o640 {
					t.Fatalf("mode %v", fi.Mode())
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("want %q got %v", tc.want, err)
			}
			if tc.name != "notgzip" && !errors.Is(err, ErrUnsafe) {
				t.Fatalf("want ErrUnsafe: %v", err)
			}
		})
	}
}

func FuzzCleanName(f *testing.F) {
	for _, s := range []string{"a/b", "../x", "./a", "/abs", "a/./b/../c", "a\\b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := CleanName(s)
		if err != nil || c == "" {
			return
		}
		if strings.HasPrefix(c, "/") || c == ".." || strings.HasPrefix(c, "../") || strings.Contains(c, "/../") {
			t.Fatalf("%q cleaned to unsafe %q", s, c)
		}
		if !filepath.IsLocal(c) {
			t.Fatalf("%q cleaned to non-local %q", s, c)
		}
	})
}

func FuzzTarGz(f *testing.F) {
	f.Add(archive(reg("x", 3)))
	f.Fuzz(func(t *testing.T, b []byte) {
		dir := t.TempDir()
		files, err := TarGz(bytes.NewReader(b), dir, Limits{MaxFiles: 10, MaxFileBytes: 1 << 16, MaxTotal: 1 << 18})
		if err != nil {
			return
		}
		for _, fl := range files {
			if !filepath.IsLocal(fl.Path) {
				t.Fatalf("non-local %q", fl.Path)
			}
		}
	})
}
