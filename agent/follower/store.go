package follower

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/falco-k8s/falco-k8s/artifact/extract"
	"github.com/falco-k8s/falco-k8s/internal/atomicfile"
)

// crashHook, when set (tests only), is called before every write, rename, fsync and removal of
// a promotion and of the active files' materialisation, with the step's name: the crash tests
// stop the process at exactly that point.
var crashHook atomic.Pointer[func(step string)]

func step(name string) {
	if h := crashHook.Load(); h != nil {
		(*h)(name)
	}
}

// stepper is the atomicfile hook naming the steps of one file's replacement.
func stepper(prefix string) func(string) {
	if crashHook.Load() == nil {
		return nil
	}
	return func(s string) { step(prefix + ":" + s) }
}

// stateVersion is the format version of state.json.
const stateVersion = 1

// FileEntry is one accepted rule file: its path inside the artifact and content hash.
type FileEntry struct {
	Path   string `json:"path"`
	SHA256 string `json:"sha256"`
}

// RefState is the accepted set of one followed reference.
type RefState struct {
	Ref string `json:"ref"`
	// Digest is the root digest of the artifact the files came from.
	Digest string `json:"digest"`
	// Set names the content-addressed directory holding the files (sets/<Set>/<Path>).
	Set   string      `json:"set"`
	Files []FileEntry `json:"files"`
	// LocalEdit is true when a file was edited on disk and accepted after the artifact was.
	LocalEdit  bool      `json:"local_edit,omitempty"`
	AcceptedAt time.Time `json:"accepted_at"`
	// Signer is who signed Digest, when its signature was verified (signature.Verified's
	// text); committed with the set so /status reports it after a restart. Empty for a local
	// edit: the files are no longer what was signed.
	Signer string `json:"signer,omitempty"`
}

// State is state.json: every reference's accepted set, in follow.refs order.
type State struct {
	Version int        `json:"version"`
	Refs    []RefState `json:"refs"`
}

// Ref returns the accepted set of ref, if any.
func (s State) Ref(ref string) (RefState, bool) {
	for _, r := range s.Refs {
		if r.Ref == ref {
			return r, true
		}
	}
	return RefState{}, false
}

// Store keeps the accepted sets on disk so that a restart, or a kill -9 at any moment, finds
// exactly the last committed set:
//
//	<dir>/state.json        the commit point, replaced by temp file + fsync + rename + dir fsync
//	<dir>/sets/<hash>/...   immutable content-addressed directories, renamed in whole
//	<dir>/staging/          work area on the same filesystem (downloads), emptied at open
//	<dir>/active.json       what the follower last wrote to the active files (materialize.go)
//
// A set directory is complete before it is renamed into sets/, and state.json only ever names
// complete sets, so the rename of state.json is the single atomic switch from the old to the
// new set: a crash before it leaves the old set committed (the new set directory is a remnant
// removed at the next open), a crash after it the new one. The active files are derived from
// the committed set afterwards, never the other way round. Sets no longer named are removed
// after the switch (or at the next open after a crash).
type Store struct {
	dir string
}

// OpenStore opens (creating it) the store in dir, clears leftovers of an interrupted commit
// and removes sets that state.json does not name.
func OpenStore(dir string) (*Store, error) {
	s := &Store{dir: dir}
	for _, d := range []string{dir, s.setsDir(), s.StagingDir()} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("follower state directory: %w", err)
		}
	}
	entries, err := os.ReadDir(s.StagingDir())
	if err != nil {
		return nil, fmt.Errorf("follower staging directory: %w", err)
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(s.StagingDir(), e.Name())); err != nil {
			return nil, fmt.Errorf("clear follower staging directory: %w", err)
		}
	}
	// Temp files of a state.json or active.json replacement interrupted by a crash.
	if _, err := atomicfile.RemoveTemps(dir); err != nil {
		return nil, fmt.Errorf("clear follower state directory: %w", err)
	}
	st, err := s.Load()
	if err != nil {
		return nil, err
	}
	s.gc(st)
	return s, nil
}

