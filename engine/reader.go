package engine

import (
	"errors"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// ctx is a diagnostic context chain, outermost first. It is copied on extension so that
// chains stored in items never alias.
type ctx []Location

func (c ctx) with(itemType, name string, p Position) ctx {
	n := make(ctx, len(c), len(c)+1)
	copy(n, c)
	return append(n, Location{ItemType: itemType, ItemName: name, Position: p})
}

// loadErr is a diagnostic raised as an error; reading a file stops at the first one, as Falco does.
type loadErr struct {
	code    Code
	msg     string
	ctx     ctx
	snippet string
}

func (e *loadErr) Error() string { return e.msg }

// The name patterns of Falco's reader (RGX_IDENTIFIER, RGX_BARESTR), fully matched.
const (
	rgxIdentifier = `([a-zA-Z]+[a-zA-Z0-9_]*)`
	rgxBareStr    = `([^()"'[:space:]=,]+)`
)

var (
	identifierRE = regexp.MustCompile(`^` + rgxIdentifier + `$`)
	bareStrRE    = regexp.MustCompile(`^` + rgxBareStr + `$`)
)

const (
	warningAppend       = "'append' key is deprecated. Add an 'append' entry (e.g. 'condition: append') under 'override' instead."
	warningEnabled      = "The standalone 'enabled' key usage is deprecated. The correct approach requires also a 'replace' entry under the 'override' key (i.e. 'enabled: replace')."
	errOverrideAppend   = "Keys 'override' and 'append: true' cannot be used together. Add an 'append' entry (e.g. 'condition: append') under 'override' instead."
	errNoPrevMacro      = "Macro uses 'append' or 'override.condition: append' but no macro by that name already exists"
	errNoPrevList       = "List uses 'append' or 'override.items: append' but no list by that name already exists"
	errNoPrevRuleAppend = "Rule uses 'append' or 'override.<key>: append' but no rule by that name already exists"
	errNoPrevRuleRepl   = "An 'override.<key>: replace' to a rule was requested but no rule by that name already exists"
	errInvalidMacroName = "Macro has an invalid name. Macro names should match a regular expression: "
	errInvalidListName  = "List has an invalid name. List names should match a regular expression: "
)

// Keys each item kind may carry; anything else draws LOAD_UNKNOWN_KEY (Falco 0.44).
var allowedKeys = map[string]map[string]bool{
	"required_engine_version":  {"required_engine_version": true},
	"required_plugin_versions": {"required_plugin_versions": true},
	"list":                     {"list": true, "items": true, "append": true, "override": true},
	"macro":                    {"macro": true, "condition": true, "append": true, "override": true},
	"rule": {"rule": true, "condition": true, "output": true, "desc": true, "priority": true, "source": true,
		"enabled": true, "capture": true, "capture_duration": true, "warn_evttypes": true,
		"skip-if-unknown-filter": true, "tags": true, "exceptions": true, "override": true, "append": true},
}

var (
	ruleAppendable  = []string{"condition", "output", "desc", "tags", "exceptions"}
	ruleReplaceable = []string{"condition", "output", "desc", "priority", "tags", "exceptions", "enabled",
		"warn_evttypes", "skip-if-unknown-filter", "capture", "capture_duration"}
)

// reader turns one rules file into collector operations, following Falco's rule_loader::reader.
type reader struct {
	f   *yamlFile
	col *collector
	res *FileResult
	// maxYAMLNodes bounds the file's nodes with aliases expanded.
	maxYAMLNodes int
	// unknownKeys reports the current item's unknown keys; Falco warns about them only once
	// the item has been read without error.
	unknownKeys func()
}

func (r *reader) fail(code Code, msg string, c ctx) error {
	return &loadErr{code: code, msg: msg, ctx: c}
}

func (r *reader) validate(msg string, c ctx) error { return r.fail(ErrYAMLValidate, msg, c) }

func (r *reader) warn(code Code, msg string, c ctx) {
	r.col.onWarn(code, msg, c)
}

// read parses every document first (like YAML::LoadAll, so a syntax error anywhere loads
// nothing) and then processes items in order, stopping at the first error.
func (r *reader) read() error {
	root := ctx{{ItemType: ItemRulesContent, Position: Position{Name: r.f.name}}}
	var docs []*yaml.Node
	dec := yaml.NewDecoder(strings.NewReader(string(r.f.content)))
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return r.fail(ErrYAMLParse, err.Error(), root.with(ItemRulesContent, "", yamlErrorPos(r.f.name, err)))
		}
		docs = append(docs, &doc)
	}
	// Aliases are pointers in the parsed tree but every reader of an item copies what they
	// stand for, so a few nested anchors can stand for billions of nodes: count them first.
	limit, nodes, memo := r.maxYAMLNodes, 0, map[*yaml.Node]int{}
	for _, doc := range docs {
		if nodes += yamlNodes(doc, limit, memo); nodes > limit {
			return r.fail(ErrYAMLParse, fmt.Sprintf("rules file expands to more than %d YAML nodes once its aliases are expanded: use fewer anchors and aliases", limit), root)
		}
	}
	for _, doc := range docs {
		n := doc
		if n.Kind == yaml.DocumentNode {
			if len(n.Content) == 0 {
				continue
			}
			n = n.Content[0]
		}
		n = deref(n)
		if isNull(n) {
			continue
		}
		if n.Kind != yaml.MappingNode && n.Kind != yaml.SequenceNode {
			return r.validate("Rules content is not yaml", root)
		}
		if n.Kind != yaml.SequenceNode {
			return r.validate("Rules content is not yaml array of objects", root)
		}
		for _, item := range n.Content {
			item = deref(item)
			if isNull(item) {
				continue
			}
			if err := r.readItem(item, root); err != nil {
				return err
			}
		}
	}
	return nil
}

