package status

import (
	"fmt"
	"strings"
)

// RulesetDiff is how a candidate ruleset differs from the running one: rules by name, lists and
// macros by name and content. Built by agent/rulediff.
type RulesetDiff struct {
	// Added and Removed are rules defined in only one of the two rulesets.
	Added   []string `json:"added,omitempty"`
	Removed []string `json:"removed,omitempty"`
	// Enabled and Disabled are rules whose enabled flag changed.
	Enabled  []string `json:"enabled,omitempty"`
	Disabled []string `json:"disabled,omitempty"`
	// Changed are rules present in both whose condition, exceptions, output or priority changed.
	Changed []RuleChange `json:"changed,omitempty"`
	Lists   ItemChanges  `json:"lists,omitzero"`
	Macros  ItemChanges  `json:"macros,omitzero"`
	// SwitchedOff are the rules evaluated now that the candidate would no longer evaluate
	// (removed, disabled, or priority lowered below rules.minimum_priority): what the
	// detection-regression guard refuses unless the reference allows it.
	SwitchedOff []SwitchedOff `json:"switched_off,omitempty"`
}

// RuleChange is one rule changed in place.
type RuleChange struct {
	Rule string `json:"rule"`
	// Fields lists what changed: "condition", "exceptions", "output", "priority".
	Fields []string `json:"fields"`
	// PriorityFrom and PriorityTo are set when the priority changed.
	PriorityFrom string `json:"priority_from,omitempty"`
	PriorityTo   string `json:"priority_to,omitempty"`
}

// ItemChanges are the lists or macros added, removed or changed (items or condition).
type ItemChanges struct {
	Added   []string `json:"added,omitempty"`
	Removed []string `json:"removed,omitempty"`
	Changed []string `json:"changed,omitempty"`
}

// SwitchedOff is an active rule the candidate would stop evaluating, and why ("removed",
// "disabled", "priority lowered from WARNING to DEBUG, below the minimum priority").
type SwitchedOff struct {
	Rule string `json:"rule"`
	Why  string `json:"why"`
}

func (c ItemChanges) empty() bool {
	return len(c.Added) == 0 && len(c.Removed) == 0 && len(c.Changed) == 0
}

// Empty reports whether the two rulesets define the same rules, lists and macros.
func (d *RulesetDiff) Empty() bool {
	return d == nil || len(d.Added) == 0 && len(d.Removed) == 0 && len(d.Enabled) == 0 && len(d.Disabled) == 0 &&
		len(d.Changed) == 0 && d.Lists.empty() && d.Macros.empty()
}

// summaryNames is how many names a one-line summary spells out per category.
const summaryNames = 5

// Summary is a one-line account for action results, logs and Kubernetes Events, e.g. `rules: 1
// added ("New rule"), 1 disabled ("Create Privileged Pod"); macros: 1 changed (never_true)`.
func (d *RulesetDiff) Summary() string {
	if d.Empty() {
		return "no rule, list or macro changes"
	}
	names := func(n []string) string {
		q := make([]string, 0, min(len(n), summaryNames))
		for _, x := range n[:min(len(n), summaryNames)] {
			q = append(q, fmt.Sprintf("%q", x))
		}
		if len(n) > summaryNames {
			q = append(q, fmt.Sprintf("and %d more", len(n)-summaryNames))
		}
		return strings.Join(q, ", ")
	}
	var parts []string
	add := func(what string, n []string) {
		if len(n) > 0 {
			parts = append(parts, fmt.Sprintf("%d %s (%s)", len(n), what, names(n)))
		}
	}
	var sections []string
	add("added", d.Added)
	add("removed", d.Removed)
	add("enabled", d.Enabled)
	add("disabled", d.Disabled)
	changed := make([]string, len(d.Changed))
	for i, c := range d.Changed {
		changed[i] = c.Rule
	}
	add("changed", changed)
	if len(parts) > 0 {
		sections = append(sections, "rules: "+strings.Join(parts, ", "))
	}
	for _, s := range []struct {
		what string
		c    ItemChanges
	}{{"lists", d.Lists}, {"macros", d.Macros}} {
		parts = nil
		add("added", s.c.Added)
		add("removed", s.c.Removed)
		add("changed", s.c.Changed)
		if len(parts) > 0 {
			sections = append(sections, s.what+": "+strings.Join(parts, ", "))
		}
	}
	return strings.Join(sections, "; ")
}