func (s *Store) setsDir() string { return filepath.Join(s.dir, "sets") }

// StagingDir is where downloads are staged: on the same filesystem as the sets, so promotion is
// a rename.
func (s *Store) StagingDir() string { return filepath.Join(s.dir, "staging") }

func (s *Store) statePath() string { return filepath.Join(s.dir, "state.json") }

// Load reads state.json; a missing file is an empty state.
func (s *Store) Load() (State, error) {
	b, err := os.ReadFile(s.statePath())
	if errors.Is(err, os.ErrNotExist) {
		return State{Version: stateVersion}, nil
	}
	if err != nil {
		return State{}, fmt.Errorf("read follower state: %w", err)
	}
	var st State
	if err := json.Unmarshal(b, &st); err != nil {
		// Only reachable by editing the file: renames never expose a partial one.
		return State{}, fmt.Errorf("follower state %s is corrupt (remove it to start from the registry again): %w", s.statePath(), err)
	}
	if st.Version != stateVersion {
		return State{}, fmt.Errorf("follower state %s has format version %d, this agent reads %d", s.statePath(), st.Version, stateVersion)
	}
	return st, nil
}

// ReadSet returns the content of r's files, verified against their recorded hashes.
func (s *Store) ReadSet(r RefState) (map[string][]byte, error) {
	out := make(map[string][]byte, len(r.Files))
	for _, f := range r.Files {
		p, err := s.filePath(r.Set, f.Path)
		if err != nil {
			return nil, err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("accepted file %s of %s: %w", f.Path, r.Ref, err)
		}
		if got := hashHex(b); got != f.SHA256 {
			return nil, fmt.Errorf("accepted file %s of %s changed on disk (sha256 %s, want %s)", f.Path, r.Ref, got, f.SHA256)
		}
		out[f.Path] = b
	}
	return out, nil
}

func (s *Store) filePath(set, rel string) (string, error) {
	clean, err := extract.CleanName(rel)
	if err != nil || clean == "" || clean != rel || strings.ContainsAny(set, `/\.`) || set == "" {
		// state.json is ours, but never follow a tampered path outside the store.
		return "", fmt.Errorf("follower state names an invalid file %q in set %q", rel, set)
	}
	return filepath.Join(s.setsDir(), set, filepath.FromSlash(clean)), nil
}

// SetSource is the content of a set that may not be on disk yet. Staged optionally names, by
// path, files already written and fsynced in the staging directory (the extracted download):
// they are moved into the set instead of being written a second time.
type SetSource struct {
	Content map[string][]byte
	Staged  map[string]string
}

// Commit makes next the accepted state. sources holds the files of every set that is not on
// disk yet, by set name. Either the whole of next is committed, or (on error or a crash) the
// previous state stays.
func (s *Store) Commit(next State, sources map[string]SetSource) error {
	next.Version = stateVersion
	for _, r := range next.Refs {
		if err := s.writeSet(r, sources[r.Set]); err != nil {
			return err
		}
	}
	b, err := json.MarshalIndent(next, "", "  ")
	if err != nil {
		return err
	}
	// The commit point.
	if err := atomicfile.WriteFileWith(s.statePath(), b, 0o600, atomicfile.Options{Hook: stepper("state.json")}); err != nil {
		return fmt.Errorf("commit follower state: %w", err)
	}
	s.gc(next)
	return nil
}

