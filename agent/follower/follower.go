// Package follower is the agent's OCI rules follower: an agent.RuleSource that keeps the rule
// files listed in follow.rule_files in sync with the artifacts named in follow.refs, without
// ever letting an invalid ruleset in.
//
// Every interval (jittered) each reference gets one HEAD request. Only a new digest is pulled,
// by digest, verified, and extracted safely (no traversal, links or oversize content) into a
// staging directory under rules.state_dir. The listed files of every reference then form the
// whole candidate ruleset, compiled by the agent (RuleSink.Compile): valid, it is committed to
// disk (content-addressed set directories and a state.json replaced atomically) and swapped in
// (Accept); invalid, nothing changes and the reason, file:line, is recorded (Ignore). Registry
// errors are retried with exponential backoff honouring Retry-After and reported in /status.
//
// The accepted files are also written to rules.state_dir/rules/<ref>/, watched with fsnotify:
// a deleted file is restored, an edited one is validated like a new artifact (accepted as a
// local edit, or ignored and restored).
package follower

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"oras.land/oras-go/v2/errdef"
	"oras.land/oras-go/v2/registry/remote/errcode"

	"github.com/falco-k8s/falco-k8s/agent"
	"github.com/falco-k8s/falco-k8s/agent/config"
	"github.com/falco-k8s/falco-k8s/agent/status"
	"github.com/falco-k8s/falco-k8s/artifact/auth"
	"github.com/falco-k8s/falco-k8s/artifact/extract"
	"github.com/falco-k8s/falco-k8s/artifact/install"
	"github.com/falco-k8s/falco-k8s/artifact/oci"
	"github.com/falco-k8s/falco-k8s/artifact/ref"
	"github.com/falco-k8s/falco-k8s/artifact/requirements"
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
	rulesDir string
	log      zerolog.Logger

	mu      sync.Mutex // serialises checks, edits and disk changes; guards the fields below
	acc     []*accepted
	ignored map[string]string // candidate key -> reason: the same inputs are not retried
	bad     map[string]string // ref@digest -> reason: artifacts that can never be used
	health  []status.Source
	fails   []int
	sink    agent.RuleSink
	running bool
	started chan struct{} // closed when Run has the sink
}

// accepted is one reference's accepted set in memory.
type accepted struct {
	st      RefState
	content map[string][]byte // path -> content
}

// contentError marks an artifact that cannot be used whatever the registry does (wrong type,
// unsafe archive, missing files): it is ignored, not retried.
type contentError struct{ error }

