package engine

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/falco-k8s/falco-k8s/engine/condition"
	"github.com/falco-k8s/falco-k8s/engine/k8saudit"
	"github.com/falco-k8s/falco-k8s/engine/match"
)

// evalNode is one node of a compiled condition. Evaluation never re-parses and, in steady state,
// never allocates: field values come from the evaluator's per-event cache.
type evalNode interface {
	eval(e *Evaluator) bool
}

type andNode []evalNode

func (n andNode) eval(e *Evaluator) bool {
	for _, c := range n {
		if !c.eval(e) {
			return false
		}
	}
	return true
}

type orNode []evalNode

func (n orNode) eval(e *Evaluator) bool {
	for _, c := range n {
		if c.eval(e) {
			return true
		}
	}
	return false
}

// transformedList: the check compares a transformed list field (tolower(ka.user.groups)) with
// in or intersects.
func transformedList(n *condition.CheckExpr, s fieldSlot) bool {
	_, tr := n.Left.(*condition.TransformerExpr)
	return tr && s.list && (opKinds[n.Op] == opIn || opKinds[n.Op] == opIntersects)
}

// baseField is a field expression's field name, without its argument.
func baseField(key string) string {
	if i := strings.IndexByte(key, '['); i >= 0 {
		return key[:i]
	}
	return key
}

type notNode struct{ child evalNode }

func (n notNode) eval(e *Evaluator) bool { return !n.child.eval(e) }

// fieldSlot is one distinct field or transformer expression of a ruleset; its value is extracted
// at most once per event and shared by every check and output that uses it.
type fieldSlot struct {
	key     string
	typ     k8saudit.Type
	list    bool
	extract k8saudit.Extractor
	// outKey and outSlot name the untransformed field shown in JSON output_fields.
	outKey  string
	outSlot int
}

type opKind uint8

const (
	opEq opKind = iota
	opNe
	opLt
	opLe
	opGt
	opGe
	opContains
	opIContains
	opStartsWith
	opEndsWith
	opGlob
	opRegex
	opIn
	opIntersects
	opPmatch
	opExists
)

var opKinds = map[string]opKind{
	"=": opEq, "==": opEq, "!=": opNe, "<": opLt, "<=": opLe, ">": opGt, ">=": opGe,
	"contains": opContains, "icontains": opIContains, "startswith": opStartsWith, "endswith": opEndsWith,
	"glob": opGlob, "iglob": opGlob, "regex": opRegex, "in": opIn, "intersects": opIntersects,
	"pmatch": opPmatch, "exists": opExists,
}

// byteSet is the right-hand side of in/intersects: a linear scan while small, a map when large.
type byteSet struct {
	items [][]byte
	m     map[string]struct{}
}

func newByteSet(items []string) *byteSet {
	s := &byteSet{}
	for _, it := range items {
		s.items = append(s.items, []byte(it))
	}
	if len(items) > 8 {
		s.m = make(map[string]struct{}, len(items))
		for _, it := range items {
			s.m[it] = struct{}{}
		}
	}
	return s
}

func (s *byteSet) has(b []byte) bool {
	if s.m != nil {
		_, ok := s.m[string(b)]
		return ok
	}
	for _, it := range s.items {
		if bytes.Equal(it, b) {
			return true
		}
	}
	return false
}

// stringMatcher is a compiled single-value string comparison.
type stringMatcher struct {
	op   opKind
	val  []byte
	glob *match.Glob
	re   *match.Regex
}

func (m *stringMatcher) match(v []byte) bool {
	switch m.op {
	case opEq:
		return bytes.Equal(v, m.val)
	case opNe:
		return !bytes.Equal(v, m.val)
	case opLt:
		return bytes.Compare(v, m.val) < 0
	case opLe:
		return bytes.Compare(v, m.val) <= 0
	case opGt:
		return bytes.Compare(v, m.val) > 0
	case opGe:
		return bytes.Compare(v, m.val) >= 0
	case opContains:
		return bytes.Contains(v, m.val)
	case opIContains:
		return match.IContains(v, m.val)
	case opStartsWith:
		return bytes.HasPrefix(v, m.val)
	case opEndsWith:
		return bytes.HasSuffix(v, m.val)
	case opGlob:
		return m.glob.Match(v)
	case opRegex:
		return m.re.Match(v)
	}
	return false
}

