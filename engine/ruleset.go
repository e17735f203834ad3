package engine

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/falco-k8s/falco-k8s/engine/condition"
	"github.com/falco-k8s/falco-k8s/engine/k8saudit"
)

// Options tune how a ruleset is built.
type Options struct {
	// MinPriority deactivates (but still compiles and validates) rules less severe than it, like
	// Falco's `priority` setting. The zero value is Emergency, so callers normally set it;
	// DefaultOptions uses Debug.
	MinPriority Priority
	// MaxConditionNodes, MaxRulesetNodes, MaxConditionBytes and MaxYAMLNodes bound the
	// loader's work (see DefaultMaxConditionNodes and the others); 0 uses the default.
	MaxConditionNodes int
	MaxRulesetNodes   int
	MaxConditionBytes int
	MaxYAMLNodes      int
}

// DefaultOptions activates every enabled rule.
func DefaultOptions() Options { return Options{MinPriority: PriorityDebug} }

// File is one rules file's name (used in diagnostics) and content.
type File struct {
	Name    string
	Content []byte
}

// Rule is a loaded rule as users see it.
type Rule struct {
	Name     string
	Desc     string
	Output   string
	Priority Priority
	Source   string
	Tags     []string
	Enabled  bool
	// Condition is the rule's condition as written (after appends and overrides).
	Condition string
	// ExpandedCondition is the text actually compiled: exceptions appended, lists substituted.
	ExpandedCondition string
	ExceptionFields   []string
	// Exceptions is the text the rule's exceptions append to its condition (" and not ..."),
	// before list substitution; "" without exceptions. Rule diffs compare it.
	Exceptions string
	// File and Line (1-based) locate the rule's latest definition.
	File string
	Line int
	// Skipped is set for rules of a source this engine does not implement (e.g. syscall).
	Skipped bool
	// Active reports whether the rule is evaluated: enabled, known source, within MinPriority.
	Active bool

	index  int
	node   evalNode
	output *outputFormat
}

// Ruleset is a compiled, immutable set of rules, safe for concurrent use through one Evaluator
// per goroutine.
type Ruleset struct {
	rules     []*Rule
	active    []*Rule
	slots     []fieldSlot
	slotByKey map[string]int
	// Lists and Macros are the names defined, in definition order.
	Lists  []string
	Macros []string
	// ListItems and MacroConditions are each list's items and each macro's condition as
	// written (after appends and overrides), for comparing two rulesets.
	ListItems       map[string][]string
	MacroConditions map[string]string
	// RequiredEngineVersion is the highest required_engine_version seen ("" when none).
	RequiredEngineVersion string
	// PluginRequirements are the required_plugin_versions groups, each satisfied by a built-in.
	PluginRequirements [][]PluginRequirement
	// Files are the rules files loaded, in order.
	Files []string
}

// PluginRequirement is one alternative of a required_plugin_versions entry.
type PluginRequirement = pluginRequirement

// Rules returns every rule in evaluation order, including disabled and skipped ones.
func (rs *Ruleset) Rules() []*Rule { return rs.rules }

// ActiveRules returns the rules that are evaluated, in order.
func (rs *Ruleset) ActiveRules() []*Rule { return rs.active }

// Rule returns the rule with the given name, or nil.
func (rs *Ruleset) Rule(name string) *Rule {
	for _, r := range rs.rules {
		if r.Name == name {
			return r
		}
	}
	return nil
}

// Loader loads rules files cumulatively, with Falco's semantics: each file is read into one
// collector and everything collected so far is recompiled, so diagnostics are per file and a
// later file can append to, override or use items of an earlier one.
type Loader struct {
	opts     Options
	col      collector
	files    map[string]*yamlFile
	names    []string
	results  []FileResult
	rs       *Ruleset
	failed   bool
	reported map[string]bool
}

// NewLoader returns an empty loader.
func NewLoader(opts Options) *Loader {
	l := &Loader{opts: opts, files: map[string]*yamlFile{}, reported: map[string]bool{}}
	l.col.knownSource = func(s string) bool { return s == SourceK8sAudit }
	l.col.lhsCheck = isValidLHS
	return l
}

// isValidLHS reports whether s is a field or transformer expression the k8s_audit source can
// extract (exception fields are checked with it).
func isValidLHS(source, s string) bool {
	op, n, err := condition.ParseOperandPrefix(s)
	if err != nil || n != len(s) {
		return false
	}
	c := &exprCompiler{rs: &Ruleset{slotByKey: map[string]int{}}}
	_, err = c.operandSlot(op)
	return err == nil
}

