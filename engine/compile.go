package engine

import (
	"errors"
	"fmt"
	"strings"

	"github.com/falco-k8s/falco-k8s/engine/condition"
)

// compiledList is a list after one-level list-in-list expansion.
type compiledList struct {
	info  *listInfo
	items []string
	used  bool
}

type compiledMacro struct {
	info     *macroInfo
	ast      condition.Expr
	resolved bool
	used     bool
	// size is the number of nodes ast expands to (valid once resolved).
	size int
}

// compiler turns the collector's items into a Ruleset, following Falco's rule_loader::compiler:
// lists, then macros (visibility-aware), then rules.
type compiler struct {
	col      *collector
	opts     Options
	warn     func(Diagnostic)
	lists    []*compiledList
	listByNm map[string]*compiledList
	macros   map[string]*compiledMacro
	order    []*compiledMacro
}

func (cp *compiler) diag(sev Severity, code Code, msg string, cx ctx, f *yamlFile) Diagnostic {
	locs := make([]Location, len(cx))
	copy(locs, cx)
	snippet := ""
	if n := len(cx); n > 0 {
		last := cx[n-1]
		if last.ItemType == ItemConditionExpression {
			snippet = "" // filled by exprCtx
		} else if f != nil && last.Position.Name == f.name {
			snippet = f.snippet(last.Position)
		}
	}
	return Diagnostic{Severity: sev, Code: code, Message: msg, Locations: locs, Snippet: snippet}
}

// exprErr is a compile error located inside a condition or output expression string.
type exprErr struct {
	code    Code
	msg     string
	ctx     ctx
	snippet string
	// unknownField marks errors that skip-if-unknown-filter downgrades to a warning.
	unknownField bool
}

func (e *exprErr) Error() string { return e.msg }

// exprCtx is Falco's "condition expression" context: its name is the start of the expression in
// quotes, its position the parser's (1-based line and column within the expression) added to the
// parent's 0-based YAML mark, as Falco's rule_loader::context does.
func exprCtx(parent ctx, text string, p condition.Pos) (ctx, string) {
	name := text
	if len(name) > 20 {
		name = name[:17] + "..."
	}
	name = strings.NewReplacer("\n", " ", "\r", " ").Replace(`"` + name + `"`)
	var mark Position
	if len(parent) > 0 {
		mark = parent[len(parent)-1].Position
	}
	c := parent.with(ItemConditionExpression, "", Position{Name: name, Line: mark.Line + p.Line, Column: mark.Column + p.Col, Offset: max(mark.Offset, 0) + p.Idx})
	// The snippet is cut from the expression itself at the summed offset (see falcoSnippet).
	return c, falcoSnippet(text, max(mark.Offset, 0)+p.Idx)
}

func (cp *compiler) compileLists() {
	cp.listByNm = map[string]*compiledList{}
	for _, l := range cp.col.lists.items {
		cl := &compiledList{info: l}
		cp.lists = append(cp.lists, cl)
		cp.listByNm[l.name] = cl
	}
	for _, cl := range cp.lists {
		l := cl.info
		items := make([]string, 0, len(l.items))
		for _, it := range l.items {
			// Only one level of list-in-list expansion, and only of lists defined before this
			// list's latest definition; deeper names are left to the textual pass.
			if ref := cp.col.lists.get(it); ref != nil && ref.index < l.visibility {
				items = append(items, ref.items...)
				cp.listByNm[it].used = true
				continue
			}
			items = append(items, it)
		}
		cl.items = items
	}
}

// quoteItem wraps an item containing a space in double quotes unless it is already quoted.
func quoteItem(s string) string {
	if strings.Contains(s, " ") && s != "" && s[0] != '"' && s[0] != '\'' {
		return `"` + s + `"`
	}
	return s
}

// resolveLists performs Falco's textual list substitution on a condition for every list, in
// definition order. It does not understand quotes or context, on purpose: rules rely on the
// exact behaviour (empty lists swallow a comma, undefined names stay literal). A result longer
// than limit bytes is refused (a list named many times in a condition multiplies its size).
func (cp *compiler) resolveLists(cond string) (string, error) {
	limit := cp.opts.maxConditionBytes()
	for _, cl := range cp.lists {
		var used bool
		var err error
		cond, used, err = resolveList(cond, cl.info.name, cl.items, limit)
		if err != nil {
			return "", err
		}
		if used {
			cl.used = true
		}
	}
	return cond, nil
}

const listBlanks = " \t\n\r"
const listDelims = listBlanks + "(),="

