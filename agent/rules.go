package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/falco-k8s/falco-k8s/agent/output"
	"github.com/falco-k8s/falco-k8s/agent/rulediff"
	"github.com/falco-k8s/falco-k8s/agent/status"
	"github.com/falco-k8s/falco-k8s/engine"
	"github.com/falco-k8s/falco-k8s/engine/rulesfile"
	"github.com/falco-k8s/falco-k8s/rules"
)

// Origins of rules files in /status.
const (
	OriginBuiltin = "builtin"
	OriginFile    = "file"
)

// Triggers of a ruleset change.
const (
	TriggerStartup   = "startup"
	TriggerReload    = "reload"
	TriggerSIGHUP    = "sighup"
	TriggerCandidate = "candidate"
)

// HotRestartFailureRule is Falco's internal rule name for a failed reload.
const HotRestartFailureRule = "Falco internal: hot restart failure"

// SourceFile is one rules file provided by a RuleSource.
type SourceFile struct {
	// Name is used in diagnostics and /status, e.g. the file's path inside the artifact.
	Name    string
	Content []byte
	// Ref and Digest identify the artifact the file came from (shown in /status).
	Ref    string
	Digest string
}

// RuleSource contributes rules files to the ruleset (the OCI follower implements it).
type RuleSource interface {
	// Name identifies the source in /status, logs and metrics, e.g. "follower".
	Name() string
	// Initial returns the files the source last had accepted (persisted state), loaded at
	// start-up with the other files. Nil means none yet.
	Initial(ctx context.Context) ([]SourceFile, error)
	// Run offers new candidates through sink until ctx is done.
	Run(ctx context.Context, sink RuleSink) error
}

// RuleSink is how a RuleSource changes the running ruleset; *Agent implements it.
type RuleSink interface {
	// Compile builds the whole ruleset that would result from replacing the source's files with
	// files, without changing anything. The error names the first problem, file:line.
	Compile(source string, files []SourceFile) (*Candidate, error)
	// Accept swaps a compiled candidate in between two events and records "accepted".
	Accept(c *Candidate) (generation uint64, err error)
	// Ignore records a rejected candidate ("ignored", with the reason) and sends Falco's
	// hot-restart-failure internal alert; the running ruleset is unchanged.
	Ignore(source string, files []SourceFile, reason error)
	// ReportSource publishes a source's own state (checks, errors) in /status.
	ReportSource(s status.Source)
}

// Candidate is a compiled ruleset waiting for Accept.
type Candidate struct {
	source string
	files  []SourceFile
	base   uint64 // a.inputs when compiled
	built  *built
	diff   *status.RulesetDiff // against the ruleset running when compiled
}

// Ruleset returns the compiled candidate.
func (c *Candidate) Ruleset() *engine.Ruleset { return c.built.rs }

// Diff returns how the candidate differs from the ruleset running when it was compiled (rules,
// lists, macros, and the active rules it would switch off).
func (c *Candidate) Diff() *status.RulesetDiff { return c.diff }

// diffFrom compares b with the running ruleset.
func (a *Agent) diffFrom(b *built) *status.RulesetDiff {
	var cur *engine.Ruleset
	if act := a.cur.Load(); act != nil {
		cur = act.rs
	}
	return rulediff.Compare(cur, b.rs)
}

// RulesetMeta describes a ruleset for /status.
type RulesetMeta struct {
	Files    []status.File
	Warnings int
	Origin   string
	Trigger  string
	Ref      string
	Digest   string
}

// active is what the atomic pointer holds.
type active struct {
	rs       *engine.Ruleset
	gen      uint64
	meta     RulesetMeta
	loadedAt time.Time
}

