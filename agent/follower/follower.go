// Package follower is the agent's OCI rules follower: an agent.RuleSource that keeps the rule
// files listed in follow.rule_files in sync with the artifacts named in follow.refs, without
// ever letting an invalid ruleset in.
//
// Every interval (jittered) each reference gets one HEAD request (schedule.go). Only a new
// digest goes through the candidate pipeline (check.go): fetch the manifest by digest (every
// byte verified), verify the artifact, then download the layer through digest verification
// into a safe extraction (no traversal, links or oversize content) staged under
// rules.state_dir. The listed files of every reference then form the whole candidate ruleset,
// which goes through the one transaction every change takes (promote.go): validate
// (RuleSink.Compile), commit on disk (content-addressed set directories and a state.json
// replaced atomically: the single switch a restart always finishes or undoes, store.go), swap
// in (Accept), then derive the active files from the committed set (materialize.go). Invalid,
// nothing changes and the reason, file:line, is recorded (Ignore). Registry errors are
// classified by oci.Classify: connection trouble, rate limiting and server errors are retried
// with exponential backoff honouring Retry-After; bad content (a digest or size mismatch, a
// layer that does not decode) is reported as such and that digest is not downloaded again for
// a growing number of intervals; all of it is reported in /status.
//
// The accepted files are written to rules.state_dir/rules/<ref>/ and watched with fsnotify
// (watch.go): a deleted file is restored, an edited one is validated like a new artifact
// (accepted as a local edit, or ignored and restored). The follower's own writes are recorded
// with their hashes, so they neither wake the watcher nor pass for edits after a crash.
package follower

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/falco-k8s/falco-k8s/agent"
	"github.com/falco-k8s/falco-k8s/agent/config"
	"github.com/falco-k8s/falco-k8s/agent/status"
	"github.com/falco-k8s/falco-k8s/artifact/auth"
	"github.com/falco-k8s/falco-k8s/artifact/extract"
	"github.com/falco-k8s/falco-k8s/artifact/oci"
	"github.com/falco-k8s/falco-k8s/artifact/ref"
)

// SourceName is the follower's name as a rule source (origin "follower" in /status).
const SourceName = "follower"

// Results of a check, as in status.SyncResult.
const (
	ResultUnchanged = "unchanged"
	ResultAccepted  = "accepted"
	ResultIgnored   = "ignored"
	ResultError     = "error"
)

// LocalEditSuffix marks, in /status and in "accepted"/"ignored" records, the reference of files
// that were edited on disk rather than pulled.
const LocalEditSuffix = " (local edit)"

// checkTimeout bounds one reference's check and pull, so a stuck registry cannot hold the
// follower (and the sync-rules action) for ever.
const checkTimeout = 5 * time.Minute

// Options configure a Follower.
type Options struct {
	// Refs are full references (registry/repository[:tag][@digest]), in load order.
	Refs []string
	// RuleFiles are the paths inside the artifacts that are loaded, in load order.
	RuleFiles []string
	Interval  time.Duration
	// Jitter spreads each interval over interval x (1 ± Jitter).
	Jitter float64
	// StateDir is rules.state_dir: the follower keeps StateDir/follower (accepted sets, state)
	// and StateDir/rules (the active files users may look at and edit).
	StateDir string
	// MaxArtifactSize bounds the compressed layer and the extracted content; 0 means 16 MiB.
	MaxArtifactSize int64
	Registry        RegistryOptions
	Log             zerolog.Logger
	// InitialBackoff is the first retry delay after a registry error (default min(10s,
	// Interval)), doubling per failure up to MaxBackoff (default Interval).
	InitialBackoff time.Duration
	MaxBackoff     time.Duration
	// Debounce is how long the rules directory must be quiet before changes are examined
	// (default 250ms), so a file is not validated half-written.
	Debounce time.Duration
	// DisableWatch turns the fsnotify watch off (tests of the registry path only).
	DisableWatch bool
	// AllowRuleRemoval lists references (as in Refs, or "*") whose candidates may switch
	// active rules off (follow.allow_rule_removal; see agent/rulediff).
	AllowRuleRemoval []string
	// Signature configures the cosign check of new digests (signature.go).
	Signature SignatureOptions
	// Mode is ModePoll (the default: check every interval) or ModePinned (apply the digests
	// PinsFile names, fetched by digest; never poll tags: pins.go).
	Mode     string
	PinsFile string
}