// checkNode is a compiled comparison: `<lhs> <op> <rhs>`.
type checkNode struct {
	slot    int
	list    bool
	typ     k8saudit.Type
	op      opKind
	str     stringMatcher // single-value string comparisons
	num     uint64        // numeric right-hand side
	set     *byteSet      // in / intersects on strings and bools
	numSet  []uint64      // in / intersects on numbers
	pmatch  *match.PathPrefixSet
	mod     string          // oneof / anyof / allof
	modList []stringMatcher // one matcher per right-hand list element
	rhsSlot int             // >= 0 when the right-hand side is a field (val() or transformer)
	// never: a transformed list field compared with in/intersects to values, which never
	// matches in libsinsp 0.25 (observed with Falco 0.44.1; the values still render).
	never bool
}

func (n *checkNode) eval(e *Evaluator) bool {
	vals, ok := e.values(n.slot)
	if !ok {
		return false
	}
	if n.op == opExists {
		return true
	}
	if n.never {
		return false
	}
	if n.rhsSlot >= 0 {
		return n.evalField(e, vals)
	}
	if n.mod != "" {
		return n.evalModifier(vals[0])
	}
	switch n.op {
	case opIn, opIntersects:
		if n.numSet != nil || n.typ == k8saudit.TypeUint64 || n.typ == k8saudit.TypeAbsTime {
			return n.evalNumSet(vals)
		}
		if n.list && n.op == opIn {
			for _, v := range vals {
				if !n.set.has(v) {
					return false
				}
			}
			return true
		}
		for _, v := range vals {
			if n.set.has(v) {
				return true
			}
		}
		return false
	case opPmatch:
		return n.pmatch.Match(vals[0])
	}
	if n.typ == k8saudit.TypeUint64 || n.typ == k8saudit.TypeAbsTime {
		v, ok := parseUint(vals[0])
		if !ok {
			return false
		}
		return compareNum(n.op, v, n.num)
	}
	return n.str.match(vals[0])
}

func (n *checkNode) evalNumSet(vals [][]byte) bool {
	return n.setMatch(vals, func(b []byte) bool {
		v, ok := parseUint(b)
		if !ok {
			return false
		}
		for _, x := range n.numSet {
			if x == v {
				return true
			}
		}
		return false
	})
}

// setMatch applies in/intersects semantics with an arbitrary membership test: a list field
// matches `in` when every element is a member (subset) and `intersects` when any is.
func (n *checkNode) setMatch(vals [][]byte, member func([]byte) bool) bool {
	if n.list && n.op == opIn {
		for _, v := range vals {
			if !member(v) {
				return false
			}
		}
		return true
	}
	for _, v := range vals {
		if member(v) {
			return true
		}
	}
	return false
}

func (n *checkNode) evalModifier(v []byte) bool {
	hits := 0
	for i := range n.modList {
		if n.modList[i].match(v) {
			hits++
			if n.mod == "anyof" {
				return true
			}
		} else if n.mod == "allof" {
			return false
		}
	}
	switch n.mod {
	case "oneof":
		return hits == 1
	case "allof":
		return len(n.modList) > 0
	}
	return false
}