// writeSet creates sets/<r.Set> unless it exists: files are moved (or written) and fsynced in a
// staging directory that is then renamed into place whole.
func (s *Store) writeSet(r RefState, src SetSource) error {
	final := filepath.Join(s.setsDir(), r.Set)
	if fi, err := os.Stat(final); err == nil && fi.IsDir() {
		return nil // content-addressed: an existing set has this very content
	}
	step("set:mkdir")
	tmp, err := os.MkdirTemp(s.StagingDir(), "set-")
	if err != nil {
		return fmt.Errorf("stage accepted set: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			_ = os.RemoveAll(tmp)
		}
	}()
	dirs := map[string]bool{tmp: true}
	for _, f := range r.Files {
		b, have := src.Content[f.Path]
		if !have {
			return fmt.Errorf("stage accepted set of %s: no content for %s", r.Ref, f.Path)
		}
		clean, err := extract.CleanName(f.Path)
		if err != nil || clean != f.Path {
			return fmt.Errorf("stage accepted set of %s: invalid path %q", r.Ref, f.Path)
		}
		p := filepath.Join(tmp, filepath.FromSlash(clean))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := placeFile(p, f.Path, b, src.Staged[f.Path]); err != nil {
			return fmt.Errorf("stage accepted set of %s: %w", r.Ref, err)
		}
		// Every directory MkdirAll may have created, not only the file's own: an unsynced
		// intermediate entry could vanish in a crash after state.json names the set.
		for d := filepath.Dir(p); len(d) > len(tmp); d = filepath.Dir(d) {
			dirs[d] = true
		}
	}
	keys := make([]string, 0, len(dirs))
	for d := range dirs {
		keys = append(keys, d)
	}
	sort.Strings(keys) // a fixed order of steps for the crash tests
	for _, d := range keys {
		rel, _ := filepath.Rel(tmp, d)
		step("set:syncdir " + filepath.ToSlash(rel))
		syncDir(d)
	}
	step("set:rename")
	if err := os.Rename(tmp, final); err != nil {
		return fmt.Errorf("promote accepted set of %s: %w", r.Ref, err)
	}
	ok = true
	step("sets:syncdir")
	syncDir(s.setsDir())
	return nil
}

// placeFile puts file rel of a set at p: the staged download is renamed there when it still
// holds b (it was fsynced when extracted), otherwise b is written and fsynced.
func placeFile(p, rel string, b []byte, staged string) error {
	if staged != "" {
		if cur, err := os.ReadFile(staged); err == nil && bytes.Equal(cur, b) {
			step("set:" + rel + ":rename")
			if err := os.Rename(staged, p); err == nil {
				// The archive's mode is not the set's: sets are read by the agent only.
				step("set:" + rel + ":chmod")
				return os.Chmod(p, 0o644)
			}
		}
	}
	return writeSynced(p, rel, b, 0o644)
}

// syncDir is atomicfile.SyncDir (a variable for tests).
var syncDir = atomicfile.SyncDir

// gc removes sets that st does not name. Failures only cost disk space.
func (s *Store) gc(st State) {
	keep := map[string]bool{}
	for _, r := range st.Refs {
		keep[r.Set] = true
	}
	entries, err := os.ReadDir(s.setsDir())
	if err != nil {
		return
	}
	for _, e := range entries {
		if !keep[e.Name()] {
			step("gc:remove set")
			_ = os.RemoveAll(filepath.Join(s.setsDir(), e.Name()))
		}
	}
}

// writeSynced writes b to p (a new file in a set being staged) and fsyncs it.
func writeSynced(p, rel string, b []byte, mode os.FileMode) error {
	step("set:" + rel + ":create")
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	step("set:" + rel + ":write")
	_, err = f.Write(b)
	if err == nil {
		step("set:" + rel + ":fsync")
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func hashHex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// newRefState describes files (path -> content) as a RefState with its content-addressed set
// name: the hash of the sorted (path, content hash) list, so equal content shares a set.
func newRefState(ref, digest string, files map[string][]byte, localEdit bool, now time.Time) RefState {
	r := RefState{Ref: ref, Digest: digest, LocalEdit: localEdit, AcceptedAt: now.UTC()}
	paths := make([]string, 0, len(files))
	for p := range files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	h := sha256.New()
	for _, p := range paths {
		sum := hashHex(files[p])
		r.Files = append(r.Files, FileEntry{Path: p, SHA256: sum})
		fmt.Fprintf(h, "%s\x00%s\n", path.Clean(p), sum)
	}
	r.Set = hex.EncodeToString(h.Sum(nil))
	return r
}
