package follower

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/opencontainers/go-digest"

	"github.com/falco-k8s/falco-k8s/agent/config"
	"github.com/falco-k8s/falco-k8s/agent/status"
	"github.com/falco-k8s/falco-k8s/artifact/ref"
)

// Follow modes (follow.mode).
const (
	ModePoll   = config.FollowPoll
	ModePinned = config.FollowPinned
)

// MaxPinsFile bounds the pins file: a few hundred bytes per reference.
const MaxPinsFile = 1 << 20

// PinsFile is the pinned mode's input, written atomically by the charm from what the leader
// published: {"pins":[{"ref":"ghcr.io/org/rules:1","digest":"sha256:<hex>"}]}. Other keys are
// allowed (and ignored) so the charm can add to it without breaking older agents.
type PinsFile struct {
	Pins []Pin `json:"pins"`
}

// Pin is the digest one reference (as in follow.refs) must run.
type Pin struct {
	Ref    string `json:"ref"`
	Digest string `json:"digest"`
}

// PinsError is a pins file that cannot be used; the pins read before stay in force.
type PinsError struct {
	Path string
	Err  error
}

func (e *PinsError) Error() string {
	return fmt.Sprintf("pins file %s: %v; keeping the pins read before", e.Path, e.Err)
}
func (e *PinsError) Unwrap() error { return e.Err }

// ParsePins parses a pins file into the digest of each reference, keyed by the reference's
// canonical form (ref.Reference.String(), as the follower names references). Every entry must
// name a reference with a tag (not a digest) and a sha256 digest, each reference once.
func ParsePins(data []byte) (map[string]string, error) {
	if len(data) > MaxPinsFile {
		return nil, fmt.Errorf("larger than %d bytes", MaxPinsFile)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	var pf PinsFile
	if err := dec.Decode(&pf); err != nil {
		return nil, fmt.Errorf("not a pins document (want {\"pins\":[{\"ref\":...,\"digest\":...}]}): %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("trailing data after the pins document")
	}
	if pf.Pins == nil {
		return nil, errors.New(`no "pins" list`)
	}
	out := make(map[string]string, len(pf.Pins))
	for i, p := range pf.Pins {
		r, err := ref.Parse(p.Ref)
		if err != nil {
			return nil, fmt.Errorf("pins[%d]: %w", i, err)
		}
		if r.Digest != "" {
			return nil, fmt.Errorf("pins[%d]: reference %s must name a tag, as in follow.refs; the digest goes in \"digest\"", i, r)
		}
		d, err := digest.Parse(p.Digest)
		if err != nil || d.Algorithm() != digest.SHA256 {
			return nil, fmt.Errorf("pins[%d]: invalid digest %q for %s: want sha256:<64 hex digits>", i, p.Digest, r)
		}
		name := r.String()
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("pins[%d]: %s is pinned twice", i, name)
		}
		out[name] = d.String()
	}
	return out, nil
}

// WritePins is the pins file's one writer format, for tests and tools (the charm writes the
// same JSON through Pebble).
func WritePins(pins []Pin) ([]byte, error) {
	list := slices.Clone(pins)
	if list == nil {
		list = []Pin{} // "pins": [] is no pins; null is not a pins document
	}
	return json.Marshal(PinsFile{Pins: list})
}

// pinned reports whether the follower applies pins instead of polling.
func (f *Follower) pinned() bool { return f.o.Mode == ModePinned }

// waitingReason is /status's word for a reference with no pin yet.
func (f *Follower) waitingReason() string {
	if !f.pinsSeen {
		return fmt.Sprintf("waiting for the leader's published rules: no pins file yet (%s); the current rules keep running", f.o.PinsFile)
	}
	return fmt.Sprintf("waiting for the leader's published rules: %s names no digest for this reference; the current rules keep running", f.o.PinsFile)
}

// loadPins re-reads the pins file (f.mu held) and reports whether the pins changed. A missing
// file means no pins yet; an unreadable or invalid one keeps the pins read before, and says
// so in every reference's status.
func (f *Follower) loadPins() bool {
	data, err := readBounded(f.o.PinsFile, MaxPinsFile)
	var pins map[string]string
	switch {
	case errors.Is(err, fs.ErrNotExist):
		f.pinsErr = ""
		if f.pinsSeen {
			f.log.Warn().Str("file", f.o.PinsFile).Msg("the pins file is gone; keeping the current rules")
		}
		changed := f.pinsSeen || len(f.pins) > 0
		f.pinsSeen, f.pins = false, nil
		return changed
	case err == nil:
		pins, err = ParsePins(data)
	}
	if err != nil {
		perr := &PinsError{Path: f.o.PinsFile, Err: err}
		if f.pinsErr != perr.Error() {
			f.log.Error().Err(perr).Msg("pinned rules: cannot use the pins file")
		}
		f.pinsErr = perr.Error()
		return false
	}
	f.pinsErr, f.pinsSeen = "", true
	for name := range pins {
		if f.index(name) < 0 {
			f.log.Warn().Str("ref", name).Str("file", f.o.PinsFile).Msg("pins file names a reference that is not in follow.refs; ignoring it")
		}
	}
	if mapsEqual(pins, f.pins) {
		return false
	}
	f.pins = pins
	f.log.Info().Int("pins", len(pins)).Str("file", f.o.PinsFile).Msg("pinned rules: pins read")
	return true
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// readBounded reads at most limit+1 bytes of path (ParsePins refuses more).
func readBounded(path string, limit int64) ([]byte, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	return io.ReadAll(io.LimitReader(fh, limit+1))
}

// notePins records, after a pinned round (f.mu held), which pinned digest each reference
// could not apply and why, for /status. A dry run's results change nothing.
func (f *Follower) notePins(results map[int]*status.SyncResult, dryRun bool) {
	for i := range f.refs {
		h := &f.health[i]
		h.Mode = ModePinned
		d, ok := f.pins[f.names[i]]
		h.PinnedDigest = d
		if r := results[i]; r != nil && ok && !dryRun {
			switch r.Result {
			case ResultAccepted, ResultUnchanged:
				f.pinFail[i] = ""
			default:
				f.pinFail[i] = fmt.Sprintf("pinned digest %s not applied: %s; the last good rules keep running", d, r.Reason)
			}
		}
		why := f.pinFail[i]
		if !ok {
			why = f.waitingReason()
		}
		h.PinError = joinReasons(f.pinsErr, why)
	}
}

// joinReasons joins the non-empty reasons with "; ".
func joinReasons(reasons ...string) string {
	var out []string
	for _, r := range reasons {
		if r != "" {
			out = append(out, r)
		}
	}
	return strings.Join(out, "; ")
}

// runPinned is Run in pinned mode: no scheduled registry checks. A round runs at start, when
// the pins file changes (fsnotify on its directory, and a slow re-read in case a watch is
// lost) and, after a registry error, with the same backoff as polling; a digest already
// accepted costs nothing.
func (f *Follower) runPinned(ctx context.Context) error {
	wake := make(chan struct{}, 1)
	done := make(chan struct{})
	defer func() { <-done }()
	// Watching before the first read: a change in between is not lost.
	w := f.newPinsWatcher()
	go func() { defer close(done); f.watchPins(ctx, w, wake) }()
	all := make([]int, len(f.refs))
	for i := range all {
		all[i] = i
	}
	f.reloadPins()
	reread := time.NewTicker(pinsReread)
	defer reread.Stop()
	for {
		var wait time.Duration
		for _, r := range f.round(ctx, all, false, false) {
			d := f.delay(f.index(r.Ref), r)
			if r.Result == ResultError && (wait == 0 || d < wait) {
				wait = d
			}
		}
		var retry <-chan time.Time
		if wait > 0 {
			retry = time.After(wait)
		}
		// Until something can change the outcome: a pin changed, or a registry error's retry.
		for again := false; !again; {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-retry:
				again = true
			case <-wake:
				if again = f.reloadPins(); !again {
					f.reportPins() // the file may have become invalid: say so
				}
			case <-reread.C:
				again = f.reloadPins()
			}
		}
	}
}

func (f *Follower) reloadPins() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.loadPins()
}

