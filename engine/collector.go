package engine

import (
	"fmt"
	"strconv"
	"strings"
)

// exceptionEntry is a scalar or (nested) sequence from an exception's fields, comps or values.
type exceptionEntry struct {
	valid  bool
	isList bool
	item   string
	items  []exceptionEntry
}

// given is Falco's test that fields or comps were set: an empty list counts as absent, so
// `comps: []` takes the defaults and `fields: []` is "must have fields property".
func (e *exceptionEntry) given() bool { return e.valid && (!e.isList || len(e.items) > 0) }

type exceptionInfo struct {
	ctx    ctx
	name   string
	fields exceptionEntry
	comps  exceptionEntry
	values []exceptionEntry
}

type listInfo struct {
	ctx        ctx
	file       *yamlFile
	name       string
	items      []string
	index      int
	visibility int
}

type macroInfo struct {
	ctx        ctx
	condCtx    ctx
	file       *yamlFile
	name       string
	cond       string
	index      int
	visibility int
}

type ruleInfo struct {
	ctx             ctx
	condCtx         ctx
	outputCtx       ctx
	file            *yamlFile
	name            string
	cond            string
	output          string
	desc            string
	source          string
	priority        Priority
	enabled         bool
	warnEvttypes    bool
	skipIfUnknown   bool
	capture         bool
	captureDuration uint32
	tags            []string
	exceptions      []exceptionInfo
	unknownSource   bool
	index           int
	visibility      int
}

// ruleUpdate is an append or selective replace of an existing rule; nil fields are untouched.
type ruleUpdate struct {
	ctx             ctx
	condCtx         ctx
	file            *yamlFile
	name            string
	source          string
	keys            []string
	cond            *string
	output          *string
	desc            *string
	tags            *[]string
	exceptions      *[]exceptionInfo
	priority        *Priority
	enabled         *bool
	warnEvttypes    *bool
	skipIfUnknown   *bool
	capture         *bool
	captureDuration *uint32
}

type pluginRequirement struct {
	Name    string
	Version string
}

// ordered keeps items in first-definition order with lookup by name.
type ordered[T any] struct {
	byName map[string]int
	items  []*T
}

func (o *ordered[T]) get(name string) *T {
	if i, ok := o.byName[name]; ok {
		return o.items[i]
	}
	return nil
}

func (o *ordered[T]) put(name string, v *T) {
	if o.byName == nil {
		o.byName = map[string]int{}
	}
	if i, ok := o.byName[name]; ok {
		o.items[i] = v
		return
	}
	o.byName[name] = len(o.items)
	o.items = append(o.items, v)
}

// collector accumulates items across files with Falco's global sequence numbers: index is the
// first definition's number (evaluation order), visibility the latest define/append/replace.
type collector struct {
	seq            int
	lists          ordered[listInfo]
	macros         ordered[macroInfo]
	rules          ordered[ruleInfo]
	requiredEngine semver
	pluginGroups   [][]pluginRequirement
	knownSource    func(string) bool
	lhsCheck       func(source, field string) bool
	onWarn         func(code Code, msg string, cx ctx)
	current        *yamlFile
}

func (c *collector) next() int { c.seq++; return c.seq }

func (c *collector) fail(msg string, cx ctx) error {
	return &loadErr{code: ErrValidate, msg: msg, ctx: cx}
}

func (c *collector) requireEngine(v semver, cx ctx) error {
	engine, _ := parseSinspVersion(EngineVersion)
	if !engine.compatibleWith(v) {
		return c.fail(fmt.Sprintf("Rules require engine version %s, but engine version is %s", v, EngineVersion), cx)
	}
	if c.requiredEngine.less(v) {
		c.requiredEngine = v
	}
	return nil
}