var yamlLineRE = regexp.MustCompile(`line (\d+)`)

// yamlErrorPos extracts the line from yaml.v3's error text (it exposes no mark).
func yamlErrorPos(name string, err error) Position {
	p := Position{Name: name, Offset: -1}
	if m := yamlLineRE.FindStringSubmatch(err.Error()); m != nil {
		var line int
		fmt.Sscanf(m[1], "%d", &line)
		if line > 0 {
			p.Line = line - 1
		}
	}
	return p
}

func (r *reader) checkUnknownKeys(item *yaml.Node, kind string, c ctx) {
	allowed := allowedKeys[kind]
	for i := 0; i+1 < len(item.Content); i += 2 {
		k := deref(item.Content[i])
		if k.Kind != yaml.ScalarNode || allowed[k.Value] {
			continue
		}
		r.warn(WarnUnknownKey, fmt.Sprintf("Unknown key '%s'. The key will be ignored.", k.Value), c)
	}
}

// decodeString implements decode_val/decode_optional_val for strings. present reports whether the
// key exists.
func (r *reader) decodeString(item *yaml.Node, key string, c ctx, optional bool) (val string, present bool, err error) {
	n := lookup(item, key)
	if n == nil {
		if optional {
			return "", false, nil
		}
		return "", false, r.validate(fmt.Sprintf("Item has no mapping for key '%s'", key), c)
	}
	if isNull(n) {
		return "", true, r.validate(fmt.Sprintf("Mapping for key '%s' is empty", key), c)
	}
	vc := c.with(ItemValueFor, key, r.f.pos(n))
	if n.Kind != yaml.ScalarNode {
		return "", true, r.validate("Value is not a scalar value", vc)
	}
	if n.Value == "" {
		return "", true, r.validate("Value must be non-empty", vc)
	}
	return n.Value, true, nil
}