// evalField compares against another field's values (val() or a transformer on the right).
func (n *checkNode) evalField(e *Evaluator, vals [][]byte) bool {
	rhs, ok := e.values(n.rhsSlot)
	if !ok {
		return false
	}
	if n.op == opIn || n.op == opIntersects {
		return n.setMatch(vals, func(v []byte) bool {
			for _, r := range rhs {
				if bytes.Equal(v, r) {
					return true
				}
			}
			return false
		})
	}
	if n.typ == k8saudit.TypeUint64 || n.typ == k8saudit.TypeAbsTime {
		a, ok1 := parseUint(vals[0])
		b, ok2 := parseUint(rhs[0])
		return ok1 && ok2 && compareNum(n.op, a, b)
	}
	m := stringMatcher{op: n.op, val: rhs[0]}
	return m.match(vals[0])
}

func compareNum(op opKind, a, b uint64) bool {
	switch op {
	case opEq:
		return a == b
	case opNe:
		return a != b
	case opLt:
		return a < b
	case opLe:
		return a <= b
	case opGt:
		return a > b
	case opGe:
		return a >= b
	}
	return false
}

func parseUint(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 20 {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		nv := v*10 + uint64(c-'0')
		if nv < v {
			return 0, false
		}
		v = nv
	}
	return v, true
}

// parseNumber accepts the literal forms libsinsp accepts for numeric fields: decimal (optionally
// signed, fractional part truncated) and 0x hex.
func parseNumber(s string) (uint64, error) {
	// libsinsp reads numeric operands with strtoull and insists on the whole text: leading
	// blanks and one sign are allowed, a minus wraps ("-1" is 2^64-1), too many digits clamp to
	// 2^64-1, and anything else (hex, fractions, exponents, trailing text) is refused.
	t := strings.TrimLeft(s, " \t\n\v\f\r")
	neg := false
	if t != "" && (t[0] == '+' || t[0] == '-') {
		neg = t[0] == '-'
		t = t[1:]
	}
	if t == "" || strings.TrimLeft(t, "0123456789") != "" {
		return 0, fmt.Errorf("%s is not a valid number", s)
	}
	v, err := strconv.ParseUint(t, 10, 64)
	if err != nil {
		return math.MaxUint64, nil // out of range: strtoull's ULLONG_MAX, not negated
	}
	if neg {
		v = -v
	}
	return v, nil
}

// exprCompiler compiles one rule's AST against the k8s_audit field table, registering field
// slots in the ruleset being built.
type exprCompiler struct {
	rs       *Ruleset
	warnings []exprWarning
}

type exprWarning struct {
	code Code
	msg  string
	pos  condition.Pos
}

type compileError struct {
	msg          string
	pos          condition.Pos
	unknownField bool
}

func (e *compileError) Error() string { return e.msg }

func (c *exprCompiler) errorf(pos condition.Pos, format string, args ...any) *compileError {
	return &compileError{msg: fmt.Sprintf(format, args...), pos: pos}
}

func (c *exprCompiler) compile(e condition.Expr) (evalNode, error) {
	switch n := e.(type) {
	case *condition.AndExpr:
		out := make(andNode, 0, len(n.Children))
		for _, ch := range n.Children {
			x, err := c.compile(ch)
			if err != nil {
				return nil, err
			}
			out = append(out, x)
		}
		return out, nil
	case *condition.OrExpr:
		out := make(orNode, 0, len(n.Children))
		for _, ch := range n.Children {
			x, err := c.compile(ch)
			if err != nil {
				return nil, err
			}
			out = append(out, x)
		}
		return out, nil
	case *condition.NotExpr:
		x, err := c.compile(n.Child)
		if err != nil {
			return nil, err
		}
		return notNode{x}, nil
	case *condition.CheckExpr:
		return c.compileCheck(n)
	case *condition.IdentifierExpr:
		return nil, c.errorf(n.Pos, "Undefined macro '%s' used in filter.", n.Name)
	}
	return nil, c.errorf(e.Position(), "unsupported expression %T", e)
}

var typeNames = map[k8saudit.Type]string{
	k8saudit.TypeString: "string", k8saudit.TypeUint64: "uint64", k8saudit.TypeBool: "bool", k8saudit.TypeAbsTime: "abstime",
}