// requirePlugins validates a required_plugin_versions group's syntax and checks it against the
// built-in plugin versions the way Falco checks loaded plugins after loading.
func (c *collector) requirePlugins(group []pluginRequirement, cx ctx) error {
	seen := map[string]bool{}
	for _, r := range group {
		if _, ok := parseSemverStrict(r.Version); !ok {
			return c.fail(fmt.Sprintf("Invalid required version '%s' for plugin '%s'", r.Version, r.Name), cx)
		}
		if seen[r.Name] {
			return c.fail(fmt.Sprintf("Defined multiple alternative version requirements for plugin '%s'", r.Name), cx)
		}
		seen[r.Name] = true
	}
	for _, r := range group {
		have, ok := BuiltinPlugins[r.Name]
		if !ok {
			continue
		}
		hv, _ := parseSemverStrict(have)
		rv, _ := parseSemverStrict(r.Version)
		if !hv.compatibleWith(rv) {
			return c.fail(fmt.Sprintf("Plugin '%s' version '%s' is not compatible with required plugin version '%s'", r.Name, have, r.Version), cx)
		}
		c.pluginGroups = append(c.pluginGroups, group)
		return nil
	}
	var alts []string
	for _, r := range group {
		alts = append(alts, fmt.Sprintf("%s (>= %s)", r.Name, r.Version))
	}
	// Differs from Falco, where an unsatisfied requirement is fatal: falco-k8s can never load
	// plugins other than its built-in k8saudit and json, so a requirement for one (e.g. the
	// container plugin of the stock syscall rules) only means the rules of that plugin's sources
	// are skipped, which the unknown-source warnings already say per rule.
	c.onWarn(WarnUnknownSource, "Plugin requirement not satisfied, must load one of: "+strings.Join(alts, ", ")+
		"; falco-k8s implements only the k8saudit and json plugins, so rules needing it are skipped", cx)
	return nil
}

func (c *collector) defineList(l *listInfo) {
	id := c.next()
	if prev := c.lists.get(l.name); prev != nil {
		l.index = prev.index
		l.visibility = id
		*prev = *l
		return
	}
	l.index, l.visibility = id, id
	c.lists.put(l.name, l)
}

func (c *collector) appendList(l *listInfo) error {
	prev := c.lists.get(l.name)
	if prev == nil {
		return c.fail(errNoPrevList, l.ctx)
	}
	prev.items = append(prev.items, l.items...)
	prev.visibility = c.next()
	return nil
}

func (c *collector) defineMacro(m *macroInfo) {
	id := c.next()
	if prev := c.macros.get(m.name); prev != nil {
		m.index = prev.index
		m.visibility = id
		*prev = *m
		return
	}
	m.index, m.visibility = id, id
	c.macros.put(m.name, m)
}

func (c *collector) appendMacro(m *macroInfo) error {
	prev := c.macros.get(m.name)
	if prev == nil {
		return c.fail(errNoPrevMacro, m.ctx)
	}
	prev.cond += " " + m.cond
	prev.visibility = c.next()
	return nil
}

func (c *collector) defineRule(r *ruleInfo) error {
	prev := c.rules.get(r.name)
	if prev != nil && prev.source != "" && r.source != "" && prev.source != r.source {
		return c.fail("Rule has been re-defined with a different source", r.ctx)
	}
	if !c.knownSource(r.source) {
		r.unknownSource = true
		c.onWarn(WarnUnknownSource, "Unknown source "+r.source+", skipping", r.ctx)
	}
	for i := range r.exceptions {
		ex := &r.exceptions[i]
		if !ex.fields.given() {
			return c.fail("Rule exception item must have fields property with a list of fields", ex.ctx)
		}
		if err := c.validateException(r.source, !r.unknownSource, true, ex); err != nil {
			return err
		}
	}
	id := c.next()
	if prev != nil {
		r.index = prev.index
		r.visibility = id
		*prev = *r
		return nil
	}
	r.index, r.visibility = id, id
	c.rules.put(r.name, r)
	return nil
}

func (c *collector) checkSource(prev *ruleInfo, u *ruleUpdate) error {
	if u.source != "" && prev.source != "" && u.source != prev.source {
		return c.fail("Rule has been re-defined with a different source", u.ctx)
	}
	return nil
}

