package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/falco-k8s/falco-k8s/agent/config"
	"github.com/falco-k8s/falco-k8s/agent/status"
	"github.com/falco-k8s/falco-k8s/engine"
	"github.com/falco-k8s/falco-k8s/internal/atomicfile"
	"github.com/falco-k8s/falco-k8s/internal/falcobin"
)

// EngineFalcoK8s and EngineFalco name the engine in /status (config.Engine*).
const (
	EngineFalcoK8s = config.EngineFalcoK8s
	EngineFalco    = config.EngineFalco
)

// falcoEngine is the agent's side of engine: falco. Falco evaluates the events; the agent keeps
// Falco's rules directory (falco.rules_dir) holding exactly the ruleset it accepted:
//
//   - every candidate ruleset is validated by the agent's engine and then by the Falco binary
//     (`falco -c CONFIG -V` over the whole set in load order, staged outside rules_dir), so a
//     set Falco refuses is ignored with Falco's messages and never reaches rules_dir;
//   - an accepted set is switched in as one burst of renames of files written beforehand (Falco
//     debounces its inotify events for 100 ms, so it sees one change) and then checked with
//     `falco -c CONFIG --dry-run`, the very check Falco's hot reload runs before it restarts: a
//     refusal there (the configuration lists other rules files, a plugin changed) is Falco
//     refusing the reload, so the previous set is switched back and the change is recorded as
//     ignored with Falco's message. Exit status is the signal, never the message text.
type falcoEngine struct {
	bin     *falcobin.Binary
	dir     string // falco.rules_dir
	staging string // beside it, same file system: where sets are written before the renames
	timeout time.Duration
	version string

	mu      sync.Mutex  // guards the fields below; held through a switch and its checks
	current []falcoFile // what rules_dir holds (the last published set)
	refusal *status.FalcoRefusal
	nudged  string // setKey of the set Falco was last asked to check again

	// hook, when set, is called before every write step of a switch (crash tests stop there).
	hook func(step string)
}

func (fe *falcoEngine) step(name string) {
	if fe.hook != nil {
		fe.hook(name)
	}
}

// falcoFile is one file of a set as Falco loads it.
type falcoFile struct {
	name    string // NNN-<name>.yaml in rules_dir
	logical string // the name the agent's engine and /status use
	content []byte
}

func newFalcoEngine(ctx context.Context, c config.Falco) (*falcoEngine, error) {
	fe := &falcoEngine{bin: &falcobin.Binary{Path: c.Binary, Config: c.ConfigFile}, dir: filepath.Clean(c.RulesDir),
		timeout: c.ValidateTimeout}
	fe.staging = filepath.Join(filepath.Dir(fe.dir), "."+filepath.Base(fe.dir)+".staging")
	vctx, cancel := context.WithTimeout(ctx, fe.timeout)
	defer cancel()
	v, err := fe.bin.Version(vctx)
	if err != nil {
		return nil, fmt.Errorf("falco.binary %s: %w: the agent validates every ruleset with it, check the path and that it runs", c.Binary, err)
	}
	fe.version = v
	if err := os.MkdirAll(fe.dir, 0o755); err != nil {
		return nil, fmt.Errorf("falco.rules_dir: %w", err)
	}
	// Sets staged by a process that was killed: nothing refers to them.
	if err := os.RemoveAll(fe.staging); err != nil {
		return nil, fmt.Errorf("falco rules staging: %w", err)
	}
	// What rules_dir holds now is what a refused first switch goes back to.
	ents, _ := os.ReadDir(fe.dir)
	for _, e := range ents {
		if e.Type().IsRegular() && isRulesName(e.Name()) {
			if b, err := os.ReadFile(filepath.Join(fe.dir, e.Name())); err == nil {
				fe.current = append(fe.current, falcoFile{name: e.Name(), logical: e.Name(), content: b})
			}
		}
	}
	return fe, nil
}

func isRulesName(n string) bool {
	return !strings.HasPrefix(n, ".") && (strings.HasSuffix(n, ".yaml") || strings.HasSuffix(n, ".yml"))
}

