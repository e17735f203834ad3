package condition

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// TestParseCanonical checks accepted inputs through their canonical form,
// which spells out how the input was understood.
func TestParseCanonical(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		// Operators and blanks.
		{"symbol op without blanks", "ka.verb=get", "ka.verb = get"},
		{"double equals", "ka.verb==get", "ka.verb == get"},
		{"not equals", "ka.verb!=get", "ka.verb != get"},
		{"word op", "ka.uri startswith /healthz?", "ka.uri startswith /healthz?"},
		{"every word op", "a.b glob x or a.b iglob x or a.b contains x or a.b icontains x or a.b bcontains 0a or a.b bstartswith 0a or a.b endswith x or a.b regex x",
			"a.b glob x or a.b iglob x or a.b contains x or a.b icontains x or a.b bcontains 0a or a.b bstartswith 0a or a.b endswith x or a.b regex x"},
		{"word op blank can be a newline", "a.b contains\nx", "a.b contains x"},
		{"list op without blank", "a.b in(x,y)", "a.b in (x, y)"},
		{"pmatch without blank", "a.b pmatch(/x)", "a.b pmatch (/x)"},
		{"intersects", "a.b intersects (\"*\")", `a.b intersects ("*")`},
		{"list op glued to identifier", "a.b inlist", "a.b in list"},
		{"word op without blank falls through to list op", "a.b containsin (x)", "a.b in (x)"},
		{"exists", "a.b exists", "a.b exists"},
		{"blanks include backspace", "a.b\b=\bc", "a.b = c"},
		// Values.
		{"bare value charset", "ka.user.name=system:anonymous", "ka.user.name = system:anonymous"},
		{"bare value with glob chars", "a.b = /usr/*?[x]", "a.b = /usr/*?[x]"},
		{"dotted bare value is a value", "a.b contains org.apache.Daemon", "a.b contains org.apache.Daemon"},
		{"number as string operand", "ka.response.code startswith 2", "ka.response.code startswith 2"},
		{"negative bare", "fd.num=-1", "fd.num = -1"},
		{"single quoted", "fd.typechar='f'", `fd.typechar = "f"`},
		{"quoted with spaces", `a.b = "x y"`, `a.b = "x y"`},
		{"escapes", `a.b = "\b\f\n\r\t\\\/"`, `a.b = "\b\f\n\r\t\\/"`},
		{"escaped double quote", `a.b startswith "sh -c \"/run\" x"`, `a.b startswith "sh -c \"/run\" x"`},
		{"escaped single quote", `a.b = 'it\'s'`, `a.b = "it's"`},
		{"backslash space legacy quirk", `a.b = 'a\ b'`, `a.b = "a\\b"`},
		{"trailing backslash via legacy escape", `a.b = "a\ "`, `a.b = "a\ "`},
		{"value named like an operator modifier", "a.b = oneof", "a.b = oneof"},
		{"value named and", "a.b = and and c.d = or", "a.b = and and c.d = or"},
		{"bare value next to quote ends", `a.b = x"y"`, ""}, // error case, see TestParseErrors
		// Numbers after numeric operators.
		{"hex number", "a.b > 0x1F", "a.b > 0x1F"},
		{"float exponent", "a.b <= -1.5e+3", "a.b <= -1.5e+3"},
		{"plus sign", "a.b >= +7", "a.b >= +7"},
		{"big number", "proc.duration <= 5000000000", "proc.duration <= 5000000000"},
		// Lists.
		{"empty list", "a.b in ()", "a.b in ()"},
		{"empty list with blanks", "a.b in ( )", "a.b in ()"},
		{"list mixed quoting", `a.b in (x, "y z", 'w')`, `a.b in (x, "y z", "w")`},
		{"list over lines", "a.b in (x,\n  y)", "a.b in (x, y)"},
		{"bad escape in list head reads as empty list", `a.b in ("\c")`, "a.b in ()"},
		{"identifier after in", "a.b in known_users", "a.b in known_users"},
		// Boolean structure and precedence.
		{"and binds tighter", "a or b and not c", "a or b and not c"},
		{"n-ary and", "a and b and c", "a and b and c"},
		{"nested and kept", "(a and b) and c", "(a and b) and c"},
		{"nested or kept", "a or (b or c)", "a or (b or c)"},
		{"and after paren", "(a)and(b)", "a and b"},
		{"or paren without blank", "a or(b)", "a or b"},
		{"not paren", "not(a)", "not a"},
		{"double not cancels", "not not a", "a"},
		{"not not paren cancels", "not not(a)", "a"},
		{"not of not", "not (not a)", "not (not a)"},
		{"not blanks", "not\t\n a", "not a"},
		{"notx is an identifier", "notx", "notx"},
		{"not exists binds to check", "not a.b exists", "not a.b exists"},
		{"keywords are lowercase only", "AND", "AND"},
		{"macro named not", "(not) and b", "(not) and b"},
		{"negated macro named not", "not (not)", "not (not)"},
		{"leading and trailing blanks", "  a \n", "a"},
		// Fields and arguments.
		{"field arg bare", "jevt.value[/requestObject/spec/tls] exists", "jevt.value[/requestObject/spec/tls] exists"},
		{"field arg index", "proc.aname[2]=x", "proc.aname[2] = x"},
		{"field arg with glob", "container.mount.dest[/proc*] != x", "container.mount.dest[/proc*] != x"},
		{"field arg quoted", `ka.req.x["a b"] exists`, `ka.req.x["a b"] exists`},
		{"field arg with = and ,", "a.b[k=v,w] exists", "a.b[k=v,w] exists"},
		{"greedy field name", "a.b.c_1.D2 exists", "a.b.c_1.D2 exists"},
		// Transformers and val().
		{"transformer lhs", "tolower(a.b) = x", "tolower(a.b) = x"},
		{"nested transformers", "toupper( basename(a.b) ) = X", "toupper(basename(a.b)) = X"},
		{"transformer rhs", "a.b = tolower(c.d)", "a.b = tolower(c.d)"},
		{"val rhs", "a.b = val(c.d)", "a.b = val(c.d)"},
		{"val rhs with arg", "a.b = val(c.d[1])", "a.b = val(c.d[1])"},
		{"len numeric", "len(a.b) > len(c.d)", "len(a.b) > len(c.d)"},
		{"transformer list rhs", "a.b in tolower(c.d)", "a.b in tolower(c.d)"},
		{"join", `join(",", a.b) = x`, `join(",", a.b) = x`},
		{"concat with list", `concat(a.b, "x", ("y", 1)) = z`, `concat(a.b, "x", ("y", 1)) = z`},
		{"transformer list with field", "concat((a.b, 'q')) = z", `concat((a.b, "q")) = z`},
		{"getopt trailing arg", `getopt(proc.args, "ab:")[b] = x`, `getopt(proc.args, "ab:")[b] = x`},
		{"val trailing arg", "a.b = val(c.d)[0]", "a.b = val(c.d)[0]"},
		{"transformer name without paren is a macro", "tolower", "tolower"},
		// 0.44 modifiers.
		{"modifier list", "a.b = oneof (x, y)", "a.b = oneof (x, y)"},
		{"modifier identifier", "a.b contains anyof my_list", "a.b contains anyof my_list"},
		{"modifier allof", "a.b startswith allof (x)", "a.b startswith allof (x)"},
		{"modifier needs blank before", "a.b =oneof", "a.b = oneof"},
		{"modifier followed by and is a value", "a.b = oneof and c", "a.b = oneof and c"},
		{"modifier followed by or is a value", "a.b = anyof or c", "a.b = anyof or c"},
		{"modifier at end is a value", "a.b != allof", "a.b != allof"},
	}
	for _, tc := range tests {
		if tc.want == "" {
			continue
		}
		t.Run(tc.name, func(t *testing.T) {
			e, err := Parse(tc.in)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tc.in, err)
			}
			if got := e.String(); got != tc.want {
				t.Fatalf("Parse(%q).String() = %q, want %q", tc.in, got, tc.want)
			}
			e2, err := Parse(e.String())
			if err != nil {
				t.Fatalf("canonical form does not re-parse: %v", err)
			}
			if !equalIgnoringPos(e, e2) {
				t.Fatalf("canonical form re-parses to a different tree")
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		in, msg string
		pos     Pos
	}{
		{"", "filter input string is empty", Pos{0, 1, 1}},
		{"  ", "expected a '(' token, a field check, or an identifier", Pos{2, 1, 3}},
		{"a andb", "expected blank or '(' after 'and'", Pos{5, 1, 6}},
		{"a and", "expected blank or '(' after 'and'", Pos{5, 1, 6}},
		{"a orx", "expected blank or '(' after 'or'", Pos{4, 1, 5}},
		{"a and ", "expected a '(' token, a field check, or an identifier", Pos{6, 1, 7}},
		{"a AND b", "unexpected token after 'a', expecting 'or', 'and'", Pos{2, 1, 3}},
		{"a b", "unexpected token after 'a', expecting 'or', 'and'", Pos{2, 1, 3}},
		{"(a) b", "unexpected token after ')', expecting 'or', 'and'", Pos{4, 1, 5}},
		{`a.b = "x" y`, "unexpected token after 'x', expecting 'or', 'and'", Pos{10, 1, 11}},
		{"a.b exists x", "unexpected token after 'exists', expecting 'or', 'and'", Pos{11, 1, 12}},
		{"a.b existsx", "unexpected token after 'exists', expecting 'or', 'and'", Pos{10, 1, 11}},
		{"a.b > 5abc", "unexpected token after '5', expecting 'or', 'and'", Pos{7, 1, 8}},
		{"a.b = x\nand\r\nc.d = y z", "unexpected token after 'y', expecting 'or', 'and'", Pos{21, 4, 9}},
		{"a.b =oneof (x)", "unexpected token after 'oneof', expecting 'or', 'and'", Pos{11, 1, 12}},
		{`a.b = x"y"`, "unexpected token after 'x', expecting 'or', 'and'", Pos{7, 1, 8}},
		{"(a", "expected a ')' token", Pos{2, 1, 3}},
		{"not(a", "expected a ')' token", Pos{5, 1, 6}},
		{"a.b", "expected a valid check operator: one of 'exists', '<=', '<', '>=', '>', '==', '=', '!=', 'glob', 'iglob', 'contains', 'icontains', 'bcontains', 'startswith', 'bstartswith', 'endswith', 'regex', 'intersects', 'in', 'pmatch'", Pos{3, 1, 4}},
		{"a.b contains(x)", msgCheckOperator, Pos{12, 1, 13}},
		{"a.b startswith", msgCheckOperator, Pos{14, 1, 15}},
		{"a.b ~ x", msgCheckOperator, Pos{4, 1, 5}},
		{"a.b = ", "expected a string value or a field with a valid transformer: 'val', 'tolower', 'toupper', 'b64', 'basename', 'len', 'join', 'concat', 'getopt'", Pos{6, 1, 7}},
		{`a.b = "unterminated`, "expected a string value or a field with a valid transformer: " + transformerNamesMsg, Pos{6, 1, 7}},
		{`a.b = "x\\" and c.d = "y"`, "unexpected token after 'x\\\" and c.d = ', expecting 'or', 'and'", Pos{23, 1, 24}},
		{"a.b > x", "expected a number value or a field with a valid transformer: " + transformerNamesMsg, Pos{6, 1, 7}},
		{"a.b in _x", "expected a list, an identifier, or a field with a valid transformer: " + transformerNamesMsg, Pos{7, 1, 8}},
		{"a.b in /usr/bin", "expected a list, an identifier, or a field with a valid transformer: " + transformerNamesMsg, Pos{7, 1, 8}},
		{"a.b in (x,)", "expected a string value", Pos{10, 1, 11}},
		{"a.b in (x y)", "expected a ')' token", Pos{10, 1, 11}},
		{"a.b in (,x)", "expected a ')' token", Pos{8, 1, 9}},
		{`a.b in ("\c", x)`, "expected a ')' token", Pos{12, 1, 13}},
		{`a.b in (x, "\c")`, `unsupported string escape sequence: \c`, Pos{15, 1, 16}},
		{"a.b in (x", "expected a ')' token", Pos{9, 1, 10}},
		{`a.b = "\q"`, `unsupported string escape sequence: \q`, Pos{10, 1, 11}},
		{`a.b = "\x41"`, `unsupported string escape sequence: \x`, Pos{12, 1, 13}},
		{`a.b = '\"'`, `invalid \" escape in '-quoted string`, Pos{10, 1, 11}},
		{`a.b = "\'"`, `invalid \' escape in "-quoted string`, Pos{10, 1, 11}},
		{"a.b[] exists", "expected a valid field argument: a quoted string or a bare string", Pos{4, 1, 5}},
		{"a.b[x y] exists", "expected a ']' token", Pos{5, 1, 6}},
		{`a.b["\c"] exists`, `unsupported string escape sequence: \c`, Pos{8, 1, 9}},
		{"tolower(a) = x", "expected field transformer argument: field, transformer, quoted string, number, or transformer list", Pos{8, 1, 9}},
		{"tolower(a.b = x", "expected a ')' token closing the transformer", Pos{12, 1, 13}},
		{"concat((a.b, x)) = y", "expected transformer list argument: field, transformer, quoted string, or number", Pos{13, 1, 14}},
		{"concat((a.b 1)) = y", "expected ')'", Pos{12, 1, 13}},
		{"a.b = val(c)", "expected a field within 'val' transformer", Pos{10, 1, 11}},
		{"a.b = val(c.d", "expected a ')' token closing the transformer", Pos{13, 1, 14}},
		{"val(a.b) = x", "unexpected token after 'val', expecting 'or', 'and'", Pos{3, 1, 4}},
		{"tolower (a.b) = x", "unexpected token after 'tolower', expecting 'or', 'and'", Pos{8, 1, 9}},
		{"a.b = oneof (x,)", "expected a string value", Pos{15, 1, 16}},
		{strings.Repeat("(", MaxDepth) + "a" + strings.Repeat(")", MaxDepth), "exceeded max depth limit of 1000", Pos{999, 1, 1000}},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			e, err := Parse(tc.in)
			if err == nil {
				t.Fatalf("Parse(%q) = %s, want error %q", tc.in, e, tc.msg)
			}
			pe, ok := err.(*ParseError)
			if !ok {
				t.Fatalf("error type %T", err)
			}
			if pe.Msg != tc.msg || pe.Error() != tc.msg {
				t.Errorf("message %q, want %q", pe.Msg, tc.msg)
			}
			if pe.Pos != tc.pos {
				t.Errorf("pos %+v, want %+v", pe.Pos, tc.pos)
			}
		})
	}
}