func (c *collector) appendRule(u *ruleUpdate) error {
	prev := c.rules.get(u.name)
	if prev == nil {
		return c.fail(errNoPrevRuleAppend, u.ctx)
	}
	if err := c.checkSource(prev, u); err != nil {
		return err
	}
	if u.cond != nil && *u.cond != "" {
		prev.cond += " " + *u.cond
	}
	if u.output != nil && *u.output != "" {
		prev.output += " " + *u.output
	}
	if u.desc != nil && *u.desc != "" {
		prev.desc += " " + *u.desc
	}
	if u.tags != nil {
		prev.tags = tagSet(append(append([]string{}, prev.tags...), (*u.tags)...))
	}
	if u.exceptions != nil {
		for _, ex := range *u.exceptions {
			found := -1
			for i := range prev.exceptions {
				if prev.exceptions[i].name == ex.name {
					found = i
					break
				}
			}
			if found < 0 {
				if !ex.fields.given() {
					return c.fail("Rule exception must have fields property with a list of fields", ex.ctx)
				}
				if len(ex.values) == 0 {
					return c.fail("Rule exception must have values property with a list of values", ex.ctx)
				}
				if err := c.validateException(prev.source, !prev.unknownSource, true, &ex); err != nil {
					return err
				}
				prev.exceptions = append(prev.exceptions, ex)
				continue
			}
			if ex.fields.given() {
				return c.fail("Can not append exception fields to existing exception, only values", ex.ctx)
			}
			if ex.comps.given() {
				return c.fail("Can not append exception comps to existing exception, only values", ex.ctx)
			}
			prev.exceptions[found].values = append(prev.exceptions[found].values, ex.values...)
		}
	}
	prev.visibility = c.next()
	return nil
}

func (c *collector) replaceRule(u *ruleUpdate) error {
	prev := c.rules.get(u.name)
	if prev == nil {
		return c.fail(errNoPrevRuleRepl, u.ctx)
	}
	if err := c.checkSource(prev, u); err != nil {
		return err
	}
	if u.cond != nil {
		// Falco keeps the original definition's condition location: errors in the new
		// condition are reported at the rule's first definition.
		prev.cond = *u.cond
	}
	if u.output != nil {
		prev.output = strings.TrimSpace(*u.output)
	}
	if u.desc != nil {
		prev.desc = *u.desc
	}
	if u.tags != nil {
		prev.tags = *u.tags
	}
	if u.exceptions != nil {
		for i := range *u.exceptions {
			ex := &(*u.exceptions)[i]
			if !ex.fields.given() {
				return c.fail("Rule exception must have fields property with a list of fields", ex.ctx)
			}
			// Falco does not validate replaced exceptions: their operators and fields are only
			// judged when the condition they build is compiled. Only the shape is checked here,
			// which the engine needs to build that condition.
			if err := c.validateException(prev.source, false, false, ex); err != nil {
				return err
			}
		}
		prev.exceptions = *u.exceptions
	}
	if u.priority != nil {
		prev.priority = *u.priority
	}
	if u.enabled != nil {
		prev.enabled = *u.enabled
	}
	if u.warnEvttypes != nil {
		prev.warnEvttypes = *u.warnEvttypes
	}
	if u.skipIfUnknown != nil {
		prev.skipIfUnknown = *u.skipIfUnknown
	}
	if u.capture != nil {
		prev.capture = *u.capture
	}
	if u.captureDuration != nil {
		prev.captureDuration = *u.captureDuration
	}
	prev.visibility = c.next()
	return nil
}

func (c *collector) enableRule(name string, enabled bool, cx ctx) error {
	prev := c.rules.get(name)
	if prev == nil {
		return c.fail("Rule has 'enabled' key but no rule by that name already exists", cx)
	}
	prev.enabled = enabled
	return nil
}

// listOperators are the comparison operators whose right-hand side is a list.
var listOperators = map[string]bool{"in": true, "intersects": true, "pmatch": true}

var comparisonOperators = map[string]bool{
	"=": true, "==": true, "!=": true, "<=": true, ">=": true, "<": true, ">": true,
	"contains": true, "icontains": true, "bcontains": true, "startswith": true, "bstartswith": true,
	"endswith": true, "glob": true, "iglob": true, "regex": true, "in": true, "intersects": true,
	"pmatch": true, "exists": true,
}

// splitModifier recognises Falco 0.44's "<string op> oneof|anyof|allof" exception comps.
func splitModifier(comp string) (op, mod string) {
	f := strings.Fields(comp)
	if len(f) == 2 && (f[1] == "oneof" || f[1] == "anyof" || f[1] == "allof") {
		return f[0], f[1]
	}
	return comp, ""
}