// Follower is the OCI rules follower; create it with New or NewFromConfig.
type Follower struct {
	o        Options
	refs     []ref.Reference
	names    []string // canonical reference strings, the keys of the state
	client   *oci.Client
	creds    *auth.Resolver
	ra       *retryAfter
	store    *Store
	active   *activeFiles
	watch    *watcher // nil until Run starts it (or with DisableWatch)
	rulesDir string
	log      zerolog.Logger

	mu      sync.Mutex // serialises checks, edits and disk changes; guards the fields below
	acc     []*accepted
	ignored map[string]string  // candidate key -> reason: the same inputs are not retried
	bad     map[string]string  // ref@digest -> reason: artifacts that can never be used
	damaged map[string]*damage // ref@digest -> bad content seen: not downloaded again before until
	health  []status.Source
	fails   []int
	// contentFail marks references whose last check failed on bad content: their checks
	// keep the normal interval (the digest itself is backed off), not the registry backoff.
	contentFail []bool
	// Pinned mode (pins.go): the digest of each reference from PinsFile, whether the file
	// existed at the last read, and why it could not be used.
	pins     map[string]string
	pinsSeen bool
	pinsErr  string
	pinFail  []string // per reference: why its pinned digest was not applied ("" when it was)
	sink     agent.RuleSink
	running  bool
	started  chan struct{} // closed when Run has the sink
}

// accepted is one reference's accepted set in memory.
type accepted struct {
	st      RefState
	content map[string][]byte // path -> content
}

// unusableError marks an artifact that cannot be used whatever the registry does (wrong type,
// unsafe archive, missing files): it is ignored, not retried.
type unusableError struct{ error }

func (e unusableError) Unwrap() error { return e.error }

// NewFromConfig builds the follower from the agent configuration: credentials from
// follow.registry_auth_file and FALCOCTL_REGISTRY_AUTH_BASIC (which wins for a registry in
// both), follow.plain_http and follow.registry_ca.
func NewFromConfig(cfg *config.Config, log zerolog.Logger) (*Follower, error) {
	f := cfg.Follow
	var basic []auth.Basic
	if env := os.Getenv(AuthEnv); env != "" {
		b, err := auth.ParseBasicEnv(env)
		if err != nil {
			return nil, err
		}
		basic = append(basic, b...)
	}
	if f.RegistryAuthFile != "" {
		b, err := ReadAuthFile(f.RegistryAuthFile)
		if err != nil {
			return nil, err
		}
		basic = append(basic, b...)
	}
	sig, err := signatureFromConfig(f.Signature)
	if err != nil {
		return nil, err
	}
	return New(Options{
		Refs: f.Refs, RuleFiles: f.RuleFiles, Interval: f.Interval, Jitter: f.Jitter, StateDir: cfg.Rules.StateDir,
		MaxArtifactSize: int64(f.MaxArtifactSize), Log: log, AllowRuleRemoval: f.AllowRuleRemoval, Signature: sig,
		Registry: RegistryOptions{Basic: basic, PlainHTTP: f.PlainHTTP, CA: f.RegistryCA},
		Mode:     f.Mode, PinsFile: f.PinsFile,
	})
}

