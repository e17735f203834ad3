package follower

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Every directory created inside a staged set must be fsynced before the set is renamed into
// place, or a crash after state.json names the set can lose a directory entry.
func TestStoreSyncsIntermediateDirs(t *testing.T) {
	var mu sync.Mutex
	synced := map[string]bool{}
	old := syncDir
	syncDir = func(d string) {
		mu.Lock()
		synced[d] = true
		mu.Unlock()
		old(d)
	}
	defer func() { syncDir = old }()
	s, err := OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{"a/b/c/rules.yaml": []byte("- list: x\n  items: []\n")}
	rs := newRefState("example.com/r:1", "sha256:00", files, false, time.Now())
	if err := s.Commit(State{Refs: []RefState{rs}}, map[string]SetSource{rs.Set: {Content: files}}); err != nil {
		t.Fatal(err)
	}
	var rel []string
	for d := range synced {
		if i := strings.Index(d, string(filepath.Separator)+"set-"); i >= 0 {
			rel = append(rel, d[i+1:])
		}
	}
	for _, want := range []string{"", "/a", "/a/b", "/a/b/c"} {
		found := false
		for _, r := range rel {
			if j := strings.IndexByte(r, '/'); (j < 0 && want == "") || (j >= 0 && r[j:] == want) {
				found = true
			}
		}
		if !found {
			t.Errorf("staged directory %q not fsynced (synced: %v)", "set-*"+want, rel)
		}
	}
}

// A crash inside atomicfile.WriteFile leaves a temp file next to state.json; opening the store
// removes it.
func TestStoreRemovesStateTempLeftovers(t *testing.T) {
	dir := t.TempDir()
	if _, err := OpenStore(dir); err != nil {
		t.Fatal(err)
	}
	left := filepath.Join(dir, ".state.json.tmp-123456")
	if err := os.WriteFile(left, []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenStore(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(left); !os.IsNotExist(err) {
		t.Errorf("leftover %s still there (err %v)", left, err)
	}
}