// built is a compiled ruleset with its description.
type built struct {
	rs       *engine.Ruleset
	files    []status.File
	warnings int
	loaded   []engine.File // the files in load order (what Falco loads with engine: falco)
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// compose builds the ruleset from the built-in rules, every source's files (with override
// replacing one source's set) and the local files. Callers hold a.mu.
func (a *Agent) compose(local []engine.File, overrideSource string, override []SourceFile) (*built, error) {
	type layered struct {
		file engine.File
		meta status.File
	}
	var l rulesfile.Layers[layered]
	if a.cfg.Rules.Builtin {
		b := rules.Default()
		l.Builtin = append(l.Builtin, layered{engine.File{Name: rules.DefaultName, Content: b},
			status.File{Name: rules.DefaultName, Origin: OriginBuiltin, SHA256: sha(b)}})
	}
	for _, src := range a.sourceOrder {
		set := a.sourceFiles[src]
		if src == overrideSource {
			set = override
		}
		for _, f := range set {
			l.Followed = append(l.Followed, layered{engine.File{Name: f.Name, Content: f.Content},
				status.File{Name: f.Name, Origin: src, Ref: f.Ref, Digest: f.Digest, SHA256: sha(f.Content)}})
		}
	}
	for _, f := range local {
		e := layered{f, status.File{Name: f.Name, Origin: a.localOrigin(f.Name), SHA256: sha(f.Content)}}
		if e.meta.Origin == OriginTuning {
			l.Tuning = append(l.Tuning, e)
		} else {
			l.Local = append(l.Local, e)
		}
	}
	var files []engine.File
	var meta []status.File
	for _, e := range l.Ordered() {
		files = append(files, e.file)
		meta = append(meta, e.meta)
	}
	// Compiling is charged to the memory budget like parsing a batch, so a big candidate
	// waits for room instead of adding to the peak (the engine bounds what it can expand to).
	cost := int64(0)
	for _, f := range files {
		cost += int64(len(f.Content)) * compileCostPerByte
	}
	held, _ := a.budget.Acquire(context.Background(), cost)
	rs, results, err := engine.Load(files, a.engineOpts)
	a.budget.Release(held)
	if err != nil {
		return nil, err
	}
	if a.falco != nil {
		// Falco judges last: a set it refuses never reaches its rules directory.
		if err := a.falco.validate(context.Background(), files); err != nil {
			return nil, err
		}
	}
	w := 0
	for _, r := range results {
		w += len(r.Warnings)
	}
	return &built{rs: rs, files: meta, warnings: w, loaded: files}, nil
}

// compileCostPerByte is the memory compiling a rules file takes per byte of YAML, charged to
// the memory budget: measured at about 160 for the worst case (a file of one-character list
// items; the stock rules take far less).
const compileCostPerByte = 192

// Reason renders a load failure as its first precise diagnostic, "file:line:col: error: item:
// message (CODE)", plus how many more errors there were.
func Reason(err error) string {
	var le *engine.LoadError
	if !errors.As(err, &le) {
		return err.Error()
	}
	var diags []string
	for _, r := range le.Results {
		for _, d := range r.Errors {
			diags = append(diags, d.String())
		}
	}
	switch len(diags) {
	case 0:
		return err.Error()
	case 1:
		return diags[0]
	}
	return fmt.Sprintf("%s (and %d more errors)", diags[0], len(diags)-1)
}

// SwapRuleset makes rs the running ruleset between two events and returns its generation. It is
// the low-level primitive behind Reload and Accept; rs must be a complete, valid ruleset.
func (a *Agent) SwapRuleset(rs *engine.Ruleset, meta RulesetMeta) uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.swapLocked(rs, meta)
}

func (a *Agent) swapLocked(rs *engine.Ruleset, meta RulesetMeta) uint64 {
	a.generation++
	act := &active{rs: rs, gen: a.generation, meta: meta, loadedAt: time.Now()}
	a.cur.Store(act)
	a.m.Ruleset(act.gen, len(rs.Rules()), len(rs.ActiveRules()))
	a.log.Info().Uint64("generation", act.gen).Str("origin", meta.Origin).Str("trigger", meta.Trigger).
		Int("rules", len(rs.Rules())).Int("active", len(rs.ActiveRules())).Int("files", len(meta.Files)).
		Int("warnings", meta.Warnings).Msg("ruleset loaded")
	return act.gen
}

// record stores a reload outcome. Callers hold a.mu.
func (a *Agent) record(ch *status.Change) {
	a.lastReload = ch
	if ch.Accepted {
		a.lastAccepted = ch
	} else {
		a.lastIgnored = ch
	}
	a.m.Reload(ch.Origin, ch.Accepted)
	if a.opts.OnChange != nil {
		a.opts.OnChange(*ch) // a copy: the callee may keep it without racing /status
	}
}