// falcoSet names the files of a ruleset for rules_dir: the load-order index first (Falco loads
// a directory's files sorted by name), then the file's own name made safe for one path element.
func falcoSet(files []engine.File) []falcoFile {
	out := make([]falcoFile, len(files))
	for i, f := range files {
		base := strings.Map(func(r rune) rune {
			switch {
			case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '-', r == '_':
				return r
			}
			return '_'
		}, f.Name)
		base = strings.TrimLeft(base, "._")
		if len(base) > 96 {
			base = base[len(base)-96:]
		}
		if !strings.HasSuffix(base, ".yaml") && !strings.HasSuffix(base, ".yml") {
			base += ".yaml"
		}
		out[i] = falcoFile{name: fmt.Sprintf("%03d-%s", i, base), logical: f.Name, content: f.Content}
	}
	return out
}

// stage writes set into a new directory under the staging area and returns it.
func (fe *falcoEngine) stage(set []falcoFile) (string, error) {
	if err := os.MkdirAll(fe.staging, 0o755); err != nil {
		return "", fmt.Errorf("falco rules staging: %w", err)
	}
	dir, err := os.MkdirTemp(fe.staging, "set-")
	if err != nil {
		return "", fmt.Errorf("falco rules staging: %w", err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	for _, f := range set {
		var hook func(string)
		if fe.hook != nil {
			hook = func(s string) { fe.step("stage:" + f.name + ":" + s) }
		}
		if err := atomicfile.WriteFileWith(filepath.Join(dir, f.name), f.content, 0o644, atomicfile.Options{Hook: hook}); err != nil {
			os.RemoveAll(dir)
			return "", fmt.Errorf("falco rules staging: %w", err)
		}
	}
	return dir, nil
}

// validate runs `falco -V` over the whole set in load order. A refusal comes back as a
// *falcobin.RefusedError whose positions name the files as the agent does.
func (fe *falcoEngine) validate(ctx context.Context, files []engine.File) error {
	if len(files) == 0 {
		return nil // nothing to load (a follower before its first artifact): Falco loads nothing too
	}
	set := falcoSet(files)
	dir, err := fe.stage(set)
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	names := make([]string, len(set))
	logical := map[string]string{}
	for i, f := range set {
		names[i] = f.name
		logical[f.name] = f.logical
	}
	ctx, cancel := context.WithTimeout(ctx, fe.timeout)
	defer cancel()
	_, err = fe.bin.Validate(ctx, dir, names)
	var re *falcobin.RefusedError
	if errors.As(err, &re) {
		for i := range re.Results {
			r := &re.Results[i]
			if n, ok := logical[r.Name]; ok {
				r.Name = n
			}
			for _, ds := range [][]falcobin.Diagnostic{r.Errors, r.Warnings} {
				for j := range ds {
					for k := range ds[j].Context.Locations {
						p := &ds[j].Context.Locations[k].Position
						if n, ok := logical[p.Name]; ok {
							p.Name = n
						}
					}
				}
			}
		}
	}
	return err
}

// publish switches rules_dir to files and checks that Falco's reload accepts it (--dry-run);
// refused, rules_dir is switched back and the refusal returned. A dry run that cannot tell
// (the binary did not run) keeps the new set: it passed -V, and the failure is returned for
// the log only when nothing was refused.
func (fe *falcoEngine) publish(ctx context.Context, files []engine.File) (notRun error, refused error) {
	fe.mu.Lock()
	defer fe.mu.Unlock()
	set := falcoSet(files)
	if err := fe.switchTo(set); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, fe.timeout)
	defer cancel()
	err := fe.bin.DryRun(ctx)
	var re *falcobin.RefusedError
	switch {
	case err == nil:
		fe.current = set
		return nil, nil
	case errors.As(err, &re):
		fe.refusal = &status.FalcoRefusal{Time: time.Now(), Reason: re.Error(), RolledBack: true}
		if rerr := fe.switchTo(fe.current); rerr != nil {
			fe.refusal.RolledBack = false
			return nil, fmt.Errorf("%w; switching Falco's rules back failed too: %v", err, rerr)
		}
		return nil, fmt.Errorf("Falco refused to reload it, previous rules restored: %w", err)
	default:
		fe.current = set
		return err, nil
	}
}

// switchTo makes rules_dir hold exactly set: every new or changed file is written in a staging
// directory first, then all are renamed in and the files the set no longer has removed, one
// burst Falco's watcher (100 ms debounce) takes as one change. Unchanged files are not touched,
// so a set that changes nothing wakes no reload.
func (fe *falcoEngine) switchTo(set []falcoFile) error {
	want := map[string]bool{}
	var changed []falcoFile
	for _, f := range set {
		want[f.name] = true
		if cur, err := os.ReadFile(filepath.Join(fe.dir, f.name)); err == nil && string(cur) == string(f.content) {
			continue
		}
		changed = append(changed, f)
	}
	var stale []string
	ents, err := os.ReadDir(fe.dir)
	if err != nil {
		return fmt.Errorf("falco.rules_dir: %w", err)
	}
	for _, e := range ents {
		if !want[e.Name()] && !e.IsDir() {
			stale = append(stale, e.Name())
		}
	}
	sort.Strings(stale)
	if len(changed) == 0 && len(stale) == 0 {
		return nil
	}
	dir, err := fe.stage(changed)
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	atomicfile.SyncDir(dir)
	for _, f := range changed {
		fe.step("rename:" + f.name)
		if err := os.Rename(filepath.Join(dir, f.name), filepath.Join(fe.dir, f.name)); err != nil {
			return fmt.Errorf("falco.rules_dir: %w", err)
		}
	}
	for _, n := range stale {
		fe.step("remove:" + n)
		if err := os.Remove(filepath.Join(fe.dir, n)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("falco.rules_dir: %w", err)
		}
	}
	fe.step("syncdir")
	atomicfile.SyncDir(fe.dir)
	return nil
}

func (fe *falcoEngine) lastRefusal() *status.FalcoRefusal {
	fe.mu.Lock()
	defer fe.mu.Unlock()
	if fe.refusal == nil {
		return nil
	}
	r := *fe.refusal
	return &r
}

// noteReloadFailure answers Falco's own "hot restart failure" alert (a reload its dry run
// refused), received on the alerts route: recorded in /status, then the agent's check runs
// again on what rules_dir holds. Refused there too, the cause (Falco's configuration, a file it
// lists besides rules_dir) is reported for the operator. Accepted, Falco's refusal came from
// something that has passed (its watcher checked while a switch was being renamed in, a
// transient failure) and left Falco on older rules than rules_dir: one file is renamed in again
// so Falco checks once more, at most once per set so a refusal the agent cannot see never
// loops.
func (fe *falcoEngine) noteReloadFailure(ctx context.Context, at time.Time, msg string) {
	fe.mu.Lock()
	defer fe.mu.Unlock()
	r := &status.FalcoRefusal{Time: at, Reason: msg, FromFalco: true}
	fe.refusal = r
	ctx, cancel := context.WithTimeout(ctx, fe.timeout)
	defer cancel()
	err := fe.bin.DryRun(ctx)
	var re *falcobin.RefusedError
	switch {
	case errors.As(err, &re):
		r.Recheck = "refused by the agent's check too: " + re.Error()
	case err != nil:
		r.Recheck = "the agent's check could not run: " + err.Error()
	case len(fe.current) == 0:
		r.Recheck = "accepted by the agent's check; no rules to hand to Falco again"
	case fe.nudged == setKey(fe.current):
		r.Recheck = "accepted by the agent's check; Falco was already asked to check these rules again once"
	default:
		f := fe.current[0]
		dir, serr := fe.stage([]falcoFile{f})
		if serr == nil {
			serr = os.Rename(filepath.Join(dir, f.name), filepath.Join(fe.dir, f.name))
			os.RemoveAll(dir)
		}
		if serr != nil {
			r.Recheck = "accepted by the agent's check; asking Falco to check again failed: " + serr.Error()
			return
		}
		fe.nudged = setKey(fe.current)
		r.Recheck = "accepted by the agent's check; Falco asked to check the rules again"
	}
}

// setKey identifies a set's names and contents.
func setKey(set []falcoFile) string {
	h := sha256.New()
	for _, f := range set {
		fmt.Fprintf(h, "%s\x00%d\x00", f.name, len(f.content))
		h.Write(f.content)
	}
	return hex.EncodeToString(h.Sum(nil))
}
