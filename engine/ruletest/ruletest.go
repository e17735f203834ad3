// Package ruletest owns rules test cases: recorded audit events and the rules expected to fire,
// or not, on them. A rules artifact carries them so that the agent's follower can replay them
// against a candidate ruleset before accepting it, and `falco-k8s rules test` runs the same cases
// locally or in CI.
//
// # Layout
//
// Everything under tests/ at the artifact's (or directory's) root belongs to the tests. Each
// tests/*.yaml (or .yml) file, directly under tests/, is a YAML list of cases:
//
//	# tests/pods.yaml
//	- name: privileged pod is flagged
//	  events: tests/events/privileged-pod.json   # path from the root
//	  fire: [Create Privileged Pod]
//	  no_fire: [Create Sensitive Mount Pod]
//
// events is a JSON Lines file of audit events or EventLists, or one JSON document (an Event, an
// EventList or an array of them), as kube-apiserver's log and webhook backends write them. Every
// rule in fire must alert on at least one of the events, and no rule in no_fire may alert on any;
// each rule named must exist in the ruleset. Events are evaluated against every rule (not only
// the first match, unlike rules.rule_matching: first), so a case does not depend on rule order.
package ruletest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/falco-k8s/falco-k8s/engine"
	"github.com/falco-k8s/falco-k8s/engine/k8saudit"
)

// Dir is the directory, at the root, that holds the tests.
const Dir = "tests"

// Case is one test case.
type Case struct {
	Name   string   `yaml:"name"`
	Events string   `yaml:"events"`
	Fire   []string `yaml:"fire"`
	NoFire []string `yaml:"no_fire"`
	// File is the tests file that defines the case.
	File string `yaml:"-"`
}

// IsTestFile reports whether p (slash-separated, from the root) is a tests file: tests/*.yaml.
func IsTestFile(p string) bool {
	dir, base := path.Split(p)
	return dir == Dir+"/" && (strings.HasSuffix(base, ".yaml") || strings.HasSuffix(base, ".yml"))
}

// InDir reports whether p (slash-separated, from the root) is under tests/.
func InDir(p string) bool { return strings.HasPrefix(p, Dir+"/") }

// Parse reads one tests file. name is used in errors.
func Parse(name string, content []byte) ([]Case, error) {
	var cases []Case
	dec := yaml.NewDecoder(bytes.NewReader(content))
	dec.KnownFields(true)
	if err := dec.Decode(&cases); err != nil && !errors.Is(err, io.EOF) { // io.EOF: an empty file
		return nil, fmt.Errorf("%s: %w (want a list of {name, events, fire, no_fire})", name, err)
	}
	for i := range cases {
		c := &cases[i]
		c.File = name
		switch {
		case strings.TrimSpace(c.Name) == "":
			return nil, fmt.Errorf("%s: case %d: name is required", name, i+1)
		case c.Events == "":
			return nil, fmt.Errorf("%s: case %q: events is required (a path from the root, e.g. tests/events/x.json)", name, c.Name)
		case len(c.Fire) == 0 && len(c.NoFire) == 0:
			return nil, fmt.Errorf("%s: case %q: expects nothing: list rules in fire and/or no_fire", name, c.Name)
		}
		if clean := path.Clean(c.Events); clean != c.Events || path.IsAbs(clean) || clean == ".." || strings.HasPrefix(clean, "../") {
			return nil, fmt.Errorf("%s: case %q: events %q: want a clean relative path from the root", name, c.Name, c.Events)
		}
	}
	return cases, nil
}

// Load parses every tests file among files (path from the root -> content), in path order.
func Load(files map[string][]byte) ([]Case, error) {
	var names []string
	for p := range files {
		if IsTestFile(p) {
			names = append(names, p)
		}
	}
	sort.Strings(names)
	var all []Case
	for _, n := range names {
		cs, err := Parse(n, files[n])
		if err != nil {
			return nil, err
		}
		all = append(all, cs...)
	}
	return all, nil
}

