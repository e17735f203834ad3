package condition

import "strconv"

// MaxDepth bounds the nesting of parentheses, negations in "not(" form and
// transformers. Falco configures libsinsp's parser with 1000; see the package
// comment for how the bound is counted.
const MaxDepth = 1000

// ParseError is a syntax error. Msg uses libsinsp's wording and Pos is the
// parser position at the moment the error was raised, as Falco reports it.
type ParseError struct {
	Pos Pos
	Msg string
}

func (e *ParseError) Error() string { return e.Msg }

type parser struct {
	lexer
	depth int
}

func newParser(input string) *parser {
	return &parser{lexer: lexer{in: input, pos: Pos{Idx: 0, Line: 1, Col: 1}}}
}

// fail aborts parsing; Parse and ParseOperandPrefix recover it. Panicking keeps
// the recursive descent free of error plumbing on the (hot) success path.
func (p *parser) fail(msg string) {
	panic(&ParseError{Pos: p.pos, Msg: msg})
}

func (p *parser) check(err error) {
	if err != nil {
		p.fail(err.Error())
	}
}

func (p *parser) enter() {
	p.depth++
	if p.depth >= MaxDepth {
		p.fail("exceeded max depth limit of " + strconv.Itoa(MaxDepth))
	}
}

func (p *parser) leave() { p.depth-- }

func recoverParseError(err *error) {
	if r := recover(); r != nil {
		pe, ok := r.(*ParseError)
		if !ok {
			panic(r)
		}
		*err = pe
	}
}

// Parse parses a whole condition. The returned error, if any, is a *ParseError.
func Parse(input string) (expr Expr, err error) {
	p := newParser(input)
	if len(input) == 0 {
		return nil, &ParseError{Pos: p.pos, Msg: "filter input string is empty"}
	}
	defer recoverParseError(&err)
	expr = p.parseOr()
	if p.pos.Idx != len(p.in) {
		p.fail("unexpected token after '" + p.last + "', expecting 'or', 'and'")
	}
	return expr, nil
}

// ParseOperandPrefix parses one field or transformer expression at the start
// of s, as allowed on a check's LHS, and returns it with the number of bytes
// consumed. Field names are matched greedily, like the condition lexer does;
// callers wanting a shorter field must retry with a shorter s.
func ParseOperandPrefix(s string) (op Operand, n int, err error) {
	p := newParser(s)
	defer recoverParseError(&err)
	pos := p.pos
	switch {
	case p.lexFieldName():
		op = p.parseFieldRemainder(p.last, pos)
	case p.lexTransformer():
		p.lexBlank()
		op = p.parseTransformerRemainder(p.last, pos)
	default:
		// libsinsp's parse_field_or_transformer wording, unbalanced quote included.
		p.fail("unexpected token after '" + p.last)
	}
	return op, p.pos.Idx, nil
}

// lexTransformer matches a transformer name immediately followed by '('. As
// upstream, the last token is the name without the parenthesis.
func (p *parser) lexTransformer() bool {
	for _, t := range Transformers {
		if p.lexStr(t + "(") {
			p.last = t
			return true
		}
	}
	return false
}

func (p *parser) parseOr() Expr {
	p.enter()
	defer p.leave()
	pos := p.pos
	p.lexBlank()
	children := []Expr{p.parseAnd()}
	p.lexBlank()
	for p.lexStr("or") {
		var child Expr
		if p.lexBlank() {
			child = p.parseAnd()
		} else if p.lexStr("(") {
			child = p.parseEmbeddedRemainder()
		} else {
			p.fail("expected blank or '(' after 'or'")
		}
		children = append(children, child)
		p.lexBlank()
	}
	if len(children) > 1 {
		return &OrExpr{Pos: pos, Children: children}
	}
	return children[0]
}

