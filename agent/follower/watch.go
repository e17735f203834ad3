package follower

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
)

// watcher notices edits and deletions in the rules directory. inotify is not recursive, so
// every directory holding an accepted file is watched, and the list is refreshed after each
// examination (a removed directory comes back with its restored files).
type watcher struct {
	f *Follower
	w *fsnotify.Watcher
}

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

// addDirs watches the rules directory and every directory on the way to an accepted file.
// Adding a watched directory again is a no-op.
func (wt *watcher) addDirs() {
	f := wt.f
	dirs := map[string]bool{f.rulesDir: true}
	f.mu.Lock()
	for i, a := range f.acc {
		if a == nil {
			continue
		}
		for p := range a.content {
			for d := filepath.Dir(f.ActivePath(f.names[i], p)); len(d) > len(f.rulesDir); d = filepath.Dir(d) {
				dirs[d] = true
			}
		}
	}
	f.mu.Unlock()
	for d := range dirs {
		if err := wt.w.Add(d); err != nil && !errors.Is(err, os.ErrNotExist) {
			f.log.Warn().Err(err).Str("dir", d).Msg("cannot watch rules directory")
		}
	}
}

func (wt *watcher) run(ctx context.Context) {
	defer wt.w.Close()
	debounce := time.NewTimer(time.Hour)
	debounce.Stop()
	for {
		select {
		case <-ctx.Done():
			debounce.Stop()
			return
		case ev, ok := <-wt.w.Events:
			if !ok {
				return
			}
			if ev.Op == fsnotify.Chmod {
				continue
			}
			// Wait for the directory to be quiet: editors write in several steps.
			debounce.Reset(wt.f.o.Debounce)
		case err, ok := <-wt.w.Errors:
			if !ok {
				return
			}
			// An overflow means events were lost: examine everything.
			wt.f.log.Warn().Err(err).Msg("rules directory watch error; re-examining the rule files")
			debounce.Reset(wt.f.o.Debounce)
		case <-debounce.C:
			wt.f.reconcileDisk()
			wt.addDirs()
		}
	}
}
