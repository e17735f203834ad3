package follower

import (
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"sync"

	"github.com/rs/zerolog"

	"github.com/falco-k8s/falco-k8s/internal/atomicfile"
)

// activeFiles derives the active files (rules.state_dir/rules/<ref>/<path>, what users look at
// and edit) from the committed sets. They are a view: the committed state is authoritative.
//
// To tell an operator's edit from a file a crash left behind, every file the follower writes
// is recorded with its content hash in active.json (replaced atomically once the files are
// written). At any moment a file holds the committed content (in sync), what the follower last
// wrote there (a remnant of an interrupted promotion: rewritten from the committed set), or
// anything else (an operator's edit: validated like a new artifact).
type activeFiles struct {
	root       string // the rules directory
	recordPath string // active.json
	log        zerolog.Logger

	mu  sync.Mutex        // guards rec; the watcher reads it
	rec map[string]string // slash path under root -> sha256 of what the follower wrote there
}

// activeRecord is active.json.
type activeRecord struct {
	Version int               `json:"version"`
	Files   map[string]string `json:"files"`
}

// fileState is what an active file holds compared with the committed set.
type fileState int

const (
	inSync  fileState = iota // the committed content
	missing                  // absent, or not a regular file
	remnant                  // the follower's previous write: an interrupted promotion
	edited                   // anything else: an operator's edit
)

func openActive(root, recordPath string, log zerolog.Logger) *activeFiles {
	af := &activeFiles{root: root, recordPath: recordPath, log: log, rec: map[string]string{}}
	b, err := os.ReadFile(recordPath)
	if err == nil {
		var r activeRecord
		if jerr := json.Unmarshal(b, &r); jerr != nil || r.Version != stateVersion {
			// Only reachable by editing it: without a record, differences count as edits.
			log.Warn().Str("file", recordPath).Msg("record of the active rule files is unreadable; differing files will be validated as local edits")
		} else if r.Files != nil {
			af.rec = r.Files
		}
	}
	return af
}

func (af *activeFiles) abs(rel string) string { return filepath.Join(af.root, filepath.FromSlash(rel)) }

// inspect reads the active file rel and compares it with want, the committed content.
func (af *activeFiles) inspect(rel string, want []byte) (fileState, []byte) {
	fi, err := os.Lstat(af.abs(rel))
	if err != nil || !fi.Mode().IsRegular() {
		return missing, nil
	}
	cur, err := os.ReadFile(af.abs(rel))
	if err != nil {
		return missing, nil
	}
	h := hashHex(cur)
	switch {
	case h == hashHex(want):
		return inSync, cur
	case h == af.recorded(rel):
		return remnant, cur
	}
	return edited, cur
}

func (af *activeFiles) recorded(rel string) string {
	af.mu.Lock()
	defer af.mu.Unlock()
	return af.rec[rel]
}

// own reports whether the active file rel holds what the follower wrote there, or is a file
// the follower does not keep: the watcher ignores events for it (they are the follower's own
// writes). A crash remnant's temp files are never the operator's either.
func (af *activeFiles) own(abs string) bool {
	if atomicfile.IsTemp(filepath.Base(abs)) {
		return true
	}
	rel, err := filepath.Rel(af.root, abs)
	if err != nil {
		return false
	}
	want, tracked := af.lookup(filepath.ToSlash(rel))
	if !tracked {
		return true
	}
	cur, err := os.ReadFile(abs)
	return err == nil && hashHex(cur) == want
}

func (af *activeFiles) lookup(rel string) (string, bool) {
	af.mu.Lock()
	defer af.mu.Unlock()
	h, ok := af.rec[rel]
	return h, ok
}

// write replaces the active file rel with b. The record is updated before the rename so the
// watcher recognises the event as the follower's own, and put back if the write fails.
func (af *activeFiles) write(rel string, b []byte) error {
	dst := af.abs(rel)
	if fi, err := os.Lstat(dst); err == nil && !fi.Mode().IsRegular() {
		// A directory or link where a rule file belongs: replace it.
		step("active:" + rel + ":remove")
		if err := os.RemoveAll(dst); err != nil {
			return err
		}
	}
	af.mu.Lock()
	prev, had := af.rec[rel]
	af.rec[rel] = hashHex(b)
	af.mu.Unlock()
	err := atomicfile.WriteFileWith(dst, b, 0o644, atomicfile.Options{MkdirAll: true, Hook: stepper("active:" + rel)})
	if err != nil {
		af.mu.Lock()
		if had {
			af.rec[rel] = prev
		} else {
			delete(af.rec, rel)
		}
		af.mu.Unlock()
	}
	return err
}