func TestDepthLimitBoundary(t *testing.T) {
	ok := strings.Repeat("(", MaxDepth-2) + "a" + strings.Repeat(")", MaxDepth-2)
	if _, err := Parse(ok); err != nil {
		t.Fatalf("nesting %d: %v", MaxDepth-2, err)
	}
	deep := strings.Repeat("tolower(", MaxDepth) + "a.b" + strings.Repeat(")", MaxDepth) + " = x"
	if _, err := Parse(deep); err == nil || err.Error() != "exceeded max depth limit of 1000" {
		t.Fatalf("deep transformers: %v", err)
	}
}

func TestParseTree(t *testing.T) {
	e, err := Parse("not a.b[k] in (x, 'y') and\n  tolower(c.d) = val(e.f)")
	if err != nil {
		t.Fatal(err)
	}
	want := &AndExpr{Pos: Pos{0, 1, 1}, Children: []Expr{
		&NotExpr{Pos: Pos{0, 1, 1}, Child: &CheckExpr{
			Pos:  Pos{4, 1, 5},
			Left: &FieldExpr{Pos: Pos{4, 1, 5}, Name: "a.b", Arg: "k", HasArg: true},
			Op:   "in",
			Right: &ListExpr{Pos: Pos{14, 1, 15}, Items: []*ValueExpr{
				{Pos: Pos{15, 1, 16}, Value: "x"},
				{Pos: Pos{18, 1, 19}, Value: "y", Quoted: true},
			}},
		}},
		&CheckExpr{
			Pos:   Pos{29, 2, 3},
			Left:  &TransformerExpr{Pos: Pos{29, 2, 3}, Name: "tolower", Args: []Operand{&FieldExpr{Pos: Pos{37, 2, 11}, Name: "c.d"}}},
			Op:    "=",
			Right: &FieldExpr{Pos: Pos{48, 2, 22}, Name: "e.f", Val: true, ValPos: Pos{44, 2, 18}},
		},
	}}
	if !reflect.DeepEqual(e, want) {
		t.Fatalf("tree mismatch:\n got %s\nwant %s", dump(e), dump(want))
	}
}