// pinsReread is how often the pins file is read again without an fsnotify event: a file read,
// never a registry request.
const pinsReread = time.Minute

// reportPins republishes the status after a pins file event that changed no pin (its error,
// if it became invalid).
func (f *Follower) reportPins() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.notePins(nil, false)
	f.reportHealth()
}

// newPinsWatcher watches the pins file's directory: the charm replaces the file by rename,
// which a watch on the file itself would lose. Nil when it cannot (the periodic re-read
// remains).
func (f *Follower) newPinsWatcher() *fsnotify.Watcher {
	dir := filepath.Dir(f.o.PinsFile)
	w, err := fsnotify.NewWatcher()
	if err == nil {
		if err = os.MkdirAll(dir, 0o755); err == nil {
			err = w.Add(dir)
		}
		if err != nil {
			w.Close()
		}
	}
	if err != nil {
		f.log.Error().Err(err).Str("dir", dir).Dur("reread", pinsReread).Msg("cannot watch the pins file; re-reading it periodically only")
		return nil
	}
	return w
}

// watchPins signals wake (debounced) when w reports a change of the pins file.
func (f *Follower) watchPins(ctx context.Context, w *fsnotify.Watcher, wake chan<- struct{}) {
	if w == nil {
		return
	}
	defer w.Close()
	name := filepath.Clean(f.o.PinsFile)
	debounceEvents(ctx, w, f.o.Debounce, func(ev fsnotify.Event) bool {
		return filepath.Clean(ev.Name) == name && ev.Op != fsnotify.Chmod
	}, func(err error) {
		f.log.Warn().Err(err).Msg("pins file watch error; re-reading it")
	}, func() {
		select {
		case wake <- struct{}{}:
		default:
		}
	})
}