func (p *parser) parseAnd() Expr {
	pos := p.pos
	p.lexBlank()
	children := []Expr{p.parseNot()}
	p.lexBlank()
	for p.lexStr("and") {
		var child Expr
		if p.lexBlank() {
			child = p.parseNot()
		} else if p.lexStr("(") {
			child = p.parseEmbeddedRemainder()
		} else {
			p.fail("expected blank or '(' after 'and'")
		}
		children = append(children, child)
		p.lexBlank()
	}
	if len(children) > 1 {
		return &AndExpr{Pos: pos, Children: children}
	}
	return children[0]
}

func (p *parser) parseNot() Expr {
	pos := p.pos
	p.lexBlank()
	negate := false
	for p.lexNotBlank() {
		negate = !negate
	}
	var child Expr
	if p.lexStr("not(") {
		negate = !negate
		child = p.parseEmbeddedRemainder()
	} else {
		child = p.parseCheck()
	}
	if negate {
		return &NotExpr{Pos: pos, Child: child}
	}
	return child
}

// parseEmbeddedRemainder parses "expr )" after an opening parenthesis.
func (p *parser) parseEmbeddedRemainder() Expr {
	p.lexBlank()
	child := p.parseOr()
	p.lexBlank()
	if !p.lexStr(")") {
		p.fail("expected a ')' token")
	}
	return child
}

func (p *parser) parseCheck() Expr {
	pos := p.pos
	p.lexBlank()
	if p.lexStr("(") {
		return p.parseEmbeddedRemainder()
	}
	if p.lexFieldName() {
		left := p.parseFieldRemainder(p.last, pos)
		return p.parseCondition(left, pos)
	}
	if p.lexTransformer() {
		p.lexBlank()
		left := p.parseTransformerRemainder(p.last, pos)
		return p.parseCondition(left, pos)
	}
	if p.lexIdentifier() {
		return &IdentifierExpr{Pos: pos, Name: p.last}
	}
	p.fail("expected a '(' token, a field check, or an identifier")
	return nil
}

// parseArg parses "arg ]" after a '[' opening a field or transformer argument.
func (p *parser) parseArg() (arg string, quoted bool) {
	ok, err := p.lexQuoted()
	p.check(err)
	quoted = ok
	if !ok && !p.lexFieldArgBare() {
		p.fail("expected a valid field argument: a quoted string or a bare string")
	}
	arg = p.last
	if !p.lexStr("]") {
		p.fail("expected a ']' token")
	}
	return arg, quoted
}

func (p *parser) parseFieldRemainder(name string, pos Pos) *FieldExpr {
	f := &FieldExpr{Pos: pos, Name: name}
	if p.lexStr("[") {
		f.Arg, f.ArgQuoted = p.parseArg()
		f.HasArg = true
	}
	return f
}

// parseTransformerRemainder parses "arg {, arg} ) [trailing-arg]" after
// "name(".
func (p *parser) parseTransformerRemainder(name string, pos Pos) *TransformerExpr {
	p.enter()
	defer p.leave()
	p.lexBlank()
	t := &TransformerExpr{Pos: pos, Name: name}
	for {
		t.Args = append(t.Args, p.parseTransformerArg(p.pos))
		p.lexBlank()
		if !p.lexStr(",") {
			break
		}
	}
	p.lexBlank()
	if !p.lexStr(")") {
		p.fail("expected a ')' token closing the transformer")
	}
	if p.lexStr("[") {
		t.Arg, t.ArgQuoted = p.parseArg()
		t.HasArg = true
	}
	return t
}

func (p *parser) lexQuotedValue(pos Pos) *ValueExpr {
	ok, err := p.lexQuoted()
	p.check(err)
	if ok {
		return &ValueExpr{Pos: pos, Value: p.last, Quoted: true}
	}
	return nil
}