// Load reads one file and recompiles the whole collection. The result is also kept for
// Results.
func (l *Loader) Load(name string, content []byte) FileResult {
	f := newYAMLFile(name, content)
	l.files[name] = f
	l.names = append(l.names, name)
	l.col.current = f
	res := FileResult{Name: name}
	l.col.onWarn = func(code Code, msg string, cx ctx) {
		l.addWarning(&res, l.diag(SeverityWarning, code, msg, cx, ""))
	}
	rd := &reader{f: f, col: &l.col, res: &res, maxYAMLNodes: l.opts.maxYAMLNodes()}
	if err := rd.read(); err != nil {
		res.Errors = append(res.Errors, l.errDiag(err))
	} else {
		rs, warnings, err := l.compile()
		for _, w := range warnings {
			l.addWarning(&res, w)
		}
		if err != nil {
			res.Errors = append(res.Errors, l.errDiag(err))
		} else {
			l.rs = rs
		}
	}
	res.Successful = len(res.Errors) == 0
	if !res.Successful {
		l.failed = true
	}
	l.results = append(l.results, res)
	return res
}

func (l *Loader) addWarning(res *FileResult, d Diagnostic) {
	key := string(d.Code) + "\x00" + d.Message
	for _, loc := range d.Locations {
		key += "\x00" + loc.ItemType + "\x00" + loc.ItemName + "\x00" + loc.Position.Name +
			"\x00" + strconv.Itoa(loc.Position.Offset) + ":" + strconv.Itoa(loc.Position.Line) + ":" + strconv.Itoa(loc.Position.Column)
	}
	if l.reported[key] {
		// Differs from Falco: a warning about an item of an earlier file is not repeated in
		// every later file's result.
		return
	}
	l.reported[key] = true
	res.Warnings = append(res.Warnings, d)
}

// Results returns the per-file results so far.
func (l *Loader) Results() []FileResult { return l.results }

// Ruleset returns the compiled ruleset, or a *LoadError when any file was invalid.
func (l *Loader) Ruleset() (*Ruleset, error) {
	if l.failed || l.rs == nil {
		if l.rs == nil && !l.failed {
			return l.compileEmpty(), nil
		}
		return nil, &LoadError{Results: l.results}
	}
	return l.rs, nil
}

func (l *Loader) compileEmpty() *Ruleset {
	rs, _, err := l.compile()
	if err != nil {
		return &Ruleset{slotByKey: map[string]int{}}
	}
	return rs
}

// Load compiles files in order, cumulatively. It returns the per-file results always, and the
// ruleset only when every file is valid.
func Load(files []File, opts Options) (*Ruleset, []FileResult, error) {
	l := NewLoader(opts)
	for _, f := range files {
		l.Load(f.Name, f.Content)
	}
	rs, err := l.Ruleset()
	return rs, l.Results(), err
}

func (l *Loader) diag(sev Severity, code Code, msg string, cx ctx, snippet string) Diagnostic {
	locs := make([]Location, len(cx))
	copy(locs, cx)
	if snippet == "" && len(cx) > 0 {
		p := cx[len(cx)-1].Position
		if f := l.files[p.Name]; f != nil {
			snippet = f.snippet(p)
		}
	}
	return Diagnostic{Severity: sev, Code: code, Message: msg, Locations: locs, Snippet: snippet}
}

func (l *Loader) errDiag(err error) Diagnostic {
	var le *loadErr
	var ee *exprErr
	switch {
	case errors.As(err, &ee):
		return l.diag(SeverityError, ee.code, ee.msg, ee.ctx, ee.snippet)
	case errors.As(err, &le):
		return l.diag(SeverityError, le.code, le.msg, le.ctx, le.snippet)
	}
	return l.diag(SeverityError, ErrValidate, err.Error(), ctx{{ItemType: ItemRulesContent}}, "")
}