// Result is one case's outcome: Failures is empty when it passed.
type Result struct {
	Case     Case
	Failures []string
}

// Run evaluates each case's events against rs. read returns a file by its path from the root.
func Run(rs *engine.Ruleset, cases []Case, read func(string) ([]byte, error)) []Result {
	out := make([]Result, 0, len(cases))
	for _, c := range cases {
		out = append(out, Result{Case: c, Failures: runCase(rs, c, read)})
	}
	return out
}

func runCase(rs *engine.Ruleset, c Case, read func(string) ([]byte, error)) []string {
	var fails []string
	for _, n := range append(append([]string(nil), c.Fire...), c.NoFire...) {
		if rs.Rule(n) == nil {
			fails = append(fails, fmt.Sprintf("rule %q is not in the ruleset", n))
		}
	}
	data, err := read(c.Events)
	if err != nil {
		return append(fails, fmt.Sprintf("events %s: %v", c.Events, err))
	}
	fired := map[string]int{} // rule -> first event (1-based) it fired on
	eval := rs.NewEvaluator()
	var dec k8saudit.Decoder
	events := 0
	each := func(doc []byte, where string) error {
		_, err := dec.Decode(doc, func(ev *k8saudit.Event) error {
			events++
			eval.Match(ev, true, func(r *engine.Rule) {
				if _, ok := fired[r.Name]; !ok {
					fired[r.Name] = events
				}
			})
			return nil
		})
		if err != nil {
			return fmt.Errorf("events %s%s: %w", c.Events, where, err)
		}
		return nil
	}
	trimmed := bytes.TrimSpace(data)
	if err := each(trimmed, ""); err != nil {
		// Not one document: JSON Lines.
		for i, line := range bytes.Split(trimmed, []byte("\n")) {
			if len(bytes.TrimSpace(line)) == 0 {
				continue
			}
			if err := each(line, fmt.Sprintf(" line %d", i+1)); err != nil {
				return append(fails, err.Error())
			}
		}
	}
	if events == 0 {
		return append(fails, fmt.Sprintf("events %s holds no audit event", c.Events))
	}
	for _, n := range c.Fire {
		if _, ok := fired[n]; !ok && rs.Rule(n) != nil {
			fails = append(fails, fmt.Sprintf("rule %q did not fire on any of the %d events", n, events))
		}
	}
	for _, n := range c.NoFire {
		if ev, ok := fired[n]; ok {
			fails = append(fails, fmt.Sprintf("rule %q fired on event %d, expected not to", n, ev))
		}
	}
	return fails
}

// FailedError is returned by Check when cases failed.
type FailedError struct {
	Failed []Result
	Total  int
}

func (e *FailedError) Error() string {
	first := e.Failed[0]
	msg := fmt.Sprintf("artifact test %q (%s) failed: %s", first.Case.Name, first.Case.File, strings.Join(first.Failures, "; "))
	if n := len(e.Failed) - 1; n > 0 {
		msg += fmt.Sprintf(" (and %d more failed of %d)", n, e.Total)
	}
	return msg
}

// Check loads the cases among files and runs them against rs: nil when every case passes (or
// there is none), a *FailedError naming the first failure otherwise, or the tests file's parse
// error.
func Check(rs *engine.Ruleset, files map[string][]byte) error {
	cases, err := Load(files)
	if err != nil {
		return err
	}
	read := func(p string) ([]byte, error) {
		b, ok := files[p]
		if !ok {
			return nil, errors.New("no such file in the artifact")
		}
		return b, nil
	}
	var failed []Result
	for _, r := range Run(rs, cases, read) {
		if len(r.Failures) > 0 {
			failed = append(failed, r)
		}
	}
	if len(failed) > 0 {
		return &FailedError{Failed: failed, Total: len(cases)}
	}
	return nil
}
