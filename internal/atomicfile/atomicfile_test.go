package atomicfile

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestWriteFile(t *testing.T) {
	tests := []struct {
		name     string
		existing *os.FileMode
		opt      Options
		perm     os.FileMode
		wantMode os.FileMode
		sub      bool
		wantErr  bool
	}{
		{name: "new file gets perm", perm: 0o600, wantMode: 0o600},
		{name: "replace overrides mode", existing: ptr(0o644), perm: 0o600, wantMode: 0o600},
		{name: "keep mode", existing: ptr(0o640), opt: Options{KeepMode: true}, perm: 0o600, wantMode: 0o640},
		{name: "missing dir fails", sub: true, perm: 0o600, wantErr: true},
		{name: "missing dir created", sub: true, opt: Options{MkdirAll: true}, perm: 0o644, wantMode: 0o644},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "f.yaml")
			if tt.sub {
				path = filepath.Join(dir, "a", "b", "f.yaml")
			}
			if tt.existing != nil {
				if err := os.WriteFile(path, []byte("old"), *tt.existing); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(path, *tt.existing); err != nil {
					t.Fatal(err)
				}
			}
			err := WriteFileWith(path, []byte("new"), tt.perm, tt.opt)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if tt.wantErr {
				return
			}
			b, err := os.ReadFile(path)
			if err != nil || string(b) != "new" {
				t.Fatalf("content %q, %v", b, err)
			}
			st, _ := os.Stat(path)
			if st.Mode().Perm() != tt.wantMode {
				t.Fatalf("mode %v, want %v", st.Mode().Perm(), tt.wantMode)
			}
			ents, _ := os.ReadDir(filepath.Dir(path))
			if len(ents) != 1 {
				t.Fatalf("left behind: %v", ents)
			}
		})
	}
}

func ptr(m os.FileMode) *os.FileMode { return &m }

// Concurrent writers never share a temporary file: every write lands whole.
func TestWriteFileConcurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cred")
	var wg sync.WaitGroup
	payloads := []string{"aaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", "c"}
	for i := 0; i < 30; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			if err := WriteFile(path, []byte(payloads[i%3]), 0o600); err != nil {
				t.Error(err)
			}
		}(i)
	}
	wg.Wait()
	b, _ := os.ReadFile(path)
	ok := false
	for _, p := range payloads {
		ok = ok || string(b) == p
	}
	if !ok {
		t.Fatalf("torn content %q", b)
	}
}

func TestRemoveTemps(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{".a.yaml.tmp-123", "a.yaml", ".hidden", "b.tmp-x"} {
		if err := os.WriteFile(filepath.Join(dir, n), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	n, err := RemoveTemps(dir)
	if err != nil || n != 1 {
		t.Fatalf("removed %d, %v", n, err)
	}
	if n, err := RemoveTemps(filepath.Join(dir, "missing")); n != 0 || err != nil {
		t.Fatalf("missing dir: %d %v", n, err)
	}
}

// TestWriteFileHook: the hook sees every step, in order, before it happens, so a crash test can
// stop the process between any two of them.
func TestWriteFileHook(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	var steps []string
	if err := WriteFileWith(p, []byte("x"), 0o600, Options{Hook: func(s string) { steps = append(steps, s) }}); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(steps, ","); got != "create,chmod,write,fsync,close,rename,syncdir" {
		t.Fatalf("steps %s", got)
	}
}

// A failing stream leaves the old file and no temporary file, and its error comes back as is.
func TestWriteStreamError(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "layer.tar.gz")
	if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	errStream := errors.New("digest mismatch")
	err := WriteStream(path, 0o644, Options{}, func(w io.Writer) error {
		if _, err := w.Write([]byte("partial")); err != nil {
			return err
		}
		return errStream
	})
	if err != errStream {
		t.Fatalf("err = %v, want the stream's own error", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "old" {
		t.Fatalf("content %q, want old", b)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("left behind: %v", ents)
	}
}
