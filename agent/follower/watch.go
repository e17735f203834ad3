package follower

import (
	"context"
	"errors"
	"os"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"
)

// watcher notices edits and deletions in the rules directory. inotify is not recursive, so
// every directory holding an accepted file is watched, and the list is refreshed after each
// examination (a removed directory comes back with its restored files). Events caused by the
// follower's own writes (its temp files, and files holding what it recorded writing) are
// dropped: only someone else's change starts an examination.
type watcher struct {
	f *Follower
	w *fsnotify.Watcher
}

// reconciles counts examinations of the rules directory (tests check the follower's own
// writes do not cause any).
var reconciles atomic.Int64

func newWatcher(f *Follower) (*watcher, error) {
	if err := os.MkdirAll(f.rulesDir, 0o755); err != nil {
		return nil, err
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, err
	}
	wt := &watcher{f: f, w: w}
	wt.addDirs()
	return wt, nil
}

// addDirs watches the rules directory and every directory on the way to a file the follower
// keeps there. Adding a watched directory again is a no-op. The follower calls it right after
// writing files (watchNew), so a directory it created is watched before anyone can change the
// files in it.
func (wt *watcher) addDirs() {
	for _, d := range wt.f.active.dirs() {
		if err := wt.w.Add(d); err != nil && !errors.Is(err, os.ErrNotExist) {
			wt.f.log.Warn().Err(err).Str("dir", d).Msg("cannot watch rules directory")
		}
	}
}

// watchNew adds the directories of newly written active files to the watch (f.mu held).
func (f *Follower) watchNew() {
	if f.watch != nil {
		f.watch.addDirs()
	}
}

// relevant reports whether ev may be someone else's change to an accepted file.
func (wt *watcher) relevant(ev fsnotify.Event) bool {
	if ev.Op == fsnotify.Chmod {
		return false
	}
	if fi, err := os.Lstat(ev.Name); err == nil && fi.IsDir() {
		// A directory appeared: the follower's own (watched by watchNew), or one an operator
		// restores after removing it, which already started an examination.
		wt.addDirs()
		return false
	}
	return !wt.f.active.own(ev.Name)
}

func (wt *watcher) run(ctx context.Context) {
	defer func() {
		wt.f.mu.Lock()
		wt.f.watch = nil
		wt.f.mu.Unlock()
		wt.w.Close()
	}()
	// Wait for the directory to be quiet: editors write in several steps. An error (an
	// overflow) means events were lost: examine everything.
	debounceEvents(ctx, wt.w, wt.f.o.Debounce, wt.relevant, func(err error) {
		wt.f.log.Warn().Err(err).Msg("rules directory watch error; re-examining the rule files")
	}, func() {
		wt.f.reconcileDisk()
		wt.addDirs()
	})
}

// debounceEvents is the one fsnotify loop of the follower (rule files, pins file): fire runs
// once the watched directory has been quiet for delay after a relevant event or a watch error
// (onErr is told first), until ctx ends or the watcher closes.
func debounceEvents(ctx context.Context, w *fsnotify.Watcher, delay time.Duration, relevant func(fsnotify.Event) bool, onErr func(error), fire func()) {
	debounce := time.NewTimer(time.Hour)
	debounce.Stop()
	defer debounce.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-w.Events:
			if !ok {
				return
			}
			if relevant(ev) {
				debounce.Reset(delay)
			}
		case err, ok := <-w.Errors:
			if !ok {
				return
			}
			onErr(err)
			debounce.Reset(delay)
		case <-debounce.C:
			fire()
		}
	}
}

// reconcileDisk compares the active files with the accepted sets: missing files (and
// remnants of the follower's own interrupted writes) are restored; files an operator edited
// form a candidate that goes through the same transaction as a new artifact (promote),
// accepted as a local edit, or ignored and restored.
func (f *Follower) reconcileDisk() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.sink == nil {
		return
	}
	reconciles.Add(1)
	edits := map[int]map[string][]byte{}
	for i, a := range f.acc {
		if a == nil {
			continue
		}
		for _, p := range sortedKeys(a.content) {
			want := a.content[p]
			rel := f.activeRel(i, p)
			switch st, cur := f.active.inspect(rel, want); st {
			case missing, remnant:
				if werr := f.active.write(rel, want); werr != nil {
					f.log.Error().Err(werr).Str("file", f.active.abs(rel)).Msg("cannot restore the rule file")
				} else {
					f.log.Warn().Str("file", f.active.abs(rel)).Str("ref", f.names[i]).Msg("rule file was removed on disk; restored from the accepted set")
				}
			case edited:
				if edits[i] == nil {
					edits[i] = map[string][]byte{}
				}
				edits[i][p] = cur
			}
		}
	}
	f.watchNew()
	if len(edits) == 0 {
		return
	}
	c := &candidate{next: make([]*accepted, len(f.acc)), changed: map[int]bool{}, sources: map[string]SetSource{}}
	copy(c.next, f.acc)
	now := time.Now()
	for i, e := range edits {
		merged := make(map[string][]byte, len(f.acc[i].content))
		for p, b := range f.acc[i].content {
			merged[p] = b
		}
		for p, b := range e {
			merged[p] = b
		}
		a := &accepted{st: newRefState(f.names[i], f.acc[i].st.Digest, merged, true, now), content: merged}
		c.next[i], c.changed[i] = a, true
		c.sources[a.st.Set] = SetSource{Content: merged}
	}
	gen, err := f.promote(c, false)
	if err != nil {
		var rej *rejectedError
		if errors.As(err, &rej) && rej.invalid {
			f.log.Error().Str("reason", rej.Error()).Msg("local edit of a followed rule file ignored; the file was restored from the accepted set")
		} else {
			f.log.Error().Err(err).Msg("local edit of a followed rule file not applied; the file was restored from the accepted set")
		}
		for i, e := range edits {
			for _, p := range sortedKeys(e) {
				if werr := f.active.write(f.activeRel(i, p), f.acc[i].content[p]); werr != nil {
					f.log.Error().Err(werr).Str("file", f.active.abs(f.activeRel(i, p))).Msg("cannot restore the rule file")
				}
			}
		}
		return
	}
	for i, e := range edits {
		f.health[i].Signer = "" // the files are no longer the signed ones
		for p := range e {
			f.log.Info().Str("file", f.ActivePath(f.names[i], p)).Str("ref", f.names[i]).Uint64("generation", gen).Msg("artifacts accepted: local edit of a followed rule file")
		}
	}
}
