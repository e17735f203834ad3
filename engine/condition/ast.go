package condition

import "strings"

// Pos locates a node or an error in the condition text. It mirrors libsinsp's
// pos_info so positions reported by this package line up with Falco's.
type Pos struct {
	Idx  int // 0-based byte offset into the input
	Line int // 1-based; '\r' and '\n' each start a new line, as in libsinsp
	Col  int // 1-based
}

// Expr is a boolean node of the condition AST.
type Expr interface {
	Position() Pos
	// String renders a canonical text form that re-parses to an equal AST.
	String() string
}

// Operand is a value-producing node: a field, a transformer, a literal or a list.
type Operand interface {
	Position() Pos
	String() string
}

// AndExpr is an n-ary conjunction evaluated left to right.
type AndExpr struct {
	Pos      Pos
	Children []Expr
}

// OrExpr is an n-ary disjunction evaluated left to right.
type OrExpr struct {
	Pos      Pos
	Children []Expr
}

// NotExpr negates its child.
type NotExpr struct {
	Pos   Pos
	Child Expr
}

// IdentifierExpr is a bare identifier in check position: a macro reference.
type IdentifierExpr struct {
	Pos  Pos
	Name string
}

// CheckExpr compares Left with Right using Op.
type CheckExpr struct {
	Pos      Pos
	Left     Operand // *FieldExpr or *TransformerExpr
	Op       string  // as written, e.g. "=", "contains", "in", "exists"
	Modifier string  // "", "oneof", "anyof", "allof"
	// Right is nil for exists; otherwise *ValueExpr (a single literal, which
	// includes the `in ident` form), *ListExpr, *FieldExpr (written val(f)) or
	// *TransformerExpr.
	Right Operand
}

// FieldExpr is a field reference, optionally with an argument: name[arg].
type FieldExpr struct {
	Pos       Pos
	Name      string
	Arg       string
	HasArg    bool
	ArgQuoted bool
	// Val is set when the field was written as val(field) on a check's RHS.
	// Pos is then the field's own position and ValPos that of "val(".
	Val    bool
	ValPos Pos
	// ValArg is a trailing argument written after val(...), as in val(f)[x]
	// (accepted by the 0.44 grammar; the compiler decides whether it is legal).
	ValArg       string
	HasValArg    bool
	ValArgQuoted bool
}

// TransformerExpr applies a field transformer such as tolower(f) or
// join(",", f). The optional Arg is the trailing argument of forms like
// getopt(args, "ab:")[b].
type TransformerExpr struct {
	Pos       Pos
	Name      string
	Args      []Operand // *FieldExpr, *TransformerExpr, *ValueExpr, *ListExpr, *ArgListExpr
	Arg       string
	HasArg    bool
	ArgQuoted bool
}

// ValueExpr is a literal: a quoted string, a bare string, a number or an
// identifier used as a value. Value is already unescaped.
type ValueExpr struct {
	Pos    Pos
	Value  string
	Quoted bool
}

// ListExpr is a parenthesised list of literals.
type ListExpr struct {
	Pos   Pos
	Items []*ValueExpr
}

// ArgListExpr is a parenthesised transformer argument list that holds at least
// one field or transformer, e.g. concat((proc.name, "x")). Lists made of
// literals only are represented as *ListExpr instead.
type ArgListExpr struct {
	Pos   Pos
	Items []Operand // *FieldExpr, *TransformerExpr, *ValueExpr
}

func (e *AndExpr) Position() Pos         { return e.Pos }
func (e *OrExpr) Position() Pos          { return e.Pos }
func (e *NotExpr) Position() Pos         { return e.Pos }
func (e *IdentifierExpr) Position() Pos  { return e.Pos }
func (e *CheckExpr) Position() Pos       { return e.Pos }
func (e *FieldExpr) Position() Pos       { return e.Pos }
func (e *TransformerExpr) Position() Pos { return e.Pos }
func (e *ValueExpr) Position() Pos       { return e.Pos }
func (e *ListExpr) Position() Pos        { return e.Pos }
func (e *ArgListExpr) Position() Pos     { return e.Pos }