// resolveList replaces each delimited occurrence of name in cnd by the list's items, in one pass
// (linear in the result, which is at most limit bytes). Falco's algorithm rebuilds the whole
// string at each occurrence; the result is the same, quirks included: blanks around the name
// are replaced by single spaces, an empty list swallows the comma before (else after) it, and
// after a substitution at the very start the next character is never the start of a match.
func resolveList(cnd, name string, items []string, limit int) (string, bool, error) {
	if name == "" || !strings.Contains(cnd, name) {
		return cnd, false, nil
	}
	isBlank := func(c byte) bool { return strings.IndexByte(listBlanks, c) >= 0 }
	isDelim := func(c byte) bool { return strings.IndexByte(listDelims, c) >= 0 }
	var sub string
	subDone := false
	used := false
	out := make([]byte, 0, len(cnd))
	rest := cnd
	for {
		i := strings.Index(rest, name)
		if i < 0 {
			break
		}
		end := i + len(name)
		prevOK := true
		if i > 0 {
			prevOK = isDelim(rest[i-1])
		} else if len(out) > 0 {
			prevOK = isDelim(out[len(out)-1])
		}
		if !prevOK || (end < len(rest) && !isDelim(rest[end])) {
			out = append(out, rest[:i+1]...)
			rest = rest[i+1:]
			continue
		}
		if !subDone {
			var b strings.Builder
			for _, it := range items {
				if it == "" {
					continue // Falco substitutes nothing for an empty item (observed: it never matches "")
				}
				if b.Len() > 0 {
					b.WriteString(", ")
				}
				b.WriteString(quoteItem(it))
			}
			sub, subDone = b.String(), true
		}
		out = append(out, rest[:i]...)
		for len(out) > 0 && isBlank(out[len(out)-1]) {
			out = out[:len(out)-1]
		}
		for end < len(rest) && isBlank(rest[end]) {
			end++
		}
		if sub == "" {
			if len(out) > 0 && out[len(out)-1] == ',' {
				out = out[:len(out)-1]
			} else if end < len(rest) && rest[end] == ',' {
				end++
			}
		}
		if len(out)+len(sub)+2+len(rest)-end > limit {
			return "", false, &conditionTooLongError{limit: limit}
		}
		atStart := len(out) == 0
		if !atStart {
			out = append(out, ' ')
		}
		out = append(out, sub...)
		out = append(out, ' ')
		rest = rest[end:]
		used = true
		if atStart && len(rest) > 0 {
			out = append(out, rest[0])
			rest = rest[1:]
		}
	}
	out = append(out, rest...)
	return string(out), used, nil
}

func (cp *compiler) parse(text string, parent ctx) (condition.Expr, error) {
	ast, err := condition.Parse(text)
	if err != nil {
		var pe *condition.ParseError
		p := condition.Pos{Idx: 0, Line: 1, Col: 1}
		msg := err.Error()
		if errors.As(err, &pe) {
			p, msg = pe.Pos, pe.Msg
		}
		c, snip := exprCtx(parent, text, p)
		return nil, &exprErr{code: ErrCompileCondition, msg: msg, ctx: c, snippet: snip}
	}
	return ast, nil
}

func (cp *compiler) compileMacros() error {
	cp.macros = map[string]*compiledMacro{}
	for _, m := range cp.col.macros.items {
		text, err := cp.resolveLists(m.cond)
		if err != nil {
			return &loadErr{code: ErrCompileCondition, msg: err.Error(), ctx: m.condCtx}
		}
		ast, err := cp.parse(text, m.condCtx)
		if err != nil {
			return err
		}
		cm := &compiledMacro{info: m, ast: ast}
		cp.macros[m.name] = cm
		cp.order = append(cp.order, cm)
	}
	for _, cm := range cp.order {
		vis := cm.info.visibility
		visible := func(name string) *compiledMacro {
			if m := cp.macros[name]; m != nil && m.info.index < vis {
				return m
			}
			return nil
		}
		// The path starts empty, as in libsinsp's filter_macro_resolver: a loop is reported
		// at the first macro met twice while expanding (a macro sees itself only once redefined).
		x := &expansion{limit: cp.opts.maxConditionNodes()}
		resolved, err := cp.substitute(cm.ast, visible, nil, true, x)
		if err != nil {
			// Falco locates macro resolution errors from the item, not its condition; a
			// condition too big to expand is ours, located at the condition.
			ictx := cm.info.ctx
			if err.tooBig {
				ictx = cm.info.condCtx
			}
			c, snip := exprCtx(ictx, cm.info.cond, err.pos)
			return &exprErr{code: err.code(), msg: err.msg, ctx: c, snippet: snip}
		}
		cm.ast, cm.resolved, cm.size = resolved, true, x.nodes
	}
	return nil
}

type macroErr struct {
	msg    string
	pos    condition.Pos
	tooBig bool
}

func (e *macroErr) code() Code {
	if e.tooBig {
		return ErrCompileCondition
	}
	return ErrValidate
}