// sinspType names a slot's type as libsinsp's ptype names do in its messages.
func sinspType(s fieldSlot) string {
	t := map[k8saudit.Type]string{k8saudit.TypeString: "CHARBUF", k8saudit.TypeUint64: "UINT64", k8saudit.TypeBool: "BOOL", k8saudit.TypeAbsTime: "ABSTIME"}[s.typ]
	if s.list {
		t += " (list)"
	}
	return t
}

// opsByType lists the operators each field type supports, as libsinsp's flt_is_comparable.
var opsByType = map[k8saudit.Type]map[string]bool{
	k8saudit.TypeString: {"=": true, "==": true, "!=": true, "<": true, "<=": true, ">": true, ">=": true,
		"contains": true, "icontains": true, "startswith": true, "endswith": true, "glob": true, "iglob": true,
		"pmatch": true, "in": true, "intersects": true, "exists": true, "regex": true},
	k8saudit.TypeUint64:  {"=": true, "==": true, "!=": true, "<": true, "<=": true, ">": true, ">=": true, "in": true, "intersects": true, "exists": true},
	k8saudit.TypeAbsTime: {"=": true, "==": true, "!=": true, "<": true, "<=": true, ">": true, ">=": true, "in": true, "intersects": true, "exists": true},
	k8saudit.TypeBool:    {"=": true, "==": true, "!=": true, "in": true, "intersects": true, "exists": true},
}

var unsafeNAOps = map[string]bool{"=": true, "==": true, "!=": true, "in": true, "intersects": true, "pmatch": true}

func (c *exprCompiler) compileCheck(n *condition.CheckExpr) (evalNode, error) {
	slot, err := c.operandSlot(n.Left)
	if err != nil {
		return nil, err
	}
	s := c.rs.slots[slot]
	node := &checkNode{slot: slot, list: s.list, typ: s.typ, rhsSlot: -1}
	op, ok := opKinds[n.Op]
	// libsinsp checks list fields first, then the operator against the field type.
	// libsinsp names "==" by its canonical spelling "=" in these messages.
	opName := n.Op
	if opName == "==" {
		opName = "="
	}
	if s.list && !(ok && (op == opIn || op == opIntersects || op == opExists)) {
		return nil, c.errorf(n.Pos, "filter error: '%s' operator not supported list filters", opName)
	}
	if !ok {
		return nil, c.errorf(n.Pos, "filter error: '%s' operator not supported for %s filters", opName, typeNames[s.typ])
	}
	node.op = op
	if !opsByType[s.typ][n.Op] {
		return nil, c.errorf(n.Pos, "filter error: '%s' operator not supported for %s filters", opName, typeNames[s.typ])
	}
	if op == opExists {
		return node, nil
	}
	c.checkNA(n, s)
	if n.Modifier != "" {
		return c.compileModifier(n, node)
	}
	switch rhs := n.Right.(type) {
	case *condition.FieldExpr, *condition.TransformerExpr:
		if op == opPmatch || op == opRegex || op == opGlob {
			return nil, c.errorf(n.Pos, "'%s' operator does not support field comparison", n.Op)
		}
		rslot, err := c.operandSlot(rhs)
		if err != nil {
			return nil, err
		}
		r := c.rs.slots[rslot]
		if r.typ != s.typ || r.list != s.list {
			if !(r.list && (op == opIn || op == opIntersects) && r.typ == s.typ) {
				// libsinsp's words, with its ptype names.
				// libsinsp names the fields themselves: no argument, no transformer.
				return nil, c.errorf(n.Pos, "field '%s' has type '%s' while the right-hand side field '%s' has incompatible type '%s'", baseField(s.outKey), sinspType(s), baseField(r.outKey), sinspType(r))
			}
		}
		node.rhsSlot = rslot
		return node, nil
	case *condition.ValueExpr:
		c.checkFieldLikeValue(rhs)
		node.never = transformedList(n, s)
		return c.compileValues(n, node, []string{rhs.Value})
	case *condition.ListExpr:
		node.never = transformedList(n, s)
		vals := make([]string, len(rhs.Items))
		for i, it := range rhs.Items {
			c.checkFieldLikeValue(it)
			vals[i] = it.Value
		}
		return c.compileValues(n, node, vals)
	case nil:
		return nil, c.errorf(n.Pos, "operator '%s' requires a value", n.Op)
	}
	return nil, c.errorf(n.Pos, "unsupported right-hand side %T", n.Right)
}