// New validates o, opens the state and loads the last accepted sets.
func New(o Options) (*Follower, error) {
	if len(o.Refs) == 0 || len(o.RuleFiles) == 0 {
		return nil, errors.New("follower: follow.refs and follow.rule_files must both be set")
	}
	if o.Interval <= 0 || o.StateDir == "" {
		return nil, errors.New("follower: an interval and rules.state_dir are required")
	}
	if o.MaxArtifactSize <= 0 {
		o.MaxArtifactSize = 16 << 20
	}
	if o.InitialBackoff <= 0 {
		o.InitialBackoff = min(10*time.Second, o.Interval)
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = o.Interval
	}
	switch o.Mode {
	case "":
		o.Mode = ModePoll
	case ModePoll:
	case ModePinned:
		if o.PinsFile == "" {
			return nil, errors.New("follower: follow.pins_file is required in pinned mode")
		}
	default:
		return nil, fmt.Errorf("follower: invalid follow.mode %q: use poll or pinned", o.Mode)
	}
	if o.Debounce <= 0 {
		o.Debounce = 250 * time.Millisecond
	}
	f := &Follower{o: o, ra: &retryAfter{by: map[string]time.Time{}}, log: o.Log,
		rulesDir: filepath.Join(o.StateDir, "rules"), ignored: map[string]string{}, bad: map[string]string{},
		damaged: map[string]*damage{}, started: make(chan struct{})}
	for i, p := range o.RuleFiles {
		// Paths become file names under the rules directory: never outside it.
		if clean, err := extract.CleanName(p); err != nil || clean != p || p == "" {
			return nil, fmt.Errorf("follow.rule_files[%d]: invalid path %q: want a clean relative path inside the artifact", i, p)
		}
	}
	seen := map[string]bool{}
	for i, s := range o.Refs {
		r, err := ref.Parse(s)
		if err != nil {
			return nil, fmt.Errorf("follow.refs[%d]: %w", i, err)
		}
		if seen[r.String()] {
			return nil, fmt.Errorf("follow.refs[%d]: %s is listed twice", i, r)
		}
		seen[r.String()] = true
		f.refs = append(f.refs, r)
		f.names = append(f.names, r.String())
		f.health = append(f.health, status.Source{Name: SourceName, Ref: r.String(), Mode: o.Mode})
	}
	f.acc = make([]*accepted, len(f.refs))
	f.fails = make([]int, len(f.refs))
	f.contentFail = make([]bool, len(f.refs))
	f.pinFail = make([]string, len(f.refs))
	var err error
	if f.client, f.creds, err = newClient(context.Background(), o.Registry, f.ra); err != nil {
		return nil, err
	}
	if f.store, err = OpenStore(filepath.Join(o.StateDir, "follower")); err != nil {
		return nil, err
	}
	if err := f.loadAccepted(); err != nil {
		return nil, err
	}
	// Finish or undo what a crash interrupted: the active files are rebuilt from the committed
	// set; an operator's edit is left for validation once the agent runs (reconcileDisk).
	f.active = openActive(f.rulesDir, filepath.Join(o.StateDir, "follower", "active.json"), o.Log)
	if edits := f.active.recover(f.wantActive(f.acc)); len(edits) > 0 {
		f.log.Info().Int("files", len(edits)).Msg("followed rule files were edited while the agent was stopped; validating them at start")
	}
	return f, nil
}

// loadAccepted reads the committed state. A reference whose set cannot be read back intact is
// dropped (it is pulled again); a set that no longer covers follow.rule_files (the list
// changed) keeps serving but is pulled again at the first check.
func (f *Follower) loadAccepted() error {
	st, err := f.store.Load()
	if err != nil {
		return err
	}
	listed := f.listed()
	for i, name := range f.names {
		rs, ok := st.Ref(name)
		if !ok {
			continue
		}
		content, err := f.store.ReadSet(rs)
		if err != nil {
			f.log.Error().Err(err).Str("ref", name).Msg("accepted rule files are damaged; pulling them again")
			continue
		}
		kept := map[string][]byte{}
		for p, b := range content {
			if listed[p] {
				kept[p] = b
			}
		}
		a := &accepted{st: rs, content: kept}
		if len(kept) != len(content) {
			// follow.rule_files changed: describe what is served now, and re-pull.
			a.st = newRefState(name, "", kept, rs.LocalEdit, rs.AcceptedAt)
		}
		f.acc[i] = a
		f.health[i].Digest = rs.Digest
	}
	if missing := f.uncovered(f.currentContent()); len(missing) > 0 {
		for _, a := range f.acc {
			if a != nil {
				a.st.Digest = "" // forces a pull at the first check
			}
		}
	}
	return nil
}

