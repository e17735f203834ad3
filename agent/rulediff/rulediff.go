// Package rulediff compares two compiled rulesets (the running one and a candidate) and owns the
// detection-regression guard: a candidate that would stop evaluating a rule evaluated now
// (removed, disabled, or priority lowered below the minimum priority) is refused, naming those
// rules, unless the followed reference is allowed to do so (follow.allow_rule_removal).
//
// It works on engine.Rulesets as loaded (after appends and overrides), so it sees what the
// engine would run, not what the files say line by line.
package rulediff

import (
	"fmt"
	"slices"
	"strings"

	"github.com/falco-k8s/falco-k8s/agent/status"
	"github.com/falco-k8s/falco-k8s/engine"
)

// Compare returns how cand differs from cur. A nil cur (nothing running yet) makes every rule,
// list and macro of cand "added" and switches nothing off.
func Compare(cur, cand *engine.Ruleset) *status.RulesetDiff {
	d := &status.RulesetDiff{}
	var curRules []*engine.Rule
	if cur != nil {
		curRules = cur.Rules()
	}
	var candRules []*engine.Rule
	if cand != nil {
		candRules = cand.Rules()
	}
	byName := make(map[string]*engine.Rule, len(candRules))
	for _, r := range candRules {
		byName[r.Name] = r
	}
	known := make(map[string]bool, len(curRules))
	for _, old := range curRules {
		known[old.Name] = true
		nw := byName[old.Name]
		if nw == nil {
			d.Removed = append(d.Removed, old.Name)
			if old.Active {
				d.SwitchedOff = append(d.SwitchedOff, status.SwitchedOff{Rule: old.Name, Why: "removed"})
			}
			continue
		}
		switch {
		case old.Enabled && !nw.Enabled:
			d.Disabled = append(d.Disabled, old.Name)
		case !old.Enabled && nw.Enabled:
			d.Enabled = append(d.Enabled, old.Name)
		}
		if c := ruleChange(old, nw); c != nil {
			d.Changed = append(d.Changed, *c)
		}
		if old.Active && !nw.Active {
			d.SwitchedOff = append(d.SwitchedOff, status.SwitchedOff{Rule: old.Name, Why: whyOff(old, nw)})
		}
	}
	for _, r := range candRules {
		if !known[r.Name] {
			d.Added = append(d.Added, r.Name)
		}
	}
	var curLists, candLists map[string][]string
	var curMacros, candMacros map[string]string
	if cur != nil {
		curLists, curMacros = cur.ListItems, cur.MacroConditions
	}
	if cand != nil {
		candLists, candMacros = cand.ListItems, cand.MacroConditions
	}
	d.Lists = items(names(cur, true), names(cand, true), func(n string) bool { return !slices.Equal(curLists[n], candLists[n]) })
	d.Macros = items(names(cur, false), names(cand, false), func(n string) bool { return curMacros[n] != candMacros[n] })
	return d
}

func names(rs *engine.Ruleset, lists bool) []string {
	if rs == nil {
		return nil
	}
	if lists {
		return rs.Lists
	}
	return rs.Macros
}

// items compares two name lists (definition order kept: candidates' order for added names).
func items(cur, cand []string, changed func(string) bool) status.ItemChanges {
	var c status.ItemChanges
	inCand := make(map[string]bool, len(cand))
	for _, n := range cand {
		inCand[n] = true
	}
	inCur := make(map[string]bool, len(cur))
	for _, n := range cur {
		inCur[n] = true
		switch {
		case !inCand[n]:
			c.Removed = append(c.Removed, n)
		case changed(n):
			c.Changed = append(c.Changed, n)
		}
	}
	for _, n := range cand {
		if !inCur[n] {
			c.Added = append(c.Added, n)
		}
	}
	return c
}

func ruleChange(old, nw *engine.Rule) *status.RuleChange {
	c := &status.RuleChange{Rule: old.Name}
	if old.Condition != nw.Condition {
		c.Fields = append(c.Fields, "condition")
	}
	if old.Exceptions != nw.Exceptions {
		c.Fields = append(c.Fields, "exceptions")
	}
	if old.Output != nw.Output {
		c.Fields = append(c.Fields, "output")
	}
	if old.Priority != nw.Priority {
		c.Fields = append(c.Fields, "priority")
		c.PriorityFrom, c.PriorityTo = old.Priority.String(), nw.Priority.String()
	}
	if len(c.Fields) == 0 {
		return nil
	}
	return c
}

// whyOff explains why a rule active in the running ruleset is not active in the candidate.
func whyOff(old, nw *engine.Rule) string {
	switch {
	case !nw.Enabled:
		return "disabled"
	case nw.Skipped:
		return fmt.Sprintf("source changed to %s, which this engine does not evaluate", nw.Source)
	case nw.Priority != old.Priority:
		return fmt.Sprintf("priority lowered from %s to %s, below the minimum priority", old.Priority, nw.Priority)
	}
	return "no longer evaluated"
}

// RegressionError is a candidate refused by the guard: it would switch off the rules in Off.
type RegressionError struct {
	// Refs are the references whose new artifacts make up the candidate.
	Refs []string
	Off  []status.SwitchedOff
	Diff *status.RulesetDiff
}

func (e *RegressionError) Error() string {
	parts := make([]string, len(e.Off))
	for i, o := range e.Off {
		parts[i] = fmt.Sprintf("%q (%s)", o.Rule, o.Why)
	}
	what := "rule"
	if len(e.Off) > 1 {
		what = "rules"
	}
	return fmt.Sprintf("candidate would switch off %d active %s: %s; to accept it, add the reference to follow.allow_rule_removal (%s)",
		len(e.Off), what, strings.Join(parts, ", "), strings.Join(e.Refs, ", "))
}

// RulesetDiff lets the agent record the diff of a refused candidate in /status and Events.
func (e *RegressionError) RulesetDiff() *status.RulesetDiff { return e.Diff }

// Guard refuses d when it switches off active rules and allowed is false (refs name the
// candidate's references in the error). It returns nil otherwise.
func Guard(d *status.RulesetDiff, refs []string, allowed bool) error {
	if d == nil || len(d.SwitchedOff) == 0 || allowed {
		return nil
	}
	return &RegressionError{Refs: refs, Off: d.SwitchedOff, Diff: d}
}