func (e contentError) Unwrap() error { return e.error }

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
	sig, err := signatureFromConfig(f.Signature) // h14: follow.signature
	if err != nil {
		return nil, err
	}
	return New(Options{
		Refs: f.Refs, RuleFiles: f.RuleFiles, Interval: f.Interval, Jitter: f.Jitter, StateDir: cfg.Rules.StateDir,
		MaxArtifactSize: int64(f.MaxArtifactSize), Log: log, AllowRuleRemoval: f.AllowRuleRemoval, Signature: sig, // h14: guard, signatures
		Registry: RegistryOptions{Basic: basic, PlainHTTP: f.PlainHTTP, CA: f.RegistryCA},
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
	if o.Debounce <= 0 {
		o.Debounce = 250 * time.Millisecond
	}
	f := &Follower{o: o, ra: &retryAfter{by: map[string]time.Time{}}, log: o.Log,
		rulesDir: filepath.Join(o.StateDir, "rules"), ignored: map[string]string{}, bad: map[string]string{},
		started: make(chan struct{})}
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
		f.health = append(f.health, status.Source{Name: SourceName, Ref: r.String()})
	}
	f.acc = make([]*accepted, len(f.refs))
	f.fails = make([]int, len(f.refs))
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

// Run implements agent.RuleSource: it checks each reference every interval (jittered), retries
// registry errors with backoff, and watches the rules directory, until ctx is done.
func (f *Follower) Run(ctx context.Context, sink agent.RuleSink) error {
	f.mu.Lock()
	if f.running {
		f.mu.Unlock()
		return errors.New("follower already running")
	}
	f.sink, f.running = sink, true
	for i := range f.health {
		sink.ReportSource(f.health[i])
	}
	close(f.started)
	f.mu.Unlock()

	var wg sync.WaitGroup
	defer wg.Wait()
	if !f.o.DisableWatch {
		w, err := newWatcher(f)
		if err != nil {
			f.log.Error().Err(err).Str("dir", f.rulesDir).Msg("cannot watch the rules directory; edits and deletions will only be noticed at restart")
		} else {
			wg.Add(1)
			go func() { defer wg.Done(); w.run(ctx) }()
		}
	}
	// Restore files deleted, and validate files edited, while the agent was not running.
	f.reconcileDisk()

	next := make([]time.Time, len(f.refs))
	now := time.Now()
	f.mu.Lock()
	for i, a := range f.acc {
		next[i] = now
		if a != nil && a.st.Digest != "" {
			// A restart is not a reason to poll: spread the first check so that agents
			// restarted together do not hit the registry together.
			next[i] = now.Add(time.Duration(rand.Float64() * f.o.Jitter * float64(f.o.Interval)))
		}
	}
	f.mu.Unlock()
	for {
		earliest := next[0]
		for _, t := range next[1:] {
			if t.Before(earliest) {
				earliest = t
			}
		}
		timer := time.NewTimer(time.Until(earliest))
		select {
		case <-ctx.Done():
			timer.Stop()
			return ctx.Err()
		case <-timer.C:
		}
		now := time.Now()
		var due []int
		for i, t := range next {
			if !t.After(now) {
				due = append(due, i)
			}
		}
		for _, r := range f.round(ctx, due, false, false) {
			i := f.index(r.Ref)
			next[i] = time.Now().Add(f.delay(i, r))
		}
	}
}

func (f *Follower) index(name string) int {
	for i, n := range f.names {
		if n == name {
			return i
		}
	}
	return -1
}

// delay is the wait before reference i's next check: the jittered interval, or after a registry
// error an exponential backoff, at least what the registry asked for with Retry-After.
func (f *Follower) delay(i int, r status.SyncResult) time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.Result != ResultError {
		f.fails[i] = 0
		return time.Duration(float64(f.o.Interval) * (1 + f.o.Jitter*(2*rand.Float64()-1)))
	}
	f.fails[i]++
	d := f.o.InitialBackoff
	for n := 1; n < f.fails[i] && d < f.o.MaxBackoff; n++ {
		d *= 2
	}
	d = min(d, f.o.MaxBackoff)
	if ra := f.ra.take(f.refs[i].Registry); ra > d {
		d = ra
	}
	f.log.Info().Str("ref", f.names[i]).Int("failures", f.fails[i]).Dur("retry_in", d).Msg("registry check failed; retrying with backoff")
	return d
}

// Sync checks every reference now (the charm's sync-rules action, POST /sync) and applies a
// valid change, or with dryRun only validates it. Unlike scheduled checks it re-examines
// candidates that were ignored before.
func (f *Follower) Sync(ctx context.Context, dryRun bool) []status.SyncResult {
	all := make([]int, len(f.refs))
	for i := range all {
		all[i] = i
	}
	// The agent starts sources just before it serves: a request in between waits for Run.
	running := false
	select {
	case <-f.started:
		running = true
	case <-ctx.Done():
	case <-time.After(5 * time.Second):
	}
	if !running {
		out := make([]status.SyncResult, len(f.refs))
		for i := range out {
			out[i] = status.SyncResult{Ref: f.names[i], Result: ResultError, Reason: "the follower is not running yet"}
		}
		return out
	}
	return f.round(ctx, all, true, dryRun)
}