func (r *reader) decodeBoolKey(item *yaml.Node, key string, c ctx, optional bool) (val, present bool, err error) {
	s, present, err := r.decodeString(item, key, c, optional)
	if err != nil || !present {
		return false, present, err
	}
	b, ok := decodeBool(s)
	if !ok {
		return false, true, r.validate("Can't decode YAML scalar value", c.with(ItemValueFor, key, r.f.pos(lookup(item, key))))
	}
	return b, true, nil
}

// decodeSeq implements decode_seq: a present value must be a sequence of scalars.
func (r *reader) decodeSeq(item *yaml.Node, key string, c ctx, optional bool) (vals []string, present bool, err error) {
	n := lookup(item, key)
	if n == nil {
		if optional {
			return nil, false, nil
		}
		return nil, false, r.validate(fmt.Sprintf("Item has no mapping for key '%s'", key), c)
	}
	vc := c.with(ItemValueFor, key, r.f.pos(n))
	if n.Kind != yaml.SequenceNode {
		return nil, true, r.validate("Value is not a sequence", vc)
	}
	vals = make([]string, 0, len(n.Content))
	for _, v := range n.Content {
		v = deref(v)
		if v.Kind != yaml.ScalarNode || flowImplicitKey(n, v) {
			return nil, true, r.validate("sequence value is not scalar", vc.with(ItemListItem, "", r.f.pos(v)))
		}
		vals = append(vals, v.Value)
	}
	return vals, true, nil
}

// flowImplicitKey reports an item yaml.v3 reads as a plain scalar ending in ':' inside a flow
// sequence (`[a:, b]`), which yaml-cpp, and so Falco, reads as a one-pair mapping {a: null}: the
// item is then not a scalar. Found by the differential tests against Falco.
func flowImplicitKey(seq, v *yaml.Node) bool {
	return seq.Style&yaml.FlowStyle != 0 && v.Style == 0 && strings.HasSuffix(v.Value, ":")
}

// decodeOverrides reads `override: {key: append|replace}`.
func (r *reader) decodeOverrides(item *yaml.Node, appendable, replaceable []string, c ctx) (app, repl []string, err error) {
	n := lookup(item, "override")
	if n == nil {
		return nil, nil, nil
	}
	oc := c.with(ItemOverrides, "", r.f.pos(item))
	if n.Kind != yaml.MappingNode {
		if isNull(n) {
			return nil, nil, nil
		}
		return nil, nil, r.validate("Value of override must be a map", oc)
	}
	contains := func(set []string, k string) bool {
		for _, s := range set {
			if s == k {
				return true
			}
		}
		return false
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := deref(n.Content[i]), deref(n.Content[i+1])
		key, op := k.Value, v.Value
		if v.Kind != yaml.ScalarNode {
			op = ""
		}
		canApp, canRepl := contains(appendable, key), contains(replaceable, key)
		switch op {
		case "append":
			if !canApp {
				return nil, nil, r.validate(fmt.Sprintf("Key '%s' cannot be appended to, use 'replace' instead", key), oc.with(ItemOverrides, key, r.f.pos(k)))
			}
			app = append(app, key)
		case "replace":
			if !canRepl {
				return nil, nil, r.validate(fmt.Sprintf("Key '%s' cannot be replaced", key), oc.with(ItemOverrides, key, r.f.pos(k)))
			}
			repl = append(repl, key)
		default:
			msg := fmt.Sprintf("Invalid override operation for key '%s': '%s'. Allowed values are: ", key, op)
			if canApp {
				msg += "append "
			}
			if canRepl {
				msg += "replace "
			}
			return nil, nil, r.validate(msg, oc.with(ItemValueFor, key, r.f.pos(v)))
		}
	}
	return app, repl, nil
}