// Walk visits e and its boolean descendants in pre-order. When fn returns
// false the children of that node are skipped. Operands are not visited.
func Walk(e Expr, fn func(Expr) bool) {
	if e == nil || !fn(e) {
		return
	}
	switch n := e.(type) {
	case *AndExpr:
		for _, c := range n.Children {
			Walk(c, fn)
		}
	case *OrExpr:
		for _, c := range n.Children {
			Walk(c, fn)
		}
	case *NotExpr:
		Walk(n.Child, fn)
	}
}

func (e *AndExpr) String() string {
	var b strings.Builder
	for i, c := range e.Children {
		if i > 0 {
			b.WriteString(" and ")
		}
		// A nested and/or only survives a re-parse when parenthesised.
		switch c.(type) {
		case *AndExpr, *OrExpr:
			b.WriteString("(" + c.String() + ")")
		default:
			b.WriteString(renderOperandOfBinary(c))
		}
	}
	return b.String()
}

// renderOperandOfBinary renders an and/or child. A macro named "not" followed
// by " and"/" or" would lex as a negation, so it is parenthesised.
func renderOperandOfBinary(c Expr) string {
	if id, ok := c.(*IdentifierExpr); ok && id.Name == "not" {
		return "(not)"
	}
	return c.String()
}

func (e *OrExpr) String() string {
	var b strings.Builder
	for i, c := range e.Children {
		if i > 0 {
			b.WriteString(" or ")
		}
		if _, ok := c.(*OrExpr); ok {
			b.WriteString("(" + c.String() + ")")
		} else {
			b.WriteString(renderOperandOfBinary(c))
		}
	}
	return b.String()
}

func (e *NotExpr) String() string {
	switch c := e.Child.(type) {
	case *AndExpr, *OrExpr, *NotExpr:
		// "not not x" would cancel out, so a double negation needs parentheses.
		return "not (" + c.String() + ")"
	case *IdentifierExpr:
		if c.Name == "not" {
			return "not (not)"
		}
	}
	return "not " + e.Child.String()
}

func (e *IdentifierExpr) String() string { return e.Name }

func (e *CheckExpr) String() string {
	s := e.Left.String() + " " + e.Op
	if e.Modifier != "" {
		s += " " + e.Modifier
	}
	if e.Right != nil {
		s += " " + e.Right.String()
	}
	return s
}

func (e *FieldExpr) String() string {
	s := e.Name
	if e.HasArg {
		s += "[" + renderArg(e.Arg, e.ArgQuoted) + "]"
	}
	if !e.Val {
		return s
	}
	s = "val(" + s + ")"
	if e.HasValArg {
		s += "[" + renderArg(e.ValArg, e.ValArgQuoted) + "]"
	}
	return s
}

func (e *TransformerExpr) String() string {
	var b strings.Builder
	b.WriteString(e.Name)
	b.WriteByte('(')
	for i, a := range e.Args {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(a.String())
	}
	b.WriteByte(')')
	if e.HasArg {
		b.WriteString("[" + renderArg(e.Arg, e.ArgQuoted) + "]")
	}
	return b.String()
}

func (e *ValueExpr) String() string {
	if e.Quoted {
		return Quote(e.Value)
	}
	return e.Value
}

func (e *ListExpr) String() string {
	var b strings.Builder
	b.WriteByte('(')
	for i, it := range e.Items {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(it.String())
	}
	b.WriteByte(')')
	return b.String()
}

func (e *ArgListExpr) String() string {
	var b strings.Builder
	b.WriteByte('(')
	for i, it := range e.Items {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(it.String())
	}
	b.WriteByte(')')
	return b.String()
}

func renderArg(arg string, quoted bool) string {
	if quoted {
		return Quote(arg)
	}
	return arg
}

// Quote renders s as a double-quoted condition string literal that the parser
// unescapes back to s. A trailing backslash is written as the legacy "\ "
// escape because the lexer never ends a string on a quote preceded by a
// backslash, so `"a\\"` would not terminate.
func Quote(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\':
			if i == len(s)-1 {
				b.WriteString(`\ `)
			} else {
				b.WriteString(`\\`)
			}
		case '"':
			b.WriteString(`\"`)
		case '\b':
			b.WriteString(`\b`)
		case '\f':
			b.WriteString(`\f`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}