// pulledArtifact is a new digest's listed files.
type pulledArtifact struct {
	digest string
	files  map[string][]byte
	all    []string          // every file path in the artifact, for diagnostics
	tests  map[string][]byte // the artifact's tests/ files (engine/ruletest), by path
	signer string            // who signed, when the signature was verified
}

// round checks the references in due, plus every reference with nothing accepted yet (so that
// references whose files complete each other are first accepted together), and turns the new
// digests into one candidate ruleset. force re-examines candidates ignored before.
func (f *Follower) round(ctx context.Context, due []int, force, dryRun bool) []status.SyncResult {
	f.mu.Lock()
	defer f.mu.Unlock()
	check := map[int]bool{}
	for _, i := range due {
		check[i] = true
	}
	for i, a := range f.acc {
		if a == nil {
			check[i] = true
		}
	}
	results := map[int]*status.SyncResult{}
	newDigest := map[int]string{}
	for i := range f.refs {
		if !check[i] {
			continue
		}
		res := &status.SyncResult{Ref: f.names[i]}
		results[i] = res
		d, err := f.resolve(ctx, i)
		if err != nil {
			res.Result, res.Reason = ResultError, err.Error()
			continue
		}
		res.Digest = d
		if a := f.acc[i]; a != nil && a.st.Digest == d {
			res.Result = ResultUnchanged
			f.log.Debug().Str("ref", f.names[i]).Str("digest", d).Msg("digest unchanged")
			continue
		}
		newDigest[i] = d
	}
	defer f.reportHealth()
	if len(newDigest) == 0 {
		return ordered(results)
	}
	key := f.candidateKey(newDigest)
	if reason, seen := f.ignored[key]; seen && !force {
		for i := range newDigest {
			results[i].Result, results[i].Reason = ResultIgnored, "already ignored: "+reason
		}
		return ordered(results)
	}

	pulled := map[int]*pulledArtifact{}
	for i := range f.refs {
		d, ok := newDigest[i]
		if !ok {
			continue
		}
		res := results[i]
		badKey := f.names[i] + "@" + d
		if reason, isBad := f.bad[badKey]; isBad && !force {
			res.Result, res.Reason = ResultIgnored, "already ignored: "+reason
			continue
		}
		p, err := f.pull(ctx, i, d)
		var ce contentError
		switch {
		case errors.As(err, &ce):
			res.Result, res.Reason = ResultIgnored, err.Error()
			if !dryRun {
				// A dry run records nothing, so the next real check still reports it.
				if !errors.As(err, new(notYetSigned)) { // h14: a signature may follow its artifact
					f.bad[badKey] = err.Error()
				}
				f.sink.Ignore(SourceName, []agent.SourceFile{{Name: f.o.RuleFiles[0], Ref: f.names[i], Digest: d}}, err)
			}
		case err != nil:
			res.Result, res.Reason = ResultError, err.Error()
			f.setHealthError(i, err)
		default:
			pulled[i] = p
		}
	}
	if len(pulled) == 0 {
		return ordered(results)
	}

	// The candidate: the new files of pulled references, the accepted files of the others.
	content := f.currentContent()
	labels := make([]string, len(f.refs))
	digests := make([]string, len(f.refs))
	var changed []agent.SourceFile
	for i, a := range f.acc {
		if a != nil {
			labels[i], digests[i] = f.label(i, a.st.LocalEdit), a.st.Digest
		}
		if p, ok := pulled[i]; ok {
			content[i], labels[i], digests[i] = p.files, f.names[i], p.digest
		}
	}
	files := f.sourceFiles(content, labels, digests)
	for _, sf := range files {
		for i := range pulled {
			if sf.Ref == f.names[i] && sf.Digest == pulled[i].digest {
				changed = append(changed, sf)
			}
		}
	}
	fail := func(err error, reason string) []status.SyncResult {
		for i := range pulled {
			results[i].Result, results[i].Reason = ResultIgnored, reason
		}
		if !dryRun {
			f.ignored[key] = reason
			f.sink.Ignore(SourceName, changed, err)
		}
		return ordered(results)
	}
	if missing := f.uncovered(content); len(missing) > 0 {
		err := f.missingError(missing, pulled)
		return fail(err, err.Error())
	}
	if len(changed) == 0 {
		// Only possible when a listed file comes from another reference: keep a stub so the
		// "ignored"/"accepted" records name the reference.
		changed = []agent.SourceFile{{Name: f.o.RuleFiles[0], Ref: f.names[firstKey(pulled)], Digest: pulled[firstKey(pulled)].digest}}
	}
	cand, err := f.sink.Compile(SourceName, files)
	if err != nil {
		return fail(err, agent.Reason(err))
	}
	// h14 hook: candidate diff in the results + detection-regression guard (guard.go).
	if err := f.guardCandidate(cand, pulled, results); err != nil {
		return fail(err, err.Error())
	}
	// h14 hook: replay the pulled artifacts' own tests against the candidate (tests.go).
	if err := f.testCandidate(cand, pulled); err != nil {
		return fail(err, err.Error())
	}
	if dryRun {
		for i := range pulled {
			results[i].Result, results[i].Reason = ResultAccepted, "dry run: the candidate ruleset is valid; nothing was applied"
		}
		return ordered(results)
	}

	// Valid: commit on disk first (a crash from here on finds either set), then swap.
	prev := f.acc
	next := make([]*accepted, len(f.acc))
	copy(next, f.acc)
	now := time.Now()
	for i, p := range pulled {
		next[i] = &accepted{st: newRefState(f.names[i], p.digest, p.files, false, now), content: p.files}
	}
	if err := f.commit(next); err != nil {
		for i := range pulled {
			results[i].Result, results[i].Reason = ResultError, err.Error()
		}
		f.log.Error().Err(err).Msg("cannot persist the accepted rule files; the running ruleset is unchanged")
		return ordered(results)
	}
	gen, err := f.sink.Accept(cand)
	if err != nil {
		// The agent recompiled against newer local files and refused: put the old state back.
		if rerr := f.commit(prev); rerr != nil {
			f.log.Error().Err(rerr).Msg("cannot restore the previous follower state")
		}
		for i := range pulled {
			results[i].Result, results[i].Reason = ResultIgnored, err.Error()
		}
		return ordered(results)
	}
	f.acc = next
	clear(f.ignored) // other candidates may be valid next to the new files
	for i, p := range pulled {
		results[i].Result = ResultAccepted
		f.health[i].Digest = p.digest
		f.health[i].Signer = p.signer // h14
		f.log.Info().Str("ref", f.names[i]).Str("digest", p.digest).Uint64("generation", gen).Msg("artifacts accepted")
	}
	f.materialize(prev)
	return ordered(results)
}