func (r *reader) readItem(item *yaml.Node, parent ctx) error {
	if item.Kind != yaml.MappingNode {
		return r.validate("Unexpected element type. Each element should be a yaml associative array.",
			parent.with(ItemRulesContentItem, "", r.f.pos(item)))
	}
	switch {
	case lookup(item, "required_engine_version") != nil:
		return r.readEngineVersion(item, parent)
	case lookup(item, "required_plugin_versions") != nil:
		return r.readPluginVersions(item, parent)
	case lookup(item, "list") != nil:
		return r.withUnknownKeys(r.readList(item, parent))
	case lookup(item, "macro") != nil:
		return r.withUnknownKeys(r.readMacro(item, parent))
	case lookup(item, "rule") != nil:
		return r.withUnknownKeys(r.readRule(item, parent))
	default:
		r.warn(WarnUnknownItem, "Unknown top level item", parent.with(ItemRulesContentItem, "", r.f.pos(item)))
		return nil
	}
}

func (r *reader) readEngineVersion(item *yaml.Node, parent ctx) error {
	c := parent.with(ItemEngineVersion, "", r.f.pos(item))
	r.checkUnknownKeys(item, "required_engine_version", c)
	s, _, err := r.decodeString(item, "required_engine_version", c, false)
	if err != nil {
		return err
	}
	var v semver
	if n, ok := decodeUint32(s); ok {
		v = semver{0, uint64(n), 0}
	} else if v, ok = parseSinspVersion(s); !ok {
		return r.validate(fmt.Sprintf("Unable to parse engine version '%s' as a semver string. Expected \"x.y.z\" semver format.", s), c)
	}
	return r.col.requireEngine(v, c)
}

func (r *reader) readPluginVersions(item *yaml.Node, parent ctx) error {
	n := lookup(item, "required_plugin_versions")
	c := parent.with(ItemPluginVersions, "", r.f.pos(n))
	r.checkUnknownKeys(item, "required_plugin_versions", c)
	if n.Kind != yaml.SequenceNode {
		return r.validate("Value of required_plugin_versions must be a sequence", c)
	}
	for _, p := range n.Content {
		p = deref(p)
		tmp := c.with(ItemPluginVersionsEntry, "", r.f.pos(p))
		if p.Kind != yaml.MappingNode {
			return r.validate("Plugin version must be a mapping", tmp)
		}
		name, _, err := r.decodeString(p, "name", tmp, false)
		if err != nil {
			return err
		}
		pc := c.with(ItemPluginVersionsEntry, name, r.f.pos(p))
		ver, _, err := r.decodeString(p, "version", pc, false)
		if err != nil {
			return err
		}
		group := []pluginRequirement{{Name: name, Version: ver}}
		if alts := lookup(p, "alternatives"); alts != nil {
			if alts.Kind != yaml.SequenceNode {
				return r.validate("Value of plugin version alternatives must be a sequence", pc)
			}
			for _, a := range alts.Content {
				a = deref(a)
				tmp := pc.with(ItemPluginVersionsAlt, "", r.f.pos(a))
				if a.Kind != yaml.MappingNode {
					return r.validate("Plugin version alternative must be a mapping", tmp)
				}
				an, _, err := r.decodeString(a, "name", tmp, false)
				if err != nil {
					return err
				}
				ac := pc.with(ItemPluginVersionsAlt, an, r.f.pos(a))
				av, _, err := r.decodeString(a, "version", ac, false)
				if err != nil {
					return err
				}
				group = append(group, pluginRequirement{Name: an, Version: av})
			}
		}
		if err := r.col.requirePlugins(group, pc); err != nil {
			return err
		}
	}
	return nil
}

// readItemName decodes an item's name key and returns it with the item's context.
func (r *reader) readItemName(item *yaml.Node, parent ctx, kind string) (string, ctx, error) {
	name, _, err := r.decodeString(item, kind, parent.with(kind, "", r.f.pos(item)), false)
	if err != nil {
		return "", nil, err
	}
	c := parent.with(kind, name, r.f.pos(item))
	r.unknownKeys = func() { r.checkUnknownKeys(item, kind, c) }
	return name, c, nil
}

// withUnknownKeys warns about the unknown keys of the item just read, unless reading it failed.
func (r *reader) withUnknownKeys(err error) error {
	if err == nil && r.unknownKeys != nil {
		r.unknownKeys()
	}
	r.unknownKeys = nil
	return err
}