func (p *parser) parseTransformerArg(pos Pos) Operand {
	p.lexBlank()
	if p.lexHexNum() || p.lexNum() {
		return &ValueExpr{Pos: pos, Value: p.last}
	}
	if v := p.lexQuotedValue(pos); v != nil {
		return v
	}
	if p.lexStr("(") {
		return p.parseTransformerList(pos)
	}
	if p.lexTransformer() {
		return p.parseTransformerRemainder(p.last, pos)
	}
	if p.lexFieldName() {
		return p.parseFieldRemainder(p.last, pos)
	}
	p.fail("expected field transformer argument: field, transformer, quoted string, number, or transformer list")
	return nil
}

// parseTransformerList parses a transformer's list argument after its '('.
// Like upstream, every element carries the list's position.
func (p *parser) parseTransformerList(pos Pos) Operand {
	var items []Operand
	p.lexBlank()
	if !p.lexStr(")") {
		items = append(items, p.parseTransformerListArg(pos))
		p.lexBlank()
		for p.lexStr(",") {
			p.lexBlank()
			items = append(items, p.parseTransformerListArg(pos))
			p.lexBlank()
		}
		if !p.lexStr(")") {
			p.fail("expected ')'")
		}
	}
	values := make([]*ValueExpr, 0, len(items))
	for _, it := range items {
		v, ok := it.(*ValueExpr)
		if !ok {
			return &ArgListExpr{Pos: pos, Items: items}
		}
		values = append(values, v)
	}
	return &ListExpr{Pos: pos, Items: values}
}

func (p *parser) parseTransformerListArg(pos Pos) Operand {
	if p.lexFieldName() {
		return p.parseFieldRemainder(p.last, pos)
	}
	if p.lexTransformer() {
		p.lexBlank()
		return p.parseTransformerRemainder(p.last, pos)
	}
	if v := p.lexQuotedValue(pos); v != nil {
		return v
	}
	if p.lexHexNum() || p.lexNum() {
		return &ValueExpr{Pos: pos, Value: p.last}
	}
	p.fail("expected transformer list argument: field, transformer, quoted string, or number")
	return nil
}

func (p *parser) parseCondition(left Operand, pos Pos) Expr {
	p.lexBlank()
	if p.lexOps(unaryOps) {
		return &CheckExpr{Pos: pos, Left: left, Op: p.last}
	}
	p.lexBlank()
	c := &CheckExpr{Pos: pos, Left: left}
	switch {
	case p.lexOps(numOps):
		c.Op = p.last
		c.Right = p.parseNumValueOrTransformer()
	case p.lexOps(strOps):
		c.Op = p.last
		if c.Modifier = p.lexModifier(c.Op); c.Modifier != "" {
			c.Right = p.parseModifierValue()
		} else {
			c.Right = p.parseStrValueOrTransformer(false)
		}
	case p.lexOps(listOps):
		c.Op = p.last
		c.Right = p.parseListValueOrTransformer()
	default:
		p.fail(msgCheckOperator)
	}
	return c
}

// lexModifier recognises "oneof", "anyof" or "allof" after a string operator
// (Falco 0.44). The word only counts as a modifier when a blank separates it
// from the operator, it is followed by a blank and then '(' or an identifier,
// and that identifier is not and/or/not; otherwise it is left to be lexed as
// an ordinary value, so `x = oneof` still compares with "oneof".
func (p *parser) lexModifier(op string) string {
	saved := p.lexer
	blank := p.lexBlank()
	if !blank {
		// Word operators have already consumed their mandatory blank.
		for _, o := range strOps {
			if o.text == op {
				blank = o.needsBlank
			}
		}
	}
	if blank {
		for _, m := range Modifiers {
			if !p.lexStr(m) {
				continue
			}
			if p.lexBlank() {
				if p.cur() == '(' {
					return m
				}
				if end := p.identEnd(p.pos.Idx); end > p.pos.Idx {
					switch p.in[p.pos.Idx:end] {
					case "and", "or", "not":
					default:
						return m
					}
				}
			}
			break
		}
	}
	p.lexer = saved
	return ""
}