// materialize makes the active files hold want (slash path under the rules directory ->
// content): each file is written only when it differs, files the follower wrote before and
// want no longer has are removed unless someone changed them since, and the record is saved.
// keep lists files to leave as they are (edits waiting for validation at start-up). Failures
// are logged: the directory is a view, rebuilt from the committed set at the next start.
func (af *activeFiles) materialize(want map[string][]byte, keep map[string]bool) {
	for _, rel := range sortedKeys(want) {
		if keep[rel] {
			continue
		}
		st, _ := af.inspect(rel, want[rel])
		if st == inSync {
			af.mu.Lock()
			af.rec[rel] = hashHex(want[rel])
			af.mu.Unlock()
			continue
		}
		if err := af.write(rel, want[rel]); err != nil {
			af.log.Error().Err(err).Str("file", af.abs(rel)).Msg("cannot write the active rule file")
		} else if st == remnant {
			af.log.Info().Str("file", af.abs(rel)).Msg("finished an interrupted promotion: rule file rewritten from the committed set")
		}
	}
	af.mu.Lock()
	var dropped []string
	for rel := range af.rec {
		if _, ok := want[rel]; !ok {
			dropped = append(dropped, rel)
		}
	}
	af.mu.Unlock()
	sort.Strings(dropped)
	for _, rel := range dropped {
		if b, err := os.ReadFile(af.abs(rel)); err == nil && hashHex(b) == af.recorded(rel) {
			af.mu.Lock()
			delete(af.rec, rel)
			af.mu.Unlock()
			step("active:" + rel + ":remove")
			_ = os.Remove(af.abs(rel))
		} else {
			af.mu.Lock()
			delete(af.rec, rel) // changed by someone, or gone: no longer ours
			af.mu.Unlock()
		}
	}
	for rel := range keep {
		// An edit waiting for validation: known, with the committed hash if nothing better,
		// so it is watched and still counts as an edit at the next start.
		af.mu.Lock()
		if _, ok := af.rec[rel]; !ok {
			af.rec[rel] = hashHex(want[rel])
		}
		af.mu.Unlock()
	}
	if err := af.save(); err != nil {
		af.log.Error().Err(err).Msg("cannot record the active rule files")
	}
}

// save writes the record if it differs from active.json.
func (af *activeFiles) save() error {
	af.mu.Lock()
	b, err := json.MarshalIndent(activeRecord{Version: stateVersion, Files: af.rec}, "", "  ")
	af.mu.Unlock()
	if err != nil {
		return err
	}
	if cur, err := os.ReadFile(af.recordPath); err == nil && string(cur) == string(b) {
		return nil
	}
	return atomicfile.WriteFileWith(af.recordPath, b, 0o600, atomicfile.Options{Hook: stepper("active.json")})
}

// removeTemps deletes the temp files a crash left anywhere under the rules directory.
func (af *activeFiles) removeTemps() {
	_ = filepath.WalkDir(af.root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			if n, _ := atomicfile.RemoveTemps(p); n > 0 {
				af.log.Info().Str("dir", p).Int("files", n).Msg("removed temp files of an interrupted write")
			}
		}
		return nil
	})
}

// recover runs at start-up, before anything else: it removes crash remnants, finishes an
// interrupted promotion (files that are missing or still hold the follower's previous write
// are rewritten from the committed set) and returns the files an operator edited, which are
// left for validation.
func (af *activeFiles) recover(want map[string][]byte) map[string][]byte {
	af.removeTemps()
	edits := map[string][]byte{}
	keep := map[string]bool{}
	for _, rel := range sortedKeys(want) {
		if st, cur := af.inspect(rel, want[rel]); st == edited {
			edits[rel], keep[rel] = cur, true
		}
	}
	af.materialize(want, keep)
	return edits
}

// dirs lists the rules directory and every directory on the way to a file the follower keeps.
func (af *activeFiles) dirs() []string {
	set := map[string]bool{af.root: true}
	af.mu.Lock()
	for rel := range af.rec {
		for d := filepath.Dir(af.abs(rel)); len(d) > len(af.root); d = filepath.Dir(d) {
			set[d] = true
		}
	}
	af.mu.Unlock()
	return sortedKeys(set)
}