func (c *exprCompiler) compileValues(n *condition.CheckExpr, node *checkNode, vals []string) (evalNode, error) {
	switch node.op {
	case opIn, opIntersects:
		switch node.typ {
		case k8saudit.TypeUint64, k8saudit.TypeAbsTime:
			node.numSet = make([]uint64, 0, len(vals))
			for _, v := range vals {
				x, err := parseNumber(v)
				if err != nil {
					return nil, c.errorf(n.Pos, "%s", err)
				}
				node.numSet = append(node.numSet, x)
			}
		case k8saudit.TypeBool:
			for _, v := range vals {
				if v != "true" && v != "false" {
					return nil, c.errorf(n.Pos, "'%s' is not a valid boolean: use true or false", v)
				}
			}
			node.set = newByteSet(vals)
		default:
			node.set = newByteSet(vals)
		}
		return node, nil
	case opPmatch:
		node.pmatch = match.NewPathPrefixSet(vals)
		return node, nil
	}
	if len(vals) != 1 {
		return nil, c.errorf(n.Pos, "operator '%s' takes a single value", n.Op)
	}
	v := vals[0]
	switch node.typ {
	case k8saudit.TypeUint64, k8saudit.TypeAbsTime:
		x, err := parseNumber(v)
		if err != nil {
			return nil, c.errorf(n.Pos, "%s", err)
		}
		node.num = x
		return node, nil
	case k8saudit.TypeBool:
		if v != "true" && v != "false" {
			return nil, c.errorf(n.Pos, "'%s' is not a valid boolean: use true or false", v)
		}
	}
	m, err := c.stringMatcher(n.Pos, n.Op, v)
	if err != nil {
		return nil, err
	}
	node.str = m
	return node, nil
}

func (c *exprCompiler) stringMatcher(pos condition.Pos, op, v string) (stringMatcher, error) {
	m := stringMatcher{op: opKinds[op], val: []byte(v)}
	switch op {
	case "glob":
		m.glob = match.CompileGlob(v, false)
	case "iglob":
		m.glob = match.CompileGlob(v, true)
	case "regex":
		re, err := match.CompileRegex(v)
		if err != nil {
			return m, c.errorf(pos, "invalid regex pattern: %s", err)
		}
		m.re = re
		if alt, ok := match.RegexSimplerOperator(v); ok {
			c.warnings = append(c.warnings, exprWarning{WarnCompileCondition, alt, pos})
		}
	}
	return m, nil
}

func (c *exprCompiler) compileModifier(n *condition.CheckExpr, node *checkNode) (evalNode, error) {
	if node.list || node.typ != k8saudit.TypeString || opKinds[n.Op] >= opIn {
		return nil, c.errorf(n.Pos, "modifier '%s' requires a string comparison operator on a non-list string field", n.Modifier)
	}
	var vals []string
	switch rhs := n.Right.(type) {
	case *condition.ListExpr:
		for _, it := range rhs.Items {
			vals = append(vals, it.Value)
		}
	case *condition.ValueExpr:
		vals = []string{rhs.Value}
	default:
		return nil, c.errorf(n.Pos, "modifier '%s' requires a list of values", n.Modifier)
	}
	node.mod = n.Modifier
	for _, v := range vals {
		m, err := c.stringMatcher(n.Pos, n.Op, v)
		if err != nil {
			return nil, err
		}
		node.modList = append(node.modList, m)
	}
	return node, nil
}