func firstKey[V any](m map[int]V) int {
	k := -1
	for i := range m {
		if k < 0 || i < k {
			k = i
		}
	}
	return k
}

func ordered(m map[int]*status.SyncResult) []status.SyncResult {
	keys := make([]int, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Ints(keys)
	out := make([]status.SyncResult, 0, len(keys))
	for _, k := range keys {
		out = append(out, *m[k])
	}
	return out
}

// candidateKey identifies a candidate by its inputs: each reference's new digest or accepted
// set.
func (f *Follower) candidateKey(newDigest map[int]string) string {
	var b strings.Builder
	for i, a := range f.acc {
		switch d, ok := newDigest[i]; {
		case ok:
			b.WriteString(f.names[i] + "@" + d + "\n")
		case a != nil:
			b.WriteString(f.names[i] + "#" + a.st.Set + "\n")
		}
	}
	return b.String()
}

func (f *Follower) missingError(missing []string, pulled map[int]*pulledArtifact) error {
	var from []string
	for _, i := range sortedKeys(pulled) {
		from = append(from, fmt.Sprintf("%s@%s (files: %s)", f.names[i], pulled[i].digest, strings.Join(pulled[i].all, ", ")))
	}
	return contentError{fmt.Errorf("follow.rule_files %s missing from %s", quoteList(missing), strings.Join(from, "; "))}
}

func sortedKeys[V any](m map[int]V) []int {
	keys := make([]int, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Ints(keys)
	return keys
}

func quoteList(s []string) string {
	q := make([]string, len(s))
	for i, x := range s {
		q[i] = fmt.Sprintf("%q", x)
	}
	if len(q) == 1 {
		return "entry " + q[0] + " is"
	}
	return "entries " + strings.Join(q, ", ") + " are"
}

// resolve is the cheap check: one HEAD request (body closed) for the reference's digest.
func (f *Follower) resolve(ctx context.Context, i int) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	ctx = withRetryKey(ctx, f.refs[i].Registry)
	now := time.Now()
	f.health[i].LastCheck = now
	r := f.refs[i]
	d, err := f.client.Resolve(ctx, r)
	if err != nil && ctx.Err() != nil && errors.Is(err, context.Canceled) {
		return "", err // shutting down (or the /sync client left): not a registry problem
	}
	if err != nil {
		err = explainRegistry(r.Registry, r.String(), f.creds.HasCredential(r.Registry), err)
		f.setHealthError(i, err)
		return "", err
	}
	f.health[i].LastSuccess, f.health[i].LastError = now, ""
	return d.Digest.String(), nil
}

func (f *Follower) setHealthError(i int, err error) {
	f.health[i].LastError = err.Error()
	ev := f.log.Error()
	var re *registryError
	if errors.As(err, &re) && re.transient {
		ev = f.log.Warn()
	}
	ev.Str("ref", f.names[i]).Str("registry", f.refs[i].Registry).Str("reason", err.Error()).Msg("rules follower: registry check failed; serving the last accepted rules")
}

func (f *Follower) reportHealth() {
	if f.sink == nil {
		return
	}
	for i := range f.health {
		f.sink.ReportSource(f.health[i])
	}
}

// pull fetches digest d of reference i by digest: manifest and config verified against it,
// the layer streamed through digest verification into a safe extraction staged under the
// state directory. Only the listed files are kept.
func (f *Follower) pull(ctx context.Context, i int, d string) (*pulledArtifact, error) {
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	ctx = withRetryKey(ctx, f.refs[i].Registry)
	// h14 hook: the digest's cosign signature, before anything of the artifact is downloaded.
	signer, err := f.verifySignature(ctx, i, d)
	if err != nil {
		return nil, err
	}
	r := f.refs[i].WithDigest(d)
	host := r.Registry
	a, err := f.client.Describe(ctx, r, "")
	if err != nil {
		if isTransport(err) {
			return nil, explainRegistry(host, r.String(), f.creds.HasCredential(host), err)
		}
		return nil, contentError{fmt.Errorf("artifact %s is not usable: %w", r, err)}
	}
	if a.Type != oci.Rulesfile {
		return nil, contentError{fmt.Errorf("artifact %s is a %s, not a rulesfile", r, a.Type)}
	}
	// h14 hook: the config's requirements and dependencies, before any layer is downloaded.
	if err := requirements.Check(a.Config, requirements.Agent()); err != nil {
		return nil, contentError{fmt.Errorf("artifact %s ignored: %w", r, err)}
	}
	max := f.o.MaxArtifactSize
	st, err := install.Stage(ctx, f.client, a, f.store.setsDir(), install.StageOptions{
		MaxLayerBytes: max, StagingDir: f.store.StagingDir(),
		Limits: extract.Limits{MaxFileBytes: max, MaxTotal: max},
	})
	if err != nil {
		if isTransport(err) || strings.Contains(err.Error(), "digest mismatch") || strings.Contains(err.Error(), "size mismatch") {
			// Integrity failures in transit are retried; content that verifies but is bad is not.
			return nil, explainRegistry(host, r.String(), f.creds.HasCredential(host), err)
		}
		return nil, contentError{fmt.Errorf("artifact %s rejected: %w", r, err)}
	}
	defer st.Discard()
	listed := f.listed()
	p := &pulledArtifact{digest: d, files: map[string][]byte{}, signer: signer}
	for _, ef := range st.Files {
		p.all = append(p.all, ef.Path)
		if !listed[ef.Path] {
			continue
		}
		b, err := os.ReadFile(st.Path(ef))
		if err != nil {
			return nil, fmt.Errorf("read staged %s: %w", ef.Path, err)
		}
		p.files[ef.Path] = b
	}
	// h14 hook: keep the artifact's own tests, replayed against the candidate (tests.go).
	if err := readTests(st, p); err != nil {
		return nil, err
	}
	if len(p.files) == 0 {
		return nil, contentError{fmt.Errorf("artifact %s contains none of follow.rule_files %v (files: %s)", r, f.o.RuleFiles, strings.Join(p.all, ", "))}
	}
	if extra := len(p.all) - len(p.files); extra > 0 {
		f.log.Debug().Str("ref", f.names[i]).Int("files", extra).Msg("ignoring artifact files not listed in follow.rule_files")
	}
	return p, nil
}

// isTransport reports errors from talking to the registry, as opposed to the artifact's
// content.
func isTransport(err error) bool {
	var er *errcode.ErrorResponse
	var ne net.Error
	return errors.As(err, &er) || errors.As(err, &ne) || errors.Is(err, errdef.ErrNotFound) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) || isConnError(err)
}