// parseModifierValue parses the list or list identifier after a modifier.
func (p *parser) parseModifierValue() Operand {
	p.lexBlank()
	pos := p.pos
	if p.lexStr("(") {
		return p.parseListRemainder(pos)
	}
	if p.lexIdentifier() {
		return &ValueExpr{Pos: pos, Value: p.last}
	}
	p.fail("expected a list or an identifier")
	return nil
}

func (p *parser) parseNumValueOrTransformer() Operand {
	p.lexBlank()
	pos := p.pos
	if op := p.tryParseTransformerOrVal(); op != nil {
		return op
	}
	if p.lexHexNum() || p.lexNum() {
		return &ValueExpr{Pos: pos, Value: p.last}
	}
	p.fail("expected a number value or a field with a valid transformer: " + transformerNamesMsg)
	return nil
}

func (p *parser) parseStrValueOrTransformer(noTransformer bool) Operand {
	p.lexBlank()
	pos := p.pos
	if !noTransformer {
		if op := p.tryParseTransformerOrVal(); op != nil {
			return op
		}
	}
	if v := p.lexQuotedValue(pos); v != nil {
		return v
	}
	if p.lexBare() {
		return &ValueExpr{Pos: pos, Value: p.last}
	}
	if noTransformer {
		p.fail("expected a string value")
	}
	p.fail("expected a string value or a field with a valid transformer: " + transformerNamesMsg)
	return nil
}

func (p *parser) parseListValueOrTransformer() Operand {
	p.lexBlank()
	pos := p.pos
	if p.lexStr("(") {
		return p.parseListRemainder(pos)
	}
	if op := p.tryParseTransformerOrVal(); op != nil {
		return op
	}
	if p.lexIdentifier() {
		return &ValueExpr{Pos: pos, Value: p.last}
	}
	p.fail("expected a list, an identifier, or a field with a valid transformer: " + transformerNamesMsg)
	return nil
}

// tryHeadValue parses a list's first element, reporting failure instead of
// raising it: upstream catches any error there and takes the list to be
// empty. The cursor is not rewound, so `("\c")` parses as an empty list.
func (p *parser) tryHeadValue() (v *ValueExpr) {
	defer func() {
		if r := recover(); r != nil {
			if _, ok := r.(*ParseError); !ok {
				panic(r)
			}
			v = nil
		}
	}()
	return p.parseStrValueOrTransformer(true).(*ValueExpr)
}

// parseListRemainder parses "[v {, v}] )" after a list's '('. A trailing
// comma is an error ("expected a string value").
func (p *parser) parseListRemainder(pos Pos) *ListExpr {
	l := &ListExpr{Pos: pos}
	p.lexBlank()
	if head := p.tryHeadValue(); head != nil {
		l.Items = append(l.Items, head)
		p.lexBlank()
		for p.lexStr(",") {
			l.Items = append(l.Items, p.parseStrValueOrTransformer(true).(*ValueExpr))
			p.lexBlank()
		}
	}
	if !p.lexStr(")") {
		p.fail("expected a ')' token")
	}
	return l
}

// tryParseTransformerOrVal parses val(field) or a transformer on a check's
// RHS, or returns nil without consuming anything but blanks.
func (p *parser) tryParseTransformerOrVal() Operand {
	p.lexBlank()
	pos := p.pos
	if p.lexStr("val(") {
		p.last = "val"
		p.lexBlank()
		fieldPos := p.pos
		if !p.lexFieldName() {
			p.fail("expected a field within 'val' transformer")
		}
		f := p.parseFieldRemainder(p.last, fieldPos)
		f.Val, f.ValPos = true, pos
		p.lexBlank()
		if !p.lexStr(")") {
			p.fail("expected a ')' token closing the transformer")
		}
		if p.lexStr("[") {
			f.ValArg, f.ValArgQuoted = p.parseArg()
			f.HasValArg = true
		}
		return f
	}
	if p.lexTransformer() {
		p.lexBlank()
		return p.parseTransformerRemainder(p.last, pos)
	}
	return nil
}