// reject records a failed candidate and raises Falco's internal alert. Callers hold a.mu.
func (a *Agent) reject(origin, trigger, ref, digest string, err error) {
	reason := Reason(err)
	ch := &status.Change{Time: time.Now(), Origin: origin, Trigger: trigger, Ref: ref, Digest: digest,
		Accepted: false, Reason: reason, Generation: a.generation}
	// A candidate refused for what it changes (the detection-regression guard) carries its diff.
	var withDiff interface{ RulesetDiff() *status.RulesetDiff }
	if errors.As(err, &withDiff) {
		ch.Diff = withDiff.RulesetDiff()
	}
	a.record(ch)
	a.log.Error().Str("origin", origin).Str("trigger", trigger).Str("ref", ref).Str("digest", digest).
		Str("reason", reason).Uint64("generation", a.generation).
		Msg("ruleset candidate ignored; the running ruleset is unchanged")
	a.outs.Send(output.Internal(time.Now(), HotRestartFailureRule, engine.PriorityCritical,
		HotRestartFailureRule+": "+reason, a.hostname))
}

// Reload rebuilds the ruleset from the configured files (re-read from disk) and the sources'
// accepted files. An invalid candidate leaves the running ruleset in place and returns the
// reason.
func (a *Agent) Reload(ctx context.Context) error { return a.reload(ctx, TriggerReload) }

func (a *Agent) reload(ctx context.Context, trigger string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	local, err := a.readLocal()
	var b *built
	if err == nil {
		b, err = a.compose(local, "", nil)
	}
	if err == nil {
		err = a.publish(b)
	}
	if err != nil {
		a.reject(OriginFile, trigger, "", "", err)
		return fmt.Errorf("reload rules: %s", Reason(err))
	}
	a.local = local
	a.inputs++
	gen := a.swapLocked(b.rs, RulesetMeta{Files: b.files, Warnings: b.warnings, Origin: OriginFile, Trigger: trigger})
	a.record(&status.Change{Time: time.Now(), Origin: OriginFile, Trigger: trigger, Accepted: true, Generation: gen})
	return nil
}

// Compile implements RuleSink.
func (a *Agent) Compile(source string, files []SourceFile) (*Candidate, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.sourceFiles[source]; !ok {
		return nil, fmt.Errorf("unknown rule source %q", source)
	}
	b, err := a.compose(a.local, source, files)
	if err != nil {
		return nil, err
	}
	return &Candidate{source: source, files: files, base: a.inputs, built: b, diff: a.diffFrom(b)}, nil
}

// Accept implements RuleSink.
func (a *Agent) Accept(c *Candidate) (uint64, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	ref, digest := refDigest(c.files)
	b, diff := c.built, c.diff
	if c.base != a.inputs {
		// Another input changed since Compile: the candidate was built on stale files.
		var err error
		if b, err = a.compose(a.local, c.source, c.files); err != nil {
			a.reject(c.source, TriggerCandidate, ref, digest, err)
			return 0, fmt.Errorf("accept %s candidate: %s", c.source, Reason(err))
		}
		diff = a.diffFrom(b)
	}
	if err := a.publish(b); err != nil {
		a.reject(c.source, TriggerCandidate, ref, digest, err)
		// Wrapped: a *falcobin.RefusedError tells the source the same files would be refused
		// again (the follower then does not retry them), unlike a stale recompile.
		return 0, fmt.Errorf("accept %s candidate: %w", c.source, err)
	}
	a.sourceFiles[c.source] = c.files
	a.inputs++
	gen := a.swapLocked(b.rs, RulesetMeta{Files: b.files, Warnings: b.warnings, Origin: c.source, Trigger: TriggerCandidate, Ref: ref, Digest: digest})
	a.record(&status.Change{Time: time.Now(), Origin: c.source, Trigger: TriggerCandidate, Ref: ref, Digest: digest, Accepted: true, Generation: gen, Diff: diff})
	a.log.Info().Str("origin", c.source).Str("ref", ref).Str("digest", digest).Uint64("generation", gen).
		Str("changes", diff.Summary()).Msg("artifacts accepted")
	return gen, nil
}

// Ignore implements RuleSink.
func (a *Agent) Ignore(source string, files []SourceFile, reason error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	ref, digest := refDigest(files)
	a.reject(source, TriggerCandidate, ref, digest, reason)
}