// commit persists next as the accepted state.
func (f *Follower) commit(next []*accepted) error {
	var st State
	contents := map[string]map[string][]byte{}
	for _, a := range next {
		if a == nil {
			continue
		}
		st.Refs = append(st.Refs, a.st)
		contents[a.st.Set] = a.content
	}
	return f.store.Commit(st, contents)
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

// ActivePath returns where file p of reference ref (as in follow.refs) is kept on disk.
func (f *Follower) ActivePath(refStr, p string) string {
	name := refStr
	if r, err := ref.Parse(refStr); err == nil {
		name = r.String()
	}
	return filepath.Join(f.rulesDir, refDir(name), filepath.FromSlash(p))
}

// materialize writes the accepted files to the rules directory (only those that differ) and
// removes files prev had and the accepted set dropped. Failures are logged: the directory is
// a view; the state is authoritative.
func (f *Follower) materialize(prev []*accepted) {
	for i, a := range f.acc {
		if a == nil {
			continue
		}
		for p, b := range a.content {
			dst := f.ActivePath(f.names[i], p)
			if cur, err := os.ReadFile(dst); err == nil && bytes.Equal(cur, b) {
				continue
			}
			if err := writeActive(dst, b); err != nil {
				f.log.Error().Err(err).Str("file", dst).Msg("cannot write the active rule file")
			}
		}
		if prev != nil && prev[i] != nil {
			for p := range prev[i].content {
				if _, still := a.content[p]; !still {
					_ = os.Remove(f.ActivePath(f.names[i], p))
				}
			}
		}
	}
}

// writeActive replaces dst atomically (temp file in the same directory, fsync, rename) so a
// reader or the watcher never sees a partial file.
func writeActive(dst string, b []byte) error {
	dir := filepath.Dir(dst)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if fi, err := os.Lstat(dst); err == nil && !fi.Mode().IsRegular() {
		// A directory or link where a rule file belongs: replace it.
		if err := os.RemoveAll(dst); err != nil {
			return err
		}
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(dst)+".tmp-*")
	if err != nil {
		return err
	}
	_, err = tmp.Write(b)
	if err == nil {
		err = tmp.Chmod(0o644)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), dst)
	}
	if err != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("write %s: %w", dst, err)
	}
	return nil
}

