package follower

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"github.com/falco-k8s/falco-k8s/artifact/requirements"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/falco-k8s/falco-k8s/agent"
	"github.com/falco-k8s/falco-k8s/agent/status"
	"github.com/falco-k8s/falco-k8s/artifact/extract"
	"github.com/falco-k8s/falco-k8s/artifact/install"
	"github.com/falco-k8s/falco-k8s/artifact/oci"
)

// maxDamageBackoff bounds how long a digest that sent bad content is left alone (unless the
// interval is longer): a registry whose storage was repaired is tried again within a day.
const maxDamageBackoff = 24 * time.Hour

// damage is bad content seen for one ref@digest: it is not downloaded again before until.
type damage struct {
	reason string
	n      int
	until  time.Time
}

// pulledArtifact is a new digest's listed files, still staged (extracted) on disk.
type pulledArtifact struct {
	digest string
	files  map[string][]byte
	staged map[string]string // path -> the staged file, moved into the set at commit
	st     *install.Staged
	all    []string          // every file path in the artifact, for diagnostics
	tests  map[string][]byte // the artifact's tests/ files (engine/ruletest), by path
	signer string            // who signed, when the signature was verified
}

// round checks the references in due, plus every reference with nothing accepted yet (so that
// references whose files complete each other are first accepted together), and turns the new
// digests into one candidate ruleset. force re-examines candidates ignored (or backed off)
// before.
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
		f.contentFail[i] = false
		res := &status.SyncResult{Ref: f.names[i]}
		results[i] = res
		var d string
		if f.pinned() {
			// Never a registry request: the digest is the one the leader published.
			pin, ok := f.pins[f.names[i]]
			if !ok {
				res.Result, res.Reason = ResultUnchanged, f.waitingReason()
				if a := f.acc[i]; a != nil {
					res.Digest = a.st.Digest
				}
				continue
			}
			d = pin
		} else {
			var err error
			if d, err = f.resolve(ctx, i); err != nil {
				res.Result, res.Reason = ResultError, err.Error()
				continue
			}
		}
		res.Digest = d
		if a := f.acc[i]; a != nil && a.st.Digest == d {
			res.Result = ResultUnchanged
			f.log.Debug().Str("ref", f.names[i]).Str("digest", d).Msg("digest unchanged")
			continue
		}
		newDigest[i] = d
	}
	defer func() {
		if f.pinned() {
			f.notePins(results, dryRun)
		}
		f.reportHealth()
	}()
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
	defer func() {
		for _, p := range pulled {
			p.st.Discard() // what the commit did not move into a set
		}
	}()
	for _, i := range sortedKeys(newDigest) {
		d := newDigest[i]
		res := results[i]
		badKey := f.names[i] + "@" + d
		if reason, isBad := f.bad[badKey]; isBad && !force {
			res.Result, res.Reason = ResultIgnored, "already ignored: "+reason
			continue
		}
		if dm := f.damaged[badKey]; dm != nil && !force && time.Now().Before(dm.until) {
			f.contentFail[i] = true
			res.Result = ResultError
			res.Reason = fmt.Sprintf("%s (not downloaded again before %s)", dm.reason, dm.until.UTC().Format(time.RFC3339))
			f.health[i].LastError = dm.reason
			continue
		}
		p, err := f.pull(ctx, i, d)
		var ue unusableError
		var re *registryError
		switch {
		case errors.As(err, &ue):
			res.Result, res.Reason = ResultIgnored, err.Error()
			if !dryRun {
				// A dry run records nothing, so the next real check still reports it.
				if !errors.As(err, new(notYetSigned)) { // a signature may follow its artifact
					f.bad[badKey] = err.Error()
				}
				f.sink.Ignore(SourceName, []agent.SourceFile{{Name: f.o.RuleFiles[0], Ref: f.names[i], Digest: d}}, err)
			}
		case errors.As(err, &re) && re.kind == oci.KindBadContent:
			// Downloading the same digest at every check would not help: back it off.
			dm := f.damaged[badKey]
			if dm == nil {
				dm = &damage{}
				f.damaged[badKey] = dm
			}
			dm.n++
			dm.reason, dm.until = err.Error(), time.Now().Add(f.damageBackoff(dm.n))
			f.contentFail[i] = true
			res.Result, res.Reason = ResultError, err.Error()
			f.setHealthError(i, err)
		case err != nil:
			res.Result, res.Reason = ResultError, err.Error()
			f.setHealthError(i, err)
		default:
			delete(f.damaged, badKey)
			pulled[i] = p
		}
	}
	if len(pulled) == 0 {
		return ordered(results)
	}

	// The candidate: the new files of pulled references, the accepted files of the others.
	c := &candidate{next: make([]*accepted, len(f.acc)), changed: map[int]bool{}, sources: map[string]SetSource{}}
	copy(c.next, f.acc)
	now := time.Now()
	for i, p := range pulled {
		a := &accepted{st: newRefState(f.names[i], p.digest, p.files, false, now), content: p.files}
		c.next[i], c.changed[i] = a, true
		c.sources[a.st.Set] = SetSource{Content: p.files, Staged: p.staged}
	}
	var content []map[string][]byte
	for _, a := range c.next {
		if a != nil {
			content = append(content, a.content)
		}
	}
	if missing := f.uncovered(content); len(missing) > 0 {
		err := f.missingError(missing, pulled)
		for i := range pulled {
			results[i].Result, results[i].Reason = ResultIgnored, err.Error()
		}
		if !dryRun {
			f.ignored[key] = err.Error()
			_, changed := f.candidateFiles(c)
			f.sink.Ignore(SourceName, changed, err)
		}
		return ordered(results)
	}
	// Before the ruleset is promoted: its diff in the results, the detection-regression guard
	// (guard.go) and the artifacts' own tests (tests.go). Local edits skip these: the operator
	// is trusted with the files on the agent's disk.
	c.vet = func(cand *agent.Candidate) error {
		if err := f.guardCandidate(cand, pulled, results); err != nil {
			return err
		}
		return f.testCandidate(cand, pulled)
	}
	gen, err := f.promote(c, dryRun)
	var rej *rejectedError
	for i, p := range pulled {
		switch {
		case errors.As(err, &rej):
			results[i].Result, results[i].Reason = ResultIgnored, rej.Error()
			if !dryRun && rej.invalid {
				f.ignored[key] = rej.Error()
			}
		case err != nil:
			results[i].Result, results[i].Reason = ResultError, err.Error()
		case dryRun:
			results[i].Result, results[i].Reason = ResultAccepted, "dry run: the candidate ruleset is valid; nothing was applied"
		default:
			results[i].Result = ResultAccepted
			f.health[i].Digest = p.digest
			f.health[i].Signer = p.signer
			f.log.Info().Str("ref", f.names[i]).Str("digest", p.digest).Uint64("generation", gen).Msg("artifacts accepted")
		}
	}
	return ordered(results)
}