func TestModifierAndArgsTree(t *testing.T) {
	e, err := Parse(`a.b contains anyof (x, "y") and getopt(c.d, "ab:")["b"] = z`)
	if err != nil {
		t.Fatal(err)
	}
	and := e.(*AndExpr)
	c0 := and.Children[0].(*CheckExpr)
	if c0.Op != "contains" || c0.Modifier != "anyof" || len(c0.Right.(*ListExpr).Items) != 2 {
		t.Fatalf("modifier check: %#v", c0)
	}
	tr := and.Children[1].(*CheckExpr).Left.(*TransformerExpr)
	if tr.Name != "getopt" || !tr.HasArg || tr.Arg != "b" || !tr.ArgQuoted || len(tr.Args) != 2 {
		t.Fatalf("getopt: %#v", tr)
	}
	if v := tr.Args[1].(*ValueExpr); v.Value != "ab:" || !v.Quoted {
		t.Fatalf("getopt optstring: %#v", v)
	}
	e, err = Parse("concat((a.b, 1)) = x")
	if err != nil {
		t.Fatal(err)
	}
	al := e.(*CheckExpr).Left.(*TransformerExpr).Args[0].(*ArgListExpr)
	if _, ok := al.Items[0].(*FieldExpr); !ok || al.Items[1].(*ValueExpr).Value != "1" {
		t.Fatalf("arg list: %#v", al)
	}
}