// substitute replaces macro references by (clones of) their conditions, recursively, detecting
// loops. Macros are subtrees, so precedence is preserved. mark records usage. x counts the
// expanded nodes (a resolved macro shares its tree but counts its full size) and substitution
// stops once they pass x's limit, so its work is bounded whatever the macros.
func (cp *compiler) substitute(e condition.Expr, visible func(string) *compiledMacro, stack []string, mark bool, x *expansion) (condition.Expr, *macroErr) {
	switch n := e.(type) {
	case *condition.IdentifierExpr:
		m := visible(n.Name)
		if m == nil {
			return nil, &macroErr{msg: fmt.Sprintf("Undefined macro '%s' used in filter.", n.Name), pos: n.Pos}
		}
		for _, s := range stack {
			if s == n.Name {
				return nil, &macroErr{msg: fmt.Sprintf("reference loop in macro '%s'", n.Name), pos: n.Pos}
			}
		}
		if mark {
			m.used = true
		}
		if m.resolved {
			if !x.add(m.size) {
				return nil, x.tooBig(n.Pos, n.Name)
			}
			return m.ast, nil
		}
		return cp.substitute(m.ast, visible, append(stack, n.Name), mark, x)
	case *condition.AndExpr:
		if !x.add(1) {
			return nil, x.tooBig(n.Pos, "")
		}
		children, err := cp.substituteAll(n.Children, visible, stack, mark, x)
		if err != nil {
			return nil, err
		}
		return &condition.AndExpr{Pos: n.Pos, Children: children}, nil
	case *condition.OrExpr:
		if !x.add(1) {
			return nil, x.tooBig(n.Pos, "")
		}
		children, err := cp.substituteAll(n.Children, visible, stack, mark, x)
		if err != nil {
			return nil, err
		}
		return &condition.OrExpr{Pos: n.Pos, Children: children}, nil
	case *condition.NotExpr:
		if !x.add(1) {
			return nil, x.tooBig(n.Pos, "")
		}
		r, err := cp.substitute(n.Child, visible, stack, mark, x)
		if err != nil {
			return nil, err
		}
		return &condition.NotExpr{Pos: n.Pos, Child: r}, nil
	default:
		if !x.add(1) {
			return nil, x.tooBig(e.Position(), "")
		}
		return e, nil
	}
}

func (cp *compiler) substituteAll(in []condition.Expr, visible func(string) *compiledMacro, stack []string, mark bool, x *expansion) ([]condition.Expr, *macroErr) {
	out := make([]condition.Expr, len(in))
	for i, c := range in {
		r, err := cp.substitute(c, visible, stack, mark, x)
		if err != nil {
			return nil, err
		}
		out[i] = r
	}
	return out, nil
}

// exceptionCondition renders exceptions as Falco does, as text appended to the condition:
// "(" + cond + ")" + " and not <clause>"...
func exceptionCondition(cond string, exs []exceptionInfo) (string, []string, *loadErr) {
	var fields []string
	addField := func(f string) {
		for _, x := range fields {
			if x == f {
				return
			}
		}
		fields = append(fields, f)
	}
	if len(exs) == 0 {
		// Falco wraps the condition in parentheses only when the rule has exceptions, which
		// matters for parser positions in diagnostics.
		return cond, nil, nil
	}
	out := "(" + cond + ")"
	for _, ex := range exs {
		var icond strings.Builder
		if !ex.fields.isList {
			for _, v := range ex.values {
				if v.isList {
					return "", nil, &loadErr{code: ErrValidate, msg: "Expected values array to contain a list of strings", ctx: ex.ctx}
				}
				if icond.Len() == 0 {
					fmt.Fprintf(&icond, "(%s %s (", ex.fields.item, ex.comps.item)
				} else {
					icond.WriteString(", ")
				}
				addField(ex.fields.item)
				icond.WriteString(quoteItem(v.item))
			}
			if icond.Len() > 0 {
				icond.WriteString("))")
			}
		} else {
			icond.WriteString("(")
			for vi, tuple := range ex.values {
				if len(ex.fields.items) != len(tuple.items) {
					return "", nil, &loadErr{code: ErrValidate, msg: "Fields and values lists must have equal length", ctx: ex.ctx}
				}
				if vi > 0 {
					icond.WriteString(" or ")
				}
				icond.WriteString("(")
				for k, f := range ex.fields.items {
					if k > 0 {
						icond.WriteString(" and ")
					}
					comp := ex.comps.items[k].item
					v := tuple.items[k]
					var istr string
					if v.isList {
						parts := make([]string, len(v.items))
						for i, it := range v.items {
							parts[i] = quoteItem(it.item)
						}
						istr = "(" + strings.Join(parts, ", ") + ")"
					} else {
						istr = v.item
						_, mod := splitModifier(comp)
						if listOperators[comp] || mod != "" {
							if !strings.HasPrefix(istr, "(") {
								istr = "(" + istr + ")"
							}
						} else {
							istr = quoteItem(istr)
						}
					}
					addField(f.item)
					fmt.Fprintf(&icond, " %s %s %s", f.item, comp, istr)
				}
				icond.WriteString(")")
			}
			icond.WriteString(")")
			if icond.String() == "()" {
				icond.Reset()
			}
		}
		if icond.Len() > 0 {
			out += " and not " + icond.String()
		}
	}
	return out, fields, nil
}