func (f *Follower) listed() map[string]bool {
	m := map[string]bool{}
	for _, p := range f.o.RuleFiles {
		m[p] = true
	}
	return m
}

func (f *Follower) currentContent() []map[string][]byte {
	out := make([]map[string][]byte, len(f.acc))
	for i, a := range f.acc {
		if a != nil {
			out[i] = a.content
		}
	}
	return out
}

// uncovered returns the listed files no reference provides.
func (f *Follower) uncovered(content []map[string][]byte) []string {
	var missing []string
	for _, p := range f.o.RuleFiles {
		found := false
		for _, c := range content {
			if _, ok := c[p]; ok {
				found = true
				break
			}
		}
		if !found {
			missing = append(missing, p)
		}
	}
	return missing
}

// Name implements agent.RuleSource.
func (f *Follower) Name() string { return SourceName }

// Initial implements agent.RuleSource: the last accepted set.
func (f *Follower) Initial(context.Context) ([]agent.SourceFile, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	labels := make([]string, len(f.acc))
	digests := make([]string, len(f.acc))
	for i, a := range f.acc {
		if a != nil {
			labels[i], digests[i] = f.label(i, a.st.LocalEdit), a.st.Digest
		}
	}
	return f.sourceFiles(f.currentContent(), labels, digests), nil
}

// label is the reference shown for a file in /status.
func (f *Follower) label(i int, localEdit bool) string {
	if localEdit {
		return f.names[i] + LocalEditSuffix
	}
	return f.names[i]
}

// fileName is a file's name in diagnostics: its path inside the artifact, prefixed by the
// reference's directory when several references could provide the same path.
func (f *Follower) fileName(i int, p string) string {
	if len(f.refs) == 1 {
		return p
	}
	return refDir(f.names[i]) + "/" + p
}

// sourceFiles lists the files in load order: references in follow.refs order, each one's files
// in follow.rule_files order.
func (f *Follower) sourceFiles(content []map[string][]byte, labels, digests []string) []agent.SourceFile {
	var out []agent.SourceFile
	for i, c := range content {
		for _, p := range f.o.RuleFiles {
			if b, ok := c[p]; ok {
				out = append(out, agent.SourceFile{Name: f.fileName(i, p), Content: b, Ref: labels[i], Digest: digests[i]})
			}
		}
	}
	return out
}

// refDir is a reference's directory under the rules directory: the reference with every
// character outside [A-Za-z0-9._-] replaced by '_'.
func refDir(name string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r == '_' {
			return r
		}
		return '_'
	}, name)
}

// RulesDir is where the active rule files are: RulesDir()/<ref>/<path inside the artifact>.
func (f *Follower) RulesDir() string { return f.rulesDir }

// activeRel is file p of reference i under the rules directory, slash-separated.
func (f *Follower) activeRel(i int, p string) string { return refDir(f.names[i]) + "/" + p }

// wantActive is what the active files must hold for the accepted sets acc.
func (f *Follower) wantActive(acc []*accepted) map[string][]byte {
	want := map[string][]byte{}
	for i, a := range acc {
		if a != nil {
			for p, b := range a.content {
				want[f.activeRel(i, p)] = b
			}
		}
	}
	return want
}

// ActivePath returns where file p of reference ref (as in follow.refs) is kept on disk.
func (f *Follower) ActivePath(refStr, p string) string {
	name := refStr
	if r, err := ref.Parse(refStr); err == nil {
		name = r.String()
	}
	return filepath.Join(f.rulesDir, refDir(name), filepath.FromSlash(p))
}
