package follower

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// versionFiles is version n of a three-file set; every file names its version so a mixed set
// is detectable.
func versionFiles(n int) map[string][]byte {
	pad := strings.Repeat("# padding to make the writes take a while\n", 800)
	return map[string][]byte{
		"a.yaml":        fmt.Appendf(nil, "# version %d\n%s", n, pad),
		"b.yaml":        fmt.Appendf(nil, "# version %d\n%s", n, pad),
		"nested/c.yaml": fmt.Appendf(nil, "# version %d\n%s", n, pad),
	}
}

// loadedVersion opens the store in dir and returns the committed version (0: none), failing
// the test unless every file is intact and of the same version.
func loadedVersion(t *testing.T, dir string) int {
	t.Helper()
	s, err := OpenStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	st, err := s.Load()
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Refs) == 0 {
		return 0
	}
	rs := st.Refs[0]
	content, err := s.ReadSet(rs)
	if err != nil {
		t.Fatalf("committed set unreadable: %v", err)
	}
	v, err := strconv.Atoi(strings.TrimPrefix(rs.Digest, "v"))
	if err != nil {
		t.Fatalf("digest %q", rs.Digest)
	}
	want := versionFiles(v)
	if len(content) != len(want) {
		t.Fatalf("version %d: %d files, want %d", v, len(content), len(want))
	}
	for p, b := range want {
		if string(content[p]) != string(b) {
			t.Fatalf("version %d: %s holds another version's content", v, p)
		}
	}
	// Leftovers are cleaned at open: only the committed set remains.
	sets, _ := os.ReadDir(filepath.Join(dir, "sets"))
	staging, _ := os.ReadDir(filepath.Join(dir, "staging"))
	if len(sets) != 1 || len(staging) != 0 {
		t.Fatalf("after open: %d sets, %d staging entries", len(sets), len(staging))
	}
	return v
}

func commitVersion(s *Store, n int) error {
	files := versionFiles(n)
	rs := newRefState("reg.example/rules:1", "v"+strconv.Itoa(n), files, false, time.Now())
	return s.Commit(State{Refs: []RefState{rs}}, map[string]SetSource{rs.Set: {Content: files}})
}

func TestStoreCommitAndReopen(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	if v := loadedVersion(t, dir); v != 0 {
		t.Fatalf("empty store loaded version %d", v)
	}
	for n := 1; n <= 3; n++ {
		if err := commitVersion(s, n); err != nil {
			t.Fatal(err)
		}
		if v := loadedVersion(t, dir); v != n {
			t.Fatalf("loaded %d after committing %d", v, n)
		}
	}
	// Committing the same content again reuses the set.
	if err := commitVersion(s, 3); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, "state.json"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("state.json: %v %v", fi, err)
	}
	// A tampered set file is detected rather than loaded.
	st, _ := s.Load()
	if err := os.WriteFile(filepath.Join(dir, "sets", st.Refs[0].Set, "a.yaml"), []byte("evil"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ReadSet(st.Refs[0]); err == nil || !strings.Contains(err.Error(), "changed on disk") {
		t.Fatalf("ReadSet of a tampered set = %v", err)
	}
}