// ReportSource implements RuleSink.
func (a *Agent) ReportSource(s status.Source) {
	a.mu.Lock()
	defer a.mu.Unlock()
	key := s.Name + "\x00" + s.Ref
	// Sources report their whole health each time; a check happened when LastCheck moved.
	if prev := a.sourceStatus[key]; !s.LastCheck.IsZero() && s.LastCheck.After(prev.LastCheck) {
		a.m.FollowCheck(s.Ref, s.LastCheck, s.LastError == "")
	}
	a.sourceStatus[key] = s
}

// Offer is Compile followed by Accept, or Ignore on failure, for sources that have nothing to
// do between the two.
func (a *Agent) Offer(source string, files []SourceFile) (uint64, error) {
	c, err := a.Compile(source, files)
	if err != nil {
		a.Ignore(source, files, err)
		return 0, fmt.Errorf("%s candidate ignored: %s", source, Reason(err))
	}
	return a.Accept(c)
}

// refDigest summarises the artifacts of a file set ("ref1, ref2").
func refDigest(files []SourceFile) (ref, digest string) {
	var refs, digests []string
	seen := map[string]bool{}
	for _, f := range files {
		if f.Ref != "" && !seen[f.Ref+"\x00"+f.Digest] {
			seen[f.Ref+"\x00"+f.Digest] = true
			refs = append(refs, f.Ref)
			digests = append(digests, f.Digest)
		}
	}
	return strings.Join(refs, ", "), strings.Join(digests, ", ")
}

// loadInitial builds the start-up ruleset. Built-in and local files must be valid (Falco exits on
// an invalid file at start-up); sources' persisted files that no longer load are set aside with
// an "ignored" record rather than keeping the agent down.
func (a *Agent) loadInitial(ctx context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	local, err := a.readLocal()
	if err != nil {
		return err
	}
	a.local = local
	for _, src := range a.sources {
		files, err := src.Initial(ctx)
		if err != nil {
			a.log.Error().Err(err).Str("source", src.Name()).Msg("cannot read the rule source's accepted files; starting without them")
			continue
		}
		a.sourceFiles[src.Name()] = files
	}
	b, err := a.compose(local, "", nil)
	if err != nil && len(a.sources) > 0 {
		// Try without the sources' files: if that loads, they are at fault.
		saved := a.sourceFiles
		a.sourceFiles = map[string][]SourceFile{}
		for _, n := range a.sourceOrder {
			a.sourceFiles[n] = nil
		}
		if b2, err2 := a.compose(local, "", nil); err2 == nil {
			for _, n := range a.sourceOrder {
				if len(saved[n]) > 0 {
					ref, digest := refDigest(saved[n])
					a.reject(n, TriggerStartup, ref, digest, err)
				}
			}
			b, err = b2, nil
		} else {
			a.sourceFiles = saved
		}
	}
	if err != nil {
		// A tuning file that no longer loads must not keep the agent down: set it aside.
		b, err = a.withoutTuning(local, b, err)
	}
	if err != nil {
		return fmt.Errorf("rules do not load: %s", Reason(err))
	}
	if err := a.publish(b); err != nil {
		// Validated by -V already: Falco's configuration refuses it (another rules file, a
		// plugin). Recorded, and Falco keeps what its rules directory held.
		a.reject(OriginFile, TriggerStartup, "", "", err)
	}
	a.inputs++
	gen := a.swapLocked(b.rs, RulesetMeta{Files: b.files, Warnings: b.warnings, Origin: OriginFile, Trigger: TriggerStartup})
	a.record(&status.Change{Time: time.Now(), Origin: OriginFile, Trigger: TriggerStartup, Accepted: true, Generation: gen})
	return nil
}

// publish hands a ruleset about to be swapped in to Falco (engine: falco): its rules directory
// is switched and Falco's reload check run; a refusal switches it back and is returned, and the
// caller records the candidate as ignored. Callers hold a.mu.
func (a *Agent) publish(b *built) error {
	if a.falco == nil {
		return nil
	}
	notRun, err := a.falco.publish(context.Background(), b.loaded)
	if notRun != nil {
		a.log.Error().Err(notRun).Msg("could not check that Falco reloads the new rules (they passed falco -V)")
	}
	return err
}