// damageBackoff is how long a digest that sent bad content n times in a row is not downloaded
// again: 2, 4, 8... intervals, at most maxDamageBackoff (or one interval when that is longer).
func (f *Follower) damageBackoff(n int) time.Duration {
	limit := max(maxDamageBackoff, f.o.Interval)
	d := 2 * f.o.Interval
	for k := 1; k < n && d < limit; k++ {
		d *= 2
	}
	return min(d, limit)
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
	out := make([]status.SyncResult, 0, len(m))
	for _, k := range sortedKeys(m) {
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
	return unusableError{fmt.Errorf("follow.rule_files %s missing from %s", quoteList(missing), strings.Join(from, "; "))}
}

// sortedKeys returns m's keys in order: a fixed order of work (and of crash-test steps).
func sortedKeys[K cmp.Ordered, V any](m map[K]V) []K {
	keys := make([]K, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
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
	ev, msg := f.log.Error(), "rules follower: registry check failed; serving the last accepted rules"
	var re *registryError
	if errors.As(err, &re) {
		if re.transient {
			ev = f.log.Warn()
		}
		if re.kind == oci.KindBadContent {
			msg = "rules follower: bad content from the registry; not downloading this digest again for a while, serving the last accepted rules"
		}
		ev = ev.Stringer("kind", re.kind)
	}
	ev.Str("ref", f.names[i]).Str("registry", f.refs[i].Registry).Str("reason", err.Error()).Msg(msg)
}

func (f *Follower) reportHealth() {
	if f.sink == nil {
		return
	}
	for i := range f.health {
		f.health[i].Files, f.health[i].LocalEdit = nil, false
		if a := f.acc[i]; a != nil {
			f.health[i].Files, f.health[i].LocalEdit = sortedKeys(a.content), a.st.LocalEdit
		}
		f.sink.ReportSource(f.health[i])
	}
}

// pull runs the candidate pipeline for digest d of reference i up to validation:
//
//	fetch    the manifest and config by digest, every byte verified (Describe)
//	verify   the artifact, before any layer byte is downloaded (verify)
//	extract  the layer, streamed through digest and size verification into a safe
//	         extraction staged under the state directory (install.Stage)
//
// Only the listed files are kept. Validation, commit and swap follow in promote. Registry
// failures come back as *registryError (classified by oci.Classify, bad content included);
// artifacts that can never be used as unusableError.
func (f *Follower) pull(ctx context.Context, i int, d string) (_ *pulledArtifact, err error) {
	ctx, cancel := context.WithTimeout(ctx, checkTimeout)
	defer cancel()
	ctx = withRetryKey(ctx, f.refs[i].Registry)
	r := f.refs[i].WithDigest(d)
	host := r.Registry
	registryErr := func(err error) error {
		return explainRegistry(host, r.String(), f.creds.HasCredential(host), err)
	}

	// fetch
	a, err := f.client.Describe(ctx, r, "")
	if err != nil {
		if oci.Classify(err) != oci.KindOther {
			return nil, registryErr(err)
		}
		return nil, unusableError{fmt.Errorf("artifact %s is not usable: %w", r, err)}
	}
	if a.Type != oci.Rulesfile {
		return nil, unusableError{fmt.Errorf("artifact %s is a %s, not a rulesfile", r, a.Type)}
	}

	// verify: the digest's signature and the config's requirements, before the layer
	signer, err := f.verify(ctx, i, d, a)
	if err != nil {
		return nil, err
	}

	// extract
	max := f.o.MaxArtifactSize
	st, err := install.Stage(ctx, f.client, a, f.store.setsDir(), install.StageOptions{
		MaxLayerBytes: max, StagingDir: f.store.StagingDir(),
		Limits: extract.Limits{MaxFileBytes: max, MaxTotal: max},
	})
	if err != nil {
		if oci.Classify(err) != oci.KindOther {
			// Connection trouble is retried with backoff; bad content (damage in transit, or
			// a layer that verifies and still does not decode) backs the digest off.
			return nil, registryErr(err)
		}
		return nil, unusableError{fmt.Errorf("artifact %s rejected: %w", r, err)}
	}
	defer func() {
		if err != nil {
			st.Discard()
		}
	}()
	listed := f.listed()
	p := &pulledArtifact{digest: d, files: map[string][]byte{}, staged: map[string]string{}, st: st, signer: signer}
	for _, ef := range st.Files {
		p.all = append(p.all, ef.Path)
		if !listed[ef.Path] {
			continue
		}
		b, err := os.ReadFile(st.Path(ef))
		if err != nil {
			return nil, fmt.Errorf("read staged %s: %w", ef.Path, err)
		}
		p.files[ef.Path], p.staged[ef.Path] = b, st.Path(ef)
	}
	if len(p.files) == 0 {
		return nil, unusableError{fmt.Errorf("artifact %s contains none of follow.rule_files %v (files: %s)", r, f.o.RuleFiles, strings.Join(p.all, ", "))}
	}
	if err := readTests(st, p); err != nil {
		return nil, err
	}
	if extra := len(p.all) - len(p.files); extra > 0 {
		f.log.Debug().Str("ref", f.names[i]).Int("files", extra).Msg("ignoring artifact files not listed in follow.rule_files")
	}
	return p, nil
}

// verify is the pipeline's verification step: it sees the digest-verified manifest and config
// of reference i's candidate before its layer is downloaded, checks the digest's cosign
// signature (signature.go) and the config's engine requirements and plugin dependencies
// (artifact/requirements), and returns who signed. An error rejects the digest
// (unusableError; notYetSigned is looked at again) or, for a registry failure fetching
// signatures, is retried (*registryError).
func (f *Follower) verify(ctx context.Context, i int, d string, a *oci.Artifact) (string, error) {
	signer, err := f.verifySignature(ctx, i, d)
	if err != nil {
		return "", err
	}
	if err := requirements.Check(a.Config, requirements.Agent()); err != nil {
		return "", unusableError{fmt.Errorf("artifact %s ignored: %w", f.refs[i].WithDigest(d), err)}
	}
	return signer, nil
}