// compile builds a Ruleset from everything collected so far.
func (l *Loader) compile() (*Ruleset, []Diagnostic, error) {
	cp := &compiler{col: &l.col, opts: l.opts}
	cp.compileLists()
	if err := cp.compileMacros(); err != nil {
		return nil, nil, err
	}
	rs := &Ruleset{slotByKey: map[string]int{}, Files: append([]string(nil), l.names...),
		ListItems: map[string][]string{}, MacroConditions: map[string]string{}}
	if v := l.col.requiredEngine; v != (semver{}) {
		rs.RequiredEngineVersion = v.String()
	}
	rs.PluginRequirements = l.col.pluginGroups
	var warnings []Diagnostic
	allMacros := func(name string) *compiledMacro { return cp.macros[name] }
	// total bounds the work of compiling every rule: the sum of their expanded conditions.
	total := &expansion{limit: l.opts.maxRulesetNodes()}
	for _, ri := range l.col.rules.items {
		r := &Rule{
			Name: ri.name, Desc: ri.desc, Output: ri.output, Priority: ri.priority, Source: ri.source,
			Tags: ri.tags, Enabled: ri.enabled, Condition: ri.cond, File: ri.ctx[len(ri.ctx)-1].Position.Name,
			Line: ri.ctx[len(ri.ctx)-1].Position.Line + 1, index: ri.index,
		}
		if ri.unknownSource && ri.source != SourceSyscall {
			// As Falco: a rule of a source no loaded plugin provides is dropped unread. Rules
			// of the syscall source, which a Falco with its driver compiles, are parsed below.
			r.Skipped = true
			rs.rules = append(rs.rules, r)
			continue
		}
		text, fields, lerr := exceptionCondition(ri.cond, ri.exceptions)
		if lerr != nil {
			return nil, warnings, lerr
		}
		r.ExceptionFields = fields
		if len(ri.exceptions) > 0 {
			r.Exceptions = strings.TrimPrefix(text, "("+ri.cond+")")
		}
		text, rerr := cp.resolveLists(text)
		if rerr != nil {
			return nil, warnings, &loadErr{code: ErrCompileCondition, msg: rerr.Error(), ctx: ri.condCtx}
		}
		r.ExpandedCondition = text
		// Falco validates the output before it parses the condition: with both broken, the
		// output's error is the one reported.
		ec := &exprCompiler{rs: rs}
		var out *outputFormat
		if !ri.unknownSource {
			var oerr *outputError
			out, oerr = compileOutput(ec, ri.output)
			if oerr != nil {
				if oerr.unknownField && ri.skipIfUnknown {
					warnings = append(warnings, l.diag(SeverityWarning, WarnUnknownFilter, oerr.msg, ri.outputCtx, ""))
					r.Skipped = true
					rs.rules = append(rs.rules, r)
					continue
				}
				return nil, warnings, &exprErr{code: ErrCompileOutput, msg: oerr.msg, ctx: ri.outputCtx}
			}
		}
		ast, err := cp.parse(text, ri.condCtx)
		if err != nil {
			return nil, warnings, err
		}
		if ri.unknownSource {
			// syscall rules: Falco has that source and compiles them. We parse them (above)
			// and mark the macros they use, so a syntax error is reported as Falco reports
			// it and their macros are not reported unused.
			r.Skipped = true
			x := &expansion{limit: l.opts.maxConditionNodes()}
			cp.substitute(ast, allMacros, nil, true, x) //nolint:errcheck // usage marking only
			rs.rules = append(rs.rules, r)
			continue
		}
		x := &expansion{limit: l.opts.maxConditionNodes()}
		resolved, merr := cp.substitute(ast, allMacros, nil, true, x)
		if merr == nil && !total.add(x.nodes) {
			merr = &macroErr{tooBig: true, pos: ast.Position(), msg: fmt.Sprintf(
				"the rules' conditions expand to more than %d nodes in all once macros are substituted: use fewer or smaller macros, or split the rules files", total.limit)}
		}
		if merr != nil {
			// Falco locates macro resolution errors from the item, not its condition; a
			// condition too big to expand is ours, located at the condition.
			ictx := ri.ctx
			if merr.tooBig {
				ictx = ri.condCtx
			}
			c, snip := exprCtx(ictx, text, merr.pos)
			return nil, warnings, &exprErr{code: merr.code(), msg: merr.msg, ctx: c, snippet: snip}
		}
		node, err := ec.compile(resolved)
		if err != nil {
			var ce *compileError
			if errors.As(err, &ce) {
				c, snip := exprCtx(ri.condCtx, text, ce.pos)
				if ce.unknownField && ri.skipIfUnknown {
					warnings = append(warnings, l.diag(SeverityWarning, WarnUnknownFilter, ce.msg, c, snip))
					r.Skipped = true
					rs.rules = append(rs.rules, r)
					continue
				}
				return nil, warnings, &exprErr{code: ErrCompileCondition, msg: ce.msg, ctx: c, snippet: snip}
			}
			return nil, warnings, err
		}
		for _, w := range ec.warnings {
			c, snip := exprCtx(ri.condCtx, text, w.pos)
			warnings = append(warnings, l.diag(SeverityWarning, w.code, w.msg, c, snip))
		}
		r.node, r.output = node, out
		r.Active = r.Enabled && r.Priority <= l.opts.MinPriority
		rs.rules = append(rs.rules, r)
		if r.Active {
			rs.active = append(rs.active, r)
		}
	}
	for _, cm := range cp.order {
		rs.Macros = append(rs.Macros, cm.info.name)
		rs.MacroConditions[cm.info.name] = cm.info.cond
		if !cm.used {
			warnings = append(warnings, l.diag(SeverityWarning, WarnUnusedMacro, "Macro not referred to by any other rule/macro", cm.info.ctx, ""))
		}
	}
	for _, cl := range cp.lists {
		rs.Lists = append(rs.Lists, cl.info.name)
		rs.ListItems[cl.info.name] = cl.info.items
		if !cl.used {
			warnings = append(warnings, l.diag(SeverityWarning, WarnUnusedList, "List not referred to by any other rule/macro", cl.info.ctx, ""))
		}
	}
	sort.SliceStable(rs.rules, func(i, j int) bool { return rs.rules[i].index < rs.rules[j].index })
	sort.SliceStable(rs.active, func(i, j int) bool { return rs.active[i].index < rs.active[j].index })
	return rs, warnings, nil
}