// checkNA reproduces Falco's warning for comparisons with "<NA>", which no longer means
// "missing" for plugin fields.
func (c *exprCompiler) checkNA(n *condition.CheckExpr, s fieldSlot) {
	if !unsafeNAOps[n.Op] {
		return
	}
	f, ok := n.Left.(*condition.FieldExpr)
	if !ok || !(strings.HasPrefix(f.Name, "ka.") || strings.HasPrefix(f.Name, "jevt.") || strings.HasPrefix(f.Name, "json.")) {
		return
	}
	hasNA := false
	switch r := n.Right.(type) {
	case *condition.ValueExpr:
		hasNA = r.Value == "<NA>"
	case *condition.ListExpr:
		for _, it := range r.Items {
			hasNA = hasNA || it.Value == "<NA>"
		}
	}
	if hasNA {
		c.warnings = append(c.warnings, exprWarning{WarnUnsafeNACheck,
			"comparing " + s.key + " with <NA> is unsafe: a missing value is not <NA> for plugin fields; use 'exists' instead", n.Pos})
	}
}

func (c *exprCompiler) checkFieldLikeValue(v *condition.ValueExpr) {
	if v.Quoted {
		return
	}
	name := v.Value
	if i := strings.IndexByte(name, '['); i > 0 {
		name = name[:i]
	}
	if _, ok := k8saudit.LookupField(name); ok {
		c.warnings = append(c.warnings, exprWarning{WarnCompileCondition,
			fmt.Sprintf("'%s' may be a valid field misused as a const string value", v.Value), v.Pos})
		return
	}
	if i := strings.IndexByte(v.Value, '('); i > 0 && transformers[v.Value[:i]] {
		c.warnings = append(c.warnings, exprWarning{WarnCompileCondition,
			fmt.Sprintf("'%s' may be a valid field transformer misused as a const string value", v.Value), v.Pos})
	}
}

var transformers = map[string]bool{"tolower": true, "toupper": true, "b64": true, "basename": true, "len": true, "join": true, "concat": true, "getopt": true, "val": true}

// operandSlot returns the slot of a field or transformer expression, registering it once per
// ruleset.
func (c *exprCompiler) operandSlot(op condition.Operand) (int, error) {
	key := operandKey(op)
	if id, ok := c.rs.slotByKey[key]; ok {
		return id, nil
	}
	slot, err := c.buildSlot(op)
	if err != nil {
		return 0, err
	}
	slot.key = key
	id := len(c.rs.slots)
	if slot.outKey == "" {
		slot.outKey, slot.outSlot = key, id
	}
	c.rs.slots = append(c.rs.slots, slot)
	c.rs.slotByKey[key] = id
	return id, nil
}

// operandKey is the canonical text of a field expression: the JSON output_fields key, with an
// argument re-quoted only when it needs quoting.
func operandKey(op condition.Operand) string {
	switch o := op.(type) {
	case *condition.FieldExpr:
		if !o.HasArg {
			return o.Name
		}
		return o.Name + "[" + quoteArg(o.Arg) + "]"
	case *condition.TransformerExpr:
		parts := make([]string, len(o.Args))
		for i, a := range o.Args {
			parts[i] = operandKey(a)
		}
		s := o.Name + "(" + strings.Join(parts, ", ") + ")"
		if o.HasArg {
			s += "[" + quoteArg(o.Arg) + "]"
		}
		return s
	case *condition.ValueExpr:
		if o.Quoted {
			return strconv.Quote(o.Value)
		}
		return o.Value
	case *condition.ListExpr:
		parts := make([]string, len(o.Items))
		for i, it := range o.Items {
			parts[i] = operandKey(it)
		}
		return "(" + strings.Join(parts, ", ") + ")"
	}
	return op.String()
}

func quoteArg(a string) string {
	if strings.ContainsAny(a, " =\"'\\") || strings.IndexFunc(a, func(r rune) bool { return r < 0x20 }) >= 0 {
		return strconv.Quote(a)
	}
	return a
}

