package follower

import (
	"errors"

	"github.com/falco-k8s/falco-k8s/agent"
	"github.com/falco-k8s/falco-k8s/internal/falcobin"
)

// candidate is a proposed change of the accepted sets, from the registry (check.go) or from a
// local edit (watch.go): what every reference would serve.
type candidate struct {
	next    []*accepted          // the accepted sets once the candidate is accepted
	changed map[int]bool         // references whose files are new: named in the records
	sources map[string]SetSource // content of the new sets, by set name
	// vet, when set, judges the compiled candidate beyond validity (the guard and the
	// artifacts' tests of a registry candidate); an error ignores it like a load error.
	vet func(*agent.Candidate) error
}

// rejectedError is a candidate that did not validate (invalid) or that the agent refused at
// swap time: nothing changed.
type rejectedError struct {
	invalid bool
	err     error
}

func (e *rejectedError) Error() string { return agent.Reason(e.err) }
func (e *rejectedError) Unwrap() error { return e.err }

// candidateFiles lists the candidate ruleset in load order, and the files of the changed
// references (named in the "accepted"/"ignored" records).
func (f *Follower) candidateFiles(c *candidate) (all, changed []agent.SourceFile) {
	content := make([]map[string][]byte, len(c.next))
	labels := make([]string, len(c.next))
	digests := make([]string, len(c.next))
	for i, a := range c.next {
		if a != nil {
			content[i], labels[i], digests[i] = a.content, f.label(i, a.st.LocalEdit), a.st.Digest
		}
	}
	all = f.sourceFiles(content, labels, digests)
	for i := range c.next {
		if !c.changed[i] {
			continue
		}
		for _, p := range f.o.RuleFiles {
			if b, ok := content[i][p]; ok {
				changed = append(changed, agent.SourceFile{Name: f.fileName(i, p), Content: b, Ref: labels[i], Digest: digests[i]})
			}
		}
	}
	if len(changed) == 0 {
		// Only possible when a listed file comes from another reference: keep a stub so the
		// records name the reference.
		i := firstKey(c.changed)
		changed = []agent.SourceFile{{Name: f.o.RuleFiles[0], Ref: labels[i], Digest: digests[i]}}
	}
	return all, changed
}

// promote is the one transaction every change of the accepted sets goes through, from the
// registry or from a local edit:
//
//	validate  the whole candidate ruleset (RuleSink.Compile); invalid: Ignore, nothing changes
//	commit    the new sets and state.json: the atomic switch on disk (Store.Commit)
//	accept    swap the compiled ruleset in (RuleSink.Accept); refused: the commit is undone
//	derive    the active files from the committed sets (activeFiles.materialize)
//
// A crash before the commit's rename leaves the previous set; after it, a restart finishes the
// derivation from the new one. dryRun stops after validation and records nothing.
func (f *Follower) promote(c *candidate, dryRun bool) (uint64, error) {
	all, changed := f.candidateFiles(c)
	err := checkBudget(all)
	var cand *agent.Candidate
	if err == nil {
		cand, err = f.sink.Compile(SourceName, all)
	}
	if err == nil && c.vet != nil {
		err = c.vet(cand)
	}
	if err != nil {
		if !dryRun {
			f.sink.Ignore(SourceName, changed, err)
		}
		return 0, &rejectedError{invalid: true, err: err}
	}
	if dryRun {
		return 0, nil
	}
	prev := f.acc
	if err := f.commit(c.next, c.sources); err != nil {
		f.log.Error().Err(err).Msg("cannot persist the accepted rule files; the running ruleset is unchanged")
		return 0, err
	}
	gen, err := f.sink.Accept(cand)
	if err != nil {
		// The agent recompiled against newer local files and refused, or (engine: falco) Falco
		// refused to reload the set: put the old state back. Falco's refusal would repeat for
		// the same files, so it counts as invalid (not retried until something changes).
		if rerr := f.commit(prev, nil); rerr != nil {
			f.log.Error().Err(rerr).Msg("cannot restore the previous follower state")
		}
		var refused *falcobin.RefusedError
		return 0, &rejectedError{invalid: errors.As(err, &refused), err: err}
	}
	f.acc = c.next
	clear(f.ignored) // other candidates may be valid next to the new files
	f.active.materialize(f.wantActive(f.acc), nil)
	f.watchNew()
	return gen, nil
}

// commit persists next as the accepted state; sources holds new sets' content (and staged
// files), the accepted content covers the rest.
func (f *Follower) commit(next []*accepted, sources map[string]SetSource) error {
	var st State
	all := map[string]SetSource{}
	for _, a := range next {
		if a == nil {
			continue
		}
		st.Refs = append(st.Refs, a.st)
		if src, ok := sources[a.st.Set]; ok {
			all[a.st.Set] = src
		} else {
			all[a.st.Set] = SetSource{Content: a.content}
		}
	}
	return f.store.Commit(st, all)
}