func isExceptionComp(comp string) bool {
	op, mod := splitModifier(comp)
	if mod != "" {
		return comparisonOperators[op] && !listOperators[op] && op != "exists"
	}
	return comparisonOperators[op]
}

// validateException applies comps defaults and checks shapes, operators and fields.
func (c *collector) validateException(source string, checkFields, checkOps bool, ex *exceptionInfo) error {
	if ex.fields.isList {
		if !ex.comps.given() {
			ex.comps = exceptionEntry{valid: true, isList: true}
			for range ex.fields.items {
				ex.comps.items = append(ex.comps.items, exceptionEntry{valid: true, item: "="})
			}
		}
		if !ex.comps.isList || len(ex.fields.items) != len(ex.comps.items) {
			return c.fail("Fields and comps lists must have equal length", ex.ctx)
		}
		for i := range ex.comps.items {
			ex.comps.items[i].item = strings.TrimSpace(ex.comps.items[i].item)
			if checkOps && !isExceptionComp(ex.comps.items[i].item) {
				return c.fail(fmt.Sprintf("'%s' is not a supported comparison operator", ex.comps.items[i].item), ex.ctx)
			}
		}
		if checkFields {
			for _, f := range ex.fields.items {
				if !c.lhsCheck(source, f.item) {
					return c.fail(fmt.Sprintf("'%s' is not a supported filter field", f.item), ex.ctx)
				}
			}
		}
		return nil
	}
	if !ex.comps.given() {
		ex.comps = exceptionEntry{valid: true, item: "in"}
	}
	if ex.comps.isList {
		return c.fail("Fields and comps must both be strings", ex.ctx)
	}
	op, mod := splitModifier(strings.TrimSpace(ex.comps.item))
	if checkOps && !(mod == "" && listOperators[op]) && !(mod != "" && isExceptionComp(ex.comps.item)) {
		return c.fail("When fields is a single value, comps must be one of (in, pmatch, intersects) or a modifier operator (e.g. startswith oneof)", ex.ctx)
	}
	if checkFields && !c.lhsCheck(source, ex.fields.item) {
		return c.fail(fmt.Sprintf("'%s' is not a supported filter field", ex.fields.item), ex.ctx)
	}
	return nil
}

// semver is a numeric major.minor.patch version.
type semver [3]uint64

func (v semver) String() string { return fmt.Sprintf("%d.%d.%d", v[0], v[1], v[2]) }

func (v semver) less(o semver) bool {
	for i := 0; i < 3; i++ {
		if v[i] != o[i] {
			return v[i] < o[i]
		}
	}
	return false
}

// compatibleWith reports whether v (what we have) satisfies requirement r: same major, not older.
func (v semver) compatibleWith(r semver) bool { return v[0] == r[0] && !v.less(r) }

// parseSinspVersion mirrors sinsp_version: sscanf("%u.%u.%u"), trailing text allowed.
func parseSinspVersion(s string) (semver, bool) {
	var v semver
	rest := s
	for i := 0; i < 3; i++ {
		j := 0
		for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
			j++
		}
		if j == 0 {
			return v, false
		}
		n, err := strconv.ParseUint(rest[:j], 10, 64)
		if err != nil {
			return v, false
		}
		v[i] = n
		rest = rest[j:]
		if i < 2 {
			if !strings.HasPrefix(rest, ".") {
				return v, false
			}
			rest = rest[1:]
		}
	}
	return v, true
}

// parseSemverStrict parses X.Y.Z with an optional -prerelease/+build suffix, as plugin version
// requirements must be semver.
func parseSemverStrict(s string) (semver, bool) {
	core := s
	if i := strings.IndexAny(core, "-+"); i >= 0 {
		core = core[:i]
	}
	parts := strings.Split(core, ".")
	if len(parts) != 3 {
		return semver{}, false
	}
	var v semver
	for i, p := range parts {
		if p == "" || (len(p) > 1 && p[0] == '0') {
			return semver{}, false
		}
		n, err := strconv.ParseUint(p, 10, 64)
		if err != nil {
			return semver{}, false
		}
		v[i] = n
	}
	return v, true
}
