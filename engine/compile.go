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
// exact behaviour (empty lists swallow a comma, undefined names stay literal).
func (cp *compiler) resolveLists(cond string) string {
	for _, cl := range cp.lists {
		var used bool
		cond, used = resolveList(cond, cl.info.name, cl.items)
		if used {
			cl.used = true
		}
	}
	return cond
}

const listBlanks = " \t\n\r"
const listDelims = listBlanks + "(),="

func resolveList(cnd, name string, items []string) (string, bool) {
	if name == "" {
		return cnd, false
	}
	used := false
	start := strings.Index(cnd, name)
	for start >= 0 {
		end := start + len(name)
		if (start == 0 || strings.IndexByte(listDelims, cnd[start-1]) >= 0) &&
			(end >= len(cnd) || strings.IndexByte(listDelims, cnd[end]) >= 0) {
			for start > 0 && strings.IndexByte(listBlanks, cnd[start-1]) >= 0 {
				start--
			}
			for end < len(cnd) && strings.IndexByte(listBlanks, cnd[end]) >= 0 {
				end++
			}
			var sub strings.Builder
			for i, it := range items {
				if i > 0 {
					sub.WriteString(", ")
				}
				sub.WriteString(quoteItem(it))
			}
			if sub.Len() == 0 {
				if start > 0 && cnd[start-1] == ',' {
					start--
				} else if end < len(cnd) && cnd[end] == ',' {
					end++
				}
			}
			var b strings.Builder
			if start > 0 {
				b.WriteString(cnd[:start])
				b.WriteByte(' ')
			}
			b.WriteString(sub.String())
			b.WriteByte(' ')
			if end <= len(cnd) {
				b.WriteString(cnd[end:])
			}
			cnd = b.String()
			start += sub.Len() + 1
			used = true
		}
		next := strings.Index(cnd[min(start+1, len(cnd)):], name)
		if next < 0 {
			break
		}
		start = min(start+1, len(cnd)) + next
	}
	return cnd, used
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
		text := cp.resolveLists(m.cond)
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
		resolved, err := cp.substitute(cm.ast, visible, nil, true)
		if err != nil {
			// Falco locates macro resolution errors from the item, not its condition.
			c, snip := exprCtx(cm.info.ctx, cm.info.cond, err.pos)
			return &exprErr{code: ErrValidate, msg: err.msg, ctx: c, snippet: snip}
		}
		cm.ast, cm.resolved = resolved, true
	}
	return nil
}

type macroErr struct {
	msg string
	pos condition.Pos
}

// substitute replaces macro references by (clones of) their conditions, recursively, detecting
// loops. Macros are subtrees, so precedence is preserved. mark records usage.
func (cp *compiler) substitute(e condition.Expr, visible func(string) *compiledMacro, stack []string, mark bool) (condition.Expr, *macroErr) {
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
			return m.ast, nil
		}
		return cp.substitute(m.ast, visible, append(stack, n.Name), mark)
	case *condition.AndExpr:
		children, err := cp.substituteAll(n.Children, visible, stack, mark)
		if err != nil {
			return nil, err
		}
		return &condition.AndExpr{Pos: n.Pos, Children: children}, nil
	case *condition.OrExpr:
		children, err := cp.substituteAll(n.Children, visible, stack, mark)
		if err != nil {
			return nil, err
		}
		return &condition.OrExpr{Pos: n.Pos, Children: children}, nil
	case *condition.NotExpr:
		r, err := cp.substitute(n.Child, visible, stack, mark)
		if err != nil {
			return nil, err
		}
		return &condition.NotExpr{Pos: n.Pos, Child: r}, nil
	default:
		return e, nil
	}
}

func (cp *compiler) substituteAll(in []condition.Expr, visible func(string) *compiledMacro, stack []string, mark bool) ([]condition.Expr, *macroErr) {
	out := make([]condition.Expr, len(in))
	for i, c := range in {
		r, err := cp.substitute(c, visible, stack, mark)
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