func (c *exprCompiler) buildSlot(op condition.Operand) (fieldSlot, error) {
	switch o := op.(type) {
	case *condition.FieldExpr:
		info, ok := k8saudit.LookupField(o.Name)
		if !ok {
			return fieldSlot{}, &compileError{msg: "filter_check called with nonexistent field " + o.Name, pos: o.Pos, unknownField: true}
		}
		ex, err := k8saudit.Compile(o.Name, o.Arg, o.HasArg)
		if err != nil {
			return fieldSlot{}, &compileError{msg: err.Error(), pos: o.Pos}
		}
		return fieldSlot{typ: info.Type, list: info.List, extract: ex}, nil
	case *condition.TransformerExpr:
		return c.buildTransformer(o)
	}
	return fieldSlot{}, c.errorf(op.Position(), "expected a field or transformer, got %s", op.String())
}

func (c *exprCompiler) argSlot(a condition.Operand) (fieldSlot, error) {
	switch v := a.(type) {
	case *condition.ValueExpr:
		val := []byte(v.Value)
		return fieldSlot{typ: k8saudit.TypeString, extract: func(_ *k8saudit.Event, dst [][]byte) ([][]byte, bool) {
			return append(dst, val), true
		}}, nil
	case *condition.FieldExpr, *condition.TransformerExpr:
		id, err := c.operandSlot(v)
		if err != nil {
			return fieldSlot{}, err
		}
		return c.rs.slots[id], nil
	}
	return fieldSlot{}, c.errorf(a.Position(), "unsupported transformer argument %s", a.String())
}