// reconcileDisk compares the rules directory with the accepted set: missing files are
// restored; edited files form a candidate validated like a new artifact, accepted as a local
// edit, or ignored and restored.
func (f *Follower) reconcileDisk() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.sink == nil {
		return
	}
	edited := map[int]map[string][]byte{}
	for i, a := range f.acc {
		if a == nil {
			continue
		}
		for p, want := range a.content {
			dst := f.ActivePath(f.names[i], p)
			fi, err := os.Lstat(dst)
			var cur []byte
			if err == nil && fi.Mode().IsRegular() {
				cur, err = os.ReadFile(dst)
			}
			if err != nil || !fi.Mode().IsRegular() {
				if werr := writeActive(dst, want); werr != nil {
					f.log.Error().Err(werr).Str("file", dst).Msg("cannot restore the rule file")
				} else {
					f.log.Warn().Str("file", dst).Str("ref", f.names[i]).Msg("rule file was removed on disk; restored from the accepted set")
				}
				continue
			}
			if !bytes.Equal(cur, want) {
				if edited[i] == nil {
					edited[i] = map[string][]byte{}
				}
				edited[i][p] = cur
			}
		}
	}
	if len(edited) == 0 {
		return
	}
	content := f.currentContent()
	labels := make([]string, len(f.acc))
	digests := make([]string, len(f.acc))
	for i, a := range f.acc {
		if a == nil {
			continue
		}
		labels[i], digests[i] = f.label(i, a.st.LocalEdit), a.st.Digest
		if e, ok := edited[i]; ok {
			merged := make(map[string][]byte, len(a.content))
			for p, b := range a.content {
				merged[p] = b
			}
			for p, b := range e {
				merged[p] = b
			}
			content[i], labels[i] = merged, f.label(i, true)
		}
	}
	files := f.sourceFiles(content, labels, digests)
	var changed []agent.SourceFile
	for _, sf := range files {
		if strings.HasSuffix(sf.Ref, LocalEditSuffix) {
			changed = append(changed, sf)
		}
	}
	restore := func() {
		for i, e := range edited {
			for p := range e {
				dst := f.ActivePath(f.names[i], p)
				if err := writeActive(dst, f.acc[i].content[p]); err != nil {
					f.log.Error().Err(err).Str("file", dst).Msg("cannot restore the rule file")
				}
			}
		}
	}
	cand, err := f.sink.Compile(SourceName, files)
	if err != nil {
		f.sink.Ignore(SourceName, changed, err)
		f.log.Error().Str("reason", agent.Reason(err)).Msg("local edit of a followed rule file ignored; the file was restored from the accepted set")
		restore()
		return
	}
	prev := f.acc
	next := make([]*accepted, len(f.acc))
	copy(next, f.acc)
	now := time.Now()
	for i := range edited {
		next[i] = &accepted{st: newRefState(f.names[i], f.acc[i].st.Digest, content[i], true, now), content: content[i]}
	}
	if err := f.commit(next); err != nil {
		f.log.Error().Err(err).Msg("cannot persist the local edit; restoring the accepted file")
		restore()
		return
	}
	gen, err := f.sink.Accept(cand)
	if err != nil {
		if rerr := f.commit(prev); rerr != nil {
			f.log.Error().Err(rerr).Msg("cannot restore the previous follower state")
		}
		restore()
		return
	}
	f.acc = next
	clear(f.ignored)
	for i, e := range edited {
		for p := range e {
			f.log.Info().Str("file", f.ActivePath(f.names[i], p)).Str("ref", f.names[i]).Uint64("generation", gen).Msg("artifacts accepted: local edit of a followed rule file")
		}
	}
}