// readSingleKeyAppend handles the append modes of lists and macros, which have one overridable
// key: the deprecated `append: true` or `override: {key: append|replace}`. It reports whether
// the item appends (a replace is a plain redefinition).
func (r *reader) readSingleKeyAppend(item *yaml.Node, key string, c ctx) (bool, error) {
	appendFlag, _, err := r.decodeBoolKey(item, "append", c, true)
	if err != nil {
		return false, err
	}
	if appendFlag {
		r.warn(WarnDeprecatedItem, warningAppend, c)
	}
	app, repl, err := r.decodeOverrides(item, []string{key}, []string{key}, c)
	if err != nil {
		return false, err
	}
	if appendFlag && (len(app) > 0 || len(repl) > 0) {
		return false, r.validate(errOverrideAppend, c)
	}
	return appendFlag || len(app) > 0, nil
}

func (r *reader) readList(item *yaml.Node, parent ctx) error {
	name, c, err := r.readItemName(item, parent, ItemList)
	if err != nil {
		return err
	}
	if !bareStrRE.MatchString(name) {
		r.warn(WarnInvalidListName, errInvalidListName+rgxBareStr, c)
	}
	items, _, err := r.decodeSeq(item, "items", c, false)
	if err != nil {
		return err
	}
	appendMode, err := r.readSingleKeyAppend(item, "items", c)
	if err != nil {
		return err
	}
	l := &listInfo{ctx: c, file: r.f, name: name, items: items}
	if appendMode {
		return r.col.appendList(l)
	}
	r.col.defineList(l)
	return nil
}

func (r *reader) readMacro(item *yaml.Node, parent ctx) error {
	name, c, err := r.readItemName(item, parent, ItemMacro)
	if err != nil {
		return err
	}
	if !identifierRE.MatchString(name) {
		r.warn(WarnInvalidMacroName, errInvalidMacroName+rgxIdentifier, c)
	}
	cond, _, err := r.decodeString(item, "condition", c, false)
	if err != nil {
		return err
	}
	appendMode, err := r.readSingleKeyAppend(item, "condition", c)
	if err != nil {
		return err
	}
	m := &macroInfo{ctx: c, condCtx: c.with(ItemMacroCondition, "", r.f.pos(lookup(item, "condition"))), file: r.f, name: name, cond: cond}
	if appendMode {
		return r.col.appendMacro(m)
	}
	r.col.defineMacro(m)
	return nil
}