// Evaluator evaluates events against a Ruleset. It caches each field's values per event and is
// not safe for concurrent use: use one per goroutine.
type Evaluator struct {
	rs      *Ruleset
	ev      *k8saudit.Event
	gen     uint64
	cache   []slotCache
	matched []*Rule // this event's matches, reported once every condition has run
}

type slotCache struct {
	gen  uint64
	ok   bool
	vals [][]byte
}

// NewEvaluator returns an evaluator for rs.
func (rs *Ruleset) NewEvaluator() *Evaluator {
	return &Evaluator{rs: rs, cache: make([]slotCache, len(rs.slots))}
}

// Ruleset returns the ruleset the evaluator runs.
func (e *Evaluator) Ruleset() *Ruleset { return e.rs }

func (e *Evaluator) values(slot int) ([][]byte, bool) {
	c := &e.cache[slot]
	if c.gen != e.gen {
		c.vals, c.ok = e.rs.slots[slot].extract(e.ev, c.vals[:0])
		if c.ok && len(c.vals) == 0 {
			c.ok = false
		}
		c.gen = e.gen
	}
	return c.vals, c.ok
}

// fresh extracts the slot again, as libsinsp does for every output placeholder: the k8saudit
// plugin unescapes strings and object keys in its parse of the event as fields read them, so
// an object or array rendered after later extractions shows their unescaped text (Falco's
// "rules=%ka.req.role.rules" after a condition read ka.req.role.rules.verbs).
func (e *Evaluator) fresh(slot int) ([][]byte, bool) {
	e.cache[slot].gen = 0 // Match starts gen at 1
	return e.values(slot)
}

// Match evaluates ev against the active rules in order and calls fn for each match: only the
// first unless all is set (Falco's rule_matching first/all). It returns the number of matches.
// ev and the values fn can read through Alert are valid only during the call.
//
// fn is called once every condition has been evaluated, as Falco formats outputs only after
// the rules have run: extractions by later conditions change how the plugin renders objects
// (see fresh), so rendering at match time would differ from Falco's alert.
func (e *Evaluator) Match(ev *k8saudit.Event, all bool, fn func(*Rule)) int {
	e.ev = ev
	e.gen++
	e.matched = e.matched[:0]
	for _, r := range e.rs.active {
		if r.node.eval(e) {
			e.matched = append(e.matched, r)
			if !all {
				break
			}
		}
	}
	if fn != nil {
		for _, r := range e.matched {
			fn(r)
		}
	}
	return len(e.matched)
}

// RuleNames returns the names of rules, for messages.
func RuleNames(rules []*Rule) string {
	names := make([]string, len(rules))
	for i, r := range rules {
		names[i] = r.Name
	}
	return strings.Join(names, ", ")
}