func TestWalk(t *testing.T) {
	e, err := Parse("a or not (b and c.d exists) or (e)")
	if err != nil {
		t.Fatal(err)
	}
	var seen []string
	Walk(e, func(n Expr) bool {
		seen = append(seen, reflect.TypeOf(n).Elem().Name())
		_, isNot := n.(*NotExpr)
		return !isNot || len(seen) > 100
	})
	want := []string{"OrExpr", "IdentifierExpr", "NotExpr", "IdentifierExpr"}
	if !reflect.DeepEqual(seen, want) {
		t.Fatalf("walk order %v, want %v", seen, want)
	}
	var ids []string
	Walk(e, func(n Expr) bool {
		if id, ok := n.(*IdentifierExpr); ok {
			ids = append(ids, id.Name)
		}
		return true
	})
	if strings.Join(ids, ",") != "a,b,e" {
		t.Fatalf("identifiers %v", ids)
	}
}

func TestParseOperandPrefix(t *testing.T) {
	tests := []struct {
		in   string
		want string
		n    int
		err  string
	}{
		{"ka.target.name/%ka.target.resource", "ka.target.name", 14, ""},
		{"ka.uri.param[command] rest", "ka.uri.param[command]", 21, ""},
		{"jevt.value[/requestObject/spec/volumes])", "jevt.value[/requestObject/spec/volumes]", 39, ""},
		{"ka.user.name.", "ka.user.name", 12, ""},
		{"toupper( ka.verb ) x", "toupper(ka.verb)", 18, ""},
		{`getopt(a.b, "x:")[x]!`, `getopt(a.b, "x:")[x]`, 20, ""},
		{"verb", "", 0, "unexpected token after '"},
		{"ka.uri.param[x", "", 0, "expected a ']' token"},
	}
	for _, tc := range tests {
		op, n, err := ParseOperandPrefix(tc.in)
		if tc.err != "" {
			if err == nil || err.Error() != tc.err {
				t.Errorf("ParseOperandPrefix(%q) error %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseOperandPrefix(%q): %v", tc.in, err)
			continue
		}
		if op.String() != tc.want || n != tc.n {
			t.Errorf("ParseOperandPrefix(%q) = %q, %d; want %q, %d", tc.in, op.String(), n, tc.want, tc.n)
		}
	}
}

func TestQuoteRoundTrip(t *testing.T) {
	for _, s := range []string{"", `\`, `a\`, `a\\`, `"`, `\"`, "x\ny\tz", `it's`, "\b\f\r"} {
		in := "a.b = " + Quote(s)
		e, err := Parse(in)
		if err != nil {
			t.Fatalf("Parse(%q): %v", in, err)
		}
		if got := e.(*CheckExpr).Right.(*ValueExpr).Value; got != s {
			t.Fatalf("Quote(%q) parsed back as %q", s, got)
		}
	}
}

func TestExportedLists(t *testing.T) {
	if len(CheckOperators) != 20 || CheckOperators[0] != "exists" || CheckOperators[19] != "pmatch" {
		t.Fatalf("CheckOperators = %v", CheckOperators)
	}
	if len(StringOperators) != 12 || len(Transformers) != 8 {
		t.Fatalf("StringOperators %v, Transformers %v", StringOperators, Transformers)
	}
}

// equalIgnoringPos compares two trees by structure and content.
func equalIgnoringPos(a, b Expr) bool {
	return reflect.DeepEqual(stripPos(a), stripPos(b))
}

func stripPos(n any) any {
	switch v := n.(type) {
	case *AndExpr:
		c := &AndExpr{}
		for _, ch := range v.Children {
			c.Children = append(c.Children, stripPos(ch).(Expr))
		}
		return c
	case *OrExpr:
		c := &OrExpr{}
		for _, ch := range v.Children {
			c.Children = append(c.Children, stripPos(ch).(Expr))
		}
		return c
	case *NotExpr:
		return &NotExpr{Child: stripPos(v.Child).(Expr)}
	case *IdentifierExpr:
		return &IdentifierExpr{Name: v.Name}
	case *CheckExpr:
		c := *v
		c.Pos = Pos{}
		c.Left = stripPos(v.Left).(Operand)
		if v.Right != nil {
			c.Right = stripPos(v.Right).(Operand)
		}
		return &c
	case *FieldExpr:
		c := *v
		c.Pos, c.ValPos = Pos{}, Pos{}
		return &c
	case *TransformerExpr:
		c := *v
		c.Pos = Pos{}
		c.Args = nil
		for _, a := range v.Args {
			c.Args = append(c.Args, stripPos(a).(Operand))
		}
		return &c
	case *ValueExpr:
		c := *v
		c.Pos = Pos{}
		return &c
	case *ListExpr:
		c := &ListExpr{}
		for _, it := range v.Items {
			c.Items = append(c.Items, stripPos(it).(*ValueExpr))
		}
		return c
	case *ArgListExpr:
		c := &ArgListExpr{}
		for _, it := range v.Items {
			c.Items = append(c.Items, stripPos(it).(Operand))
		}
		return c
	}
	return n
}

// dump renders a tree with positions for failure messages.
func dump(n any) string {
	switch v := n.(type) {
	case *AndExpr:
		return fmt.Sprintf("And%v%v", v.Pos, dumpList(v.Children))
	case *OrExpr:
		return fmt.Sprintf("Or%v%v", v.Pos, dumpList(v.Children))
	case *NotExpr:
		return fmt.Sprintf("Not%v(%s)", v.Pos, dump(v.Child))
	case *CheckExpr:
		return fmt.Sprintf("Check%v(%s %q %q %s)", v.Pos, dump(v.Left), v.Op, v.Modifier, dump(v.Right))
	case *TransformerExpr:
		return fmt.Sprintf("%+v(%s)", *v, dumpList(v.Args))
	case *ListExpr:
		return fmt.Sprintf("List%v%v", v.Pos, dumpList(v.Items))
	case nil:
		return "nil"
	}
	return fmt.Sprintf("%+v", n)
}

func dumpList[T any](items []T) string {
	var parts []string
	for _, it := range items {
		parts = append(parts, dump(it))
	}
	return "[" + strings.Join(parts, ", ") + "]"
}