func (c *exprCompiler) buildTransformer(t *condition.TransformerExpr) (fieldSlot, error) {
	switch t.Name {
	case "tolower", "toupper", "b64", "basename", "len":
		if len(t.Args) != 1 {
			return fieldSlot{}, c.errorf(t.Pos, "transformer '%s' takes exactly one argument", t.Name)
		}
		inner, err := c.argSlot(t.Args[0])
		if err != nil {
			return fieldSlot{}, err
		}
		if _, isVal := t.Args[0].(*condition.ValueExpr); isVal {
			return fieldSlot{}, c.errorf(t.Pos, "transformer '%s' requires a field argument", t.Name)
		}
		if inner.typ != k8saudit.TypeString {
			return fieldSlot{}, c.errorf(t.Pos, "transformer '%s' is not supported on field type %s", t.Name, typeNames[inner.typ])
		}
		out := fieldSlot{typ: inner.typ, list: inner.list, outKey: inner.outKey, outSlot: inner.outSlot}
		ext := inner.extract
		switch t.Name {
		case "tolower", "toupper":
			upper := t.Name == "toupper"
			out.extract = func(ev *k8saudit.Event, dst [][]byte) ([][]byte, bool) {
				start := len(dst)
				dst, ok := ext(ev, dst)
				if !ok {
					return dst, false
				}
				for i := start; i < len(dst); i++ {
					dst[i] = mapCase(ev, dst[i], upper)
				}
				return dst, true
			}
		case "basename":
			out.extract = func(ev *k8saudit.Event, dst [][]byte) ([][]byte, bool) {
				start := len(dst)
				dst, ok := ext(ev, dst)
				for i := start; ok && i < len(dst); i++ {
					if j := bytes.LastIndexByte(dst[i], '/'); j >= 0 {
						dst[i] = dst[i][j+1:]
					}
				}
				return dst, ok
			}
		case "b64":
			out.extract = func(ev *k8saudit.Event, dst [][]byte) ([][]byte, bool) {
				start := len(dst)
				dst, ok := ext(ev, dst)
				for i := start; ok && i < len(dst); i++ {
					dec, good := b64Decode(ev, dst[i])
					if !good {
						return dst[:start], false
					}
					dst[i] = dec
				}
				return dst, ok
			}
		case "len":
			out.typ, out.list = k8saudit.TypeUint64, false
			isList := inner.list
			out.extract = func(ev *k8saudit.Event, dst [][]byte) ([][]byte, bool) {
				start := len(dst)
				vals, ok := ext(ev, dst)
				if !ok {
					return dst[:start], false
				}
				var n int
				if isList {
					n = len(vals) - start
				} else {
					v := vals[start]
					if i := bytes.IndexByte(v, 0); i >= 0 {
						v = v[:i]
					}
					n = len(v)
				}
				buf := strconv.AppendUint(ev.Scratch(20)[:0], uint64(n), 10)
				return append(vals[:start], buf), true
			}
		}
		return out, nil
	case "join":
		if len(t.Args) != 2 {
			return fieldSlot{}, c.errorf(t.Pos, "transformer 'join' takes a separator and a list")
		}
		sep, err := c.argSlot(t.Args[0])
		if err != nil {
			return fieldSlot{}, err
		}
		list, err := c.argSlot(t.Args[1])
		if err != nil {
			return fieldSlot{}, err
		}
		if sep.list || !list.list {
			return fieldSlot{}, c.errorf(t.Pos, "transformer 'join' requires a non-list separator and a list field")
		}
		return fieldSlot{typ: k8saudit.TypeString, extract: func(ev *k8saudit.Event, dst [][]byte) ([][]byte, bool) {
			start := len(dst)
			dst, ok := sep.extract(ev, dst)
			if !ok {
				return dst[:start], false
			}
			s := dst[start]
			dst, ok = list.extract(ev, dst)
			if !ok {
				return dst[:start], false
			}
			return append(dst[:start], joinScratch(ev, s, dst[start+1:])), true
		}}, nil
	case "concat":
		if len(t.Args) < 2 {
			return fieldSlot{}, c.errorf(t.Pos, "transformer 'concat' takes at least two arguments")
		}
		parts := make([]fieldSlot, len(t.Args))
		for i, a := range t.Args {
			p, err := c.argSlot(a)
			if err != nil {
				return fieldSlot{}, err
			}
			if p.list {
				return fieldSlot{}, c.errorf(t.Pos, "transformer 'concat' does not accept list arguments")
			}
			parts[i] = p
		}
		return fieldSlot{typ: k8saudit.TypeString, extract: func(ev *k8saudit.Event, dst [][]byte) ([][]byte, bool) {
			start := len(dst)
			for _, p := range parts {
				var ok bool
				if dst, ok = p.extract(ev, dst); !ok {
					return dst[:start], false
				}
			}
			return append(dst[:start], joinScratch(ev, nil, dst[start:])), true
		}}, nil
	}
	return fieldSlot{}, &compileError{msg: fmt.Sprintf("unknown or unsupported transformer '%s'", t.Name), pos: t.Pos, unknownField: true}
}

func mapCase(ev *k8saudit.Event, v []byte, upper bool) []byte {
	out := ev.Scratch(len(v))[:len(v)]
	for i, b := range v {
		if upper && b >= 'a' && b <= 'z' {
			b -= 'a' - 'A'
		} else if !upper && b >= 'A' && b <= 'Z' {
			b += 'a' - 'A'
		}
		out[i] = b
	}
	return out
}

func b64Decode(ev *k8saudit.Event, v []byte) ([]byte, bool) {
	enc := base64.StdEncoding
	if len(v)%4 != 0 {
		enc = base64.RawStdEncoding
		v = bytes.TrimRight(v, "=")
	}
	out := ev.Scratch(enc.DecodedLen(len(v)))
	n, err := enc.Decode(out, v)
	if err != nil {
		return nil, false
	}
	return out[:n], true
}

func joinScratch(ev *k8saudit.Event, sep []byte, parts [][]byte) []byte {
	n := 0
	for i, p := range parts {
		if i > 0 {
			n += len(sep)
		}
		n += len(p)
	}
	out := ev.Scratch(n)[:0]
	for i, p := range parts {
		if i > 0 {
			out = append(out, sep...)
		}
		out = append(out, p...)
	}
	return out
}