func (r *reader) readRule(item *yaml.Node, parent ctx) error {
	name, c, err := r.readItemName(item, parent, ItemRule)
	if err != nil {
		return err
	}
	appendFlag, _, err := r.decodeBoolKey(item, "append", c, true)
	if err != nil {
		return err
	}
	if appendFlag {
		r.warn(WarnDeprecatedItem, warningAppend, c)
	}
	app, repl, err := r.decodeOverrides(item, ruleAppendable, ruleReplaceable, c)
	if err != nil {
		return err
	}
	if appendFlag && (len(app) > 0 || len(repl) > 0) {
		return r.validate(errOverrideAppend, c)
	}
	// Append/override items may carry a source, possibly empty or null, to assert which rule
	// they target; full definitions default to syscall.
	optSource := func() (string, error) {
		n := lookup(item, "source")
		if n == nil || isNull(n) {
			return "", nil
		}
		if n.Kind != yaml.ScalarNode {
			return "", r.validate("Value is not a scalar value", c.with(ItemValueFor, "source", r.f.pos(n)))
		}
		return n.Value, nil
	}

	switch {
	case len(app) > 0 || len(repl) > 0:
		return r.readRuleOverride(item, name, c, app, repl, optSource)
	case appendFlag:
		u := &ruleUpdate{ctx: c, file: r.f, name: name}
		if n := lookup(item, "condition"); n != nil {
			s, _, err := r.decodeString(item, "condition", c, false)
			if err != nil {
				return err
			}
			u.cond = &s
			u.condCtx = c.with(ItemRuleCondition, "", r.f.pos(n))
		}
		if lookup(item, "exceptions") != nil {
			exs, err := r.readExceptions(item, c, true, true)
			if err != nil {
				return err
			}
			u.exceptions = &exs
		}
		if u.cond == nil && u.exceptions == nil {
			return r.fail(ErrValidate, "Appended rule must have exceptions or condition property", c)
		}
		if u.source, err = optSource(); err != nil {
			return err
		}
		return r.col.appendRule(u)
	}

	hasAny := false
	for _, k := range []string{"condition", "output", "desc", "priority"} {
		if lookup(item, k) != nil {
			hasAny = true
		}
	}
	if !hasAny {
		enabled, _, err := r.decodeBoolKey(item, "enabled", c, false)
		if err != nil {
			return err
		}
		r.warn(WarnDeprecatedItem, warningEnabled, c)
		return r.col.enableRule(name, enabled, c)
	}

	ri := &ruleInfo{ctx: c, file: r.f, name: name, enabled: true, warnEvttypes: true, source: SourceSyscall}
	if ri.cond, _, err = r.decodeString(item, "condition", c, false); err != nil {
		return err
	}
	ri.condCtx = c.with(ItemRuleCondition, "", r.f.pos(lookup(item, "condition")))
	if ri.output, _, err = r.decodeString(item, "output", c, false); err != nil {
		return err
	}
	ri.outputCtx = c.with(ItemRuleOutput, "", r.f.pos(lookup(item, "output")))
	if ri.desc, _, err = r.decodeString(item, "desc", c, false); err != nil {
		return err
	}
	prio, _, err := r.decodeString(item, "priority", c, false)
	if err != nil {
		return err
	}
	ri.output = strings.TrimSpace(ri.output)
	if ri.priority, err = ParsePriority(prio); err != nil {
		return r.validate("Invalid priority", c.with(ItemRulePriority, "", r.f.pos(lookup(item, "priority"))))
	}
	if s, present, err := r.decodeString(item, "source", c, true); err != nil {
		return err
	} else if present {
		ri.source = s
	}
	for _, b := range []struct {
		key string
		dst *bool
	}{{"enabled", &ri.enabled}, {"warn_evttypes", &ri.warnEvttypes}, {"skip-if-unknown-filter", &ri.skipIfUnknown}, {"capture", &ri.capture}} {
		v, present, err := r.decodeBoolKey(item, b.key, c, true)
		if err != nil {
			return err
		}
		if present {
			*b.dst = v
		}
	}
	if err := r.decodeCaptureDuration(item, c, &ri.captureDuration); err != nil {
		return err
	}
	tags, _, err := r.decodeSeq(item, "tags", c, true)
	if err != nil {
		return err
	}
	ri.tags = tagSet(tags)
	if ri.exceptions, err = r.readExceptions(item, c, false, false); err != nil {
		return err
	}
	return r.col.defineRule(ri)
}

func (r *reader) decodeCaptureDuration(item *yaml.Node, c ctx, dst *uint32) error {
	s, present, err := r.decodeString(item, "capture_duration", c, true)
	if err != nil || !present {
		return err
	}
	v, ok := decodeUint32(s)
	if !ok {
		return r.validate("Can't decode YAML scalar value", c.with(ItemValueFor, "capture_duration", r.f.pos(lookup(item, "capture_duration"))))
	}
	*dst = v
	return nil
}

func (r *reader) readRuleOverride(item *yaml.Node, name string, c ctx, app, repl []string, optSource func() (string, error)) error {
	expected := map[string]bool{}
	for _, k := range append(append([]string{}, ruleAppendable...), ruleReplaceable...) {
		if lookup(item, k) != nil {
			expected[k] = true
		}
	}
	source, err := optSource()
	if err != nil {
		return err
	}
	build := func(keys []string, kind string) (*ruleUpdate, error) {
		u := &ruleUpdate{ctx: c, file: r.f, name: name, source: source}
		has := func(k string) (bool, error) {
			for _, x := range keys {
				if x == k {
					if !expected[k] {
						return false, r.validate(fmt.Sprintf("An %s override for '%s' was specified but '%s' is not defined", kind, k, k), c)
					}
					delete(expected, k)
					return true, nil
				}
			}
			return false, nil
		}
		// Falco checks keys in this fixed order, which decides which error is reported first.
		for _, k := range []string{"condition", "exceptions", "output", "desc", "tags", "priority", "enabled", "warn_evttypes", "skip-if-unknown-filter", "capture", "capture_duration"} {
			ok, err := has(k)
			if err != nil {
				return nil, err
			}
			if !ok {
				continue
			}
			u.keys = append(u.keys, k)
			switch k {
			case "condition", "output", "desc":
				s, _, err := r.decodeString(item, k, c, false)
				if err != nil {
					return nil, err
				}
				switch k {
				case "condition":
					u.cond = &s
					u.condCtx = c.with(ItemRuleCondition, "", r.f.pos(lookup(item, k)))
				case "output":
					u.output = &s
				default:
					u.desc = &s
				}
			case "exceptions":
				// Falco warns about exceptions without values only when they are appended.
				exs, err := r.readExceptions(item, c, true, kind == "append")
				if err != nil {
					return nil, err
				}
				u.exceptions = &exs
			case "tags":
				tags, _, err := r.decodeSeq(item, "tags", c, false)
				if err != nil {
					return nil, err
				}
				ts := tagSet(tags)
				u.tags = &ts
			case "priority":
				s, _, err := r.decodeString(item, k, c, false)
				if err != nil {
					return nil, err
				}
				p, err := ParsePriority(s)
				if err != nil {
					return nil, r.validate("Invalid priority", c.with(ItemRulePriority, "", r.f.pos(lookup(item, k))))
				}
				u.priority = &p
			case "capture_duration":
				var d uint32
				if err := r.decodeCaptureDuration(item, c, &d); err != nil {
					return nil, err
				}
				u.captureDuration = &d
			default:
				v, _, err := r.decodeBoolKey(item, k, c, false)
				if err != nil {
					return nil, err
				}
				switch k {
				case "enabled":
					u.enabled = &v
				case "warn_evttypes":
					u.warnEvttypes = &v
				case "skip-if-unknown-filter":
					u.skipIfUnknown = &v
				case "capture":
					u.capture = &v
				}
			}
		}
		return u, nil
	}
	var appU, replU *ruleUpdate
	// Falco applies the append part before it reads the replace part, and both before it
	// looks for keys no override names: that decides which error a broken item reports.
	if len(app) > 0 {
		if appU, err = build(app, "append"); err != nil {
			return err
		}
		if err := r.col.appendRule(appU); err != nil {
			return err
		}
	}
	if len(repl) > 0 {
		if replU, err = build(repl, "replace"); err != nil {
			return err
		}
		if err := r.col.replaceRule(replU); err != nil {
			return err
		}
	}
	if len(expected) > 0 {
		keys := make([]string, 0, len(expected))
		for k := range expected {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		k := keys[0]
		return r.validate(fmt.Sprintf("Unexpected key '%s': no corresponding entry under 'override' is defined.", k),
			c.with(ItemOverrides, k, r.f.pos(lookup(item, k))))
	}
	return nil
}

// readExceptions reads a rule's `exceptions:`; in append mode `fields` is optional.
func (r *reader) readExceptions(item *yaml.Node, parent ctx, appendMode, warnNoValues bool) ([]exceptionInfo, error) {
	exs := lookup(item, "exceptions")
	if exs == nil || isNull(exs) {
		return nil, nil
	}
	ec := parent.with(ItemExceptions, "", r.f.pos(exs))
	if exs.Kind != yaml.SequenceNode {
		return nil, r.validate("Rule exceptions must be a sequence", ec)
	}
	var out []exceptionInfo
	for _, ex := range exs.Content {
		ex = deref(ex)
		tmp := ec.with(ItemException, "", r.f.pos(ex))
		if ex.Kind != yaml.MappingNode {
			return nil, r.validate("Rule exception must be a mapping", tmp)
		}
		name, _, err := r.decodeString(ex, "name", tmp, false)
		if err != nil {
			return nil, err
		}
		xc := parent.with(ItemException, name, r.f.pos(ex))
		for _, prev := range out {
			if prev.name == name {
				r.warn(WarnExceptionNameNotUnique, "Multiple definitions of exception '"+name+"' in the same rule", xc)
				break
			}
		}
		e := exceptionInfo{ctx: xc, name: name}
		if e.fields, err = r.decodeExceptionEntry(ex, "fields", xc, appendMode); err != nil {
			return nil, err
		}
		if e.comps, err = r.decodeExceptionEntry(ex, "comps", xc, true); err != nil {
			return nil, err
		}
		if vals := lookup(ex, "values"); vals != nil {
			vc := xc.with(ItemExceptionValues, "", r.f.pos(vals))
			if vals.Kind != yaml.SequenceNode {
				return nil, r.validate("Rule exception values must be a sequence", vc)
			}
			for _, v := range vals.Content {
				v = deref(v)
				entry, err := r.decodeExceptionValue(v, "", vc.with(ItemExceptionValue, "", r.f.pos(v)))
				if err != nil {
					return nil, err
				}
				e.values = append(e.values, entry)
			}
		} else if warnNoValues {
			r.warn(WarnAppendNoValues, "Overriding/appending exception with no values", xc)
		}
		out = append(out, e)
	}
	return out, nil
}

func (r *reader) decodeExceptionEntry(ex *yaml.Node, key string, c ctx, optional bool) (exceptionEntry, error) {
	n := lookup(ex, key)
	if n == nil {
		if optional {
			return exceptionEntry{}, nil
		}
		return exceptionEntry{}, r.validate(fmt.Sprintf("Item has no mapping for key '%s'", key), c)
	}
	return r.decodeExceptionValue(n, key, c)
}

// decodeExceptionValue reads a scalar or an arbitrarily nested sequence of scalars. As Falco's
// decoder, every level adds a "value for" location (named key at the top, unnamed below) and
// every sequence element an "exception" location before it.
func (r *reader) decodeExceptionValue(n *yaml.Node, key string, c ctx) (exceptionEntry, error) {
	c = c.with(ItemValueFor, key, r.f.pos(n))
	if isNull(n) {
		// yaml-cpp's null node is neither scalar nor sequence, so Falco leaves the entry unset.
		return exceptionEntry{}, nil
	}
	switch n.Kind {
	case yaml.ScalarNode:
		if n.Value == "" {
			return exceptionEntry{}, r.validate("Value must be non-empty", c)
		}
		return exceptionEntry{valid: true, item: n.Value}, nil
	case yaml.SequenceNode:
		e := exceptionEntry{valid: true, isList: true}
		for _, v := range n.Content {
			v = deref(v)
			sub, err := r.decodeExceptionValue(v, "", c.with(ItemException, "", r.f.pos(v)))
			if err != nil {
				return exceptionEntry{}, err
			}
			e.items = append(e.items, sub)
		}
		return e, nil
	default:
		return exceptionEntry{}, r.validate("Value is not a scalar value nor a sequence", c)
	}
}

// tagSet stores tags as Falco does: a sorted set.
func tagSet(tags []string) []string {
	if len(tags) == 0 {
		return []string{}
	}
	sort.Strings(tags)
	out := tags[:1]
	for _, t := range tags[1:] {
		if t != out[len(out)-1] {
			out = append(out, t)
		}
	}
	return out
}
