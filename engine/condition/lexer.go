package condition

import "strings"

// The lexer mirrors libsinsp's: every lex* method either consumes a token,
// advancing the position and recording it as the last token (used verbatim in
// "unexpected token after '...'" errors), or leaves the state untouched.
// libsinsp's token regexes run under RE2 POSIX (leftmost-longest) semantics;
// the hand-written scanners below consume the same longest prefixes.

// opSpec is an operator as libsinsp lists it: word operators must be followed
// by at least one blank, symbol and list operators need not be.
type opSpec struct {
	text       string
	needsBlank bool
}

var (
	unaryOps = []opSpec{{"exists", false}}
	numOps   = []opSpec{{"<=", false}, {"<", false}, {">=", false}, {">", false}}
	strOps   = []opSpec{
		{"==", false}, {"=", false}, {"!=", false},
		{"glob", true}, {"iglob", true}, {"contains", true}, {"icontains", true},
		{"bcontains", true}, {"startswith", true}, {"bstartswith", true},
		{"endswith", true}, {"regex", true},
	}
	listOps = []opSpec{{"intersects", false}, {"in", false}, {"pmatch", false}}
)

// CheckOperators lists every check operator in libsinsp's order (the order
// used by the "expected a valid check operator" error).
var CheckOperators = func() []string {
	var out []string
	for _, l := range [][]opSpec{unaryOps, numOps, strOps, listOps} {
		for _, o := range l {
			out = append(out, o.text)
		}
	}
	return out
}()

// StringOperators are the operators that accept a modifier (oneof/anyof/allof).
var StringOperators = func() []string {
	out := make([]string, len(strOps))
	for i, o := range strOps {
		out[i] = o.text
	}
	return out
}()

// ListOperators are the operators whose RHS is a list.
var ListOperators = []string{"intersects", "in", "pmatch"}

// Modifiers are the 0.44 string-operator modifiers.
var Modifiers = []string{"oneof", "anyof", "allof"}

// Transformers lists the field transformers in libsinsp's order, without the
// RHS-only identity transformer "val".
var Transformers = []string{"tolower", "toupper", "b64", "basename", "len", "join", "concat", "getopt"}

var transformersWithVal = append([]string{"val"}, Transformers...)

// quotedList renders names as libsinsp's token_list_to_str does: 'a', 'b'.
func quotedList(names []string) string {
	var b strings.Builder
	for i, n := range names {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("'" + n + "'")
	}
	return b.String()
}

var (
	msgCheckOperator    = "expected a valid check operator: one of " + quotedList(CheckOperators)
	transformerNamesMsg = quotedList(transformersWithVal)
)

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
func isDigit(c byte) bool  { return c >= '0' && c <= '9' }
func isIdentChar(c byte) bool {
	return isLetter(c) || isDigit(c) || c == '_'
}
func isHexDigit(c byte) bool {
	return isDigit(c) || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// isBlank is the set lex_blank skips between tokens. Note it includes '\b'
// but, unlike POSIX [:space:], not '\v' or '\f'.
func isBlank(c byte) bool {
	return c == ' ' || c == '\t' || c == '\b' || c == '\r' || c == '\n'
}

// isSpaceClass is POSIX [[:space:]] as RE2 defines it (ASCII only).
func isSpaceClass(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'
}

// isBareChar matches one byte of [^()"'[:space:]=,]. Bytes >= 0x80 are
// accepted so that non-ASCII text can appear in bare values.
func isBareChar(c byte) bool {
	switch c {
	case '(', ')', '"', '\'', '=', ',':
		return false
	}
	return !isSpaceClass(c)
}

// isFieldArgBareChar matches one byte of [^][\"'[:space:]].
func isFieldArgBareChar(c byte) bool {
	switch c {
	case '[', ']', '"', '\'':
		return false
	}
	return !isSpaceClass(c)
}

type lexer struct {
	in   string
	pos  Pos
	last string // libsinsp's m_last_token
}

// cur returns the byte under the cursor, or 0 past the end like a C string.
func (l *lexer) cur() byte {
	if l.pos.Idx < len(l.in) {
		return l.in[l.pos.Idx]
	}
	return 0
}

func (l *lexer) at(i int) byte {
	if i < len(l.in) {
		return l.in[i]
	}
	return 0
}

// advance moves the cursor by n bytes, keeping line/column like update_pos.
func (l *lexer) advance(n int) {
	for ; n > 0; n-- {
		c := l.in[l.pos.Idx]
		l.pos.Col++
		if c == '\r' || c == '\n' {
			l.pos.Col = 1
			l.pos.Line++
		}
		l.pos.Idx++
	}
}

// take consumes n bytes as a token.
func (l *lexer) take(n int) {
	l.last = l.in[l.pos.Idx : l.pos.Idx+n]
	l.advance(n)
}

// lexBlank is the only lexing method that does not update the last token.
func (l *lexer) lexBlank() bool {
	found := false
	for l.pos.Idx < len(l.in) && isBlank(l.in[l.pos.Idx]) {
		l.advance(1)
		found = true
	}
	return found
}

func (l *lexer) lexStr(s string) bool {
	if strings.HasPrefix(l.in[l.pos.Idx:], s) {
		l.take(len(s))
		return true
	}
	return false
}

// lexOps implements lex_helper_operator_list. Its quirk is kept: a word
// operator that matches but is not followed by a blank returns false without
// rewinding, so the caller continues lexing after the operator's text.
func (l *lexer) lexOps(ops []opSpec) bool {
	for _, o := range ops {
		if !o.needsBlank {
			if l.lexStr(o.text) {
				return true
			}
			continue
		}
		if l.lexStr(o.text) {
			return l.lexBlank()
		}
	}
	return false
}

// lexNotBlank matches (not[[:space:]]+).
func (l *lexer) lexNotBlank() bool {
	if !strings.HasPrefix(l.in[l.pos.Idx:], "not") {
		return false
	}
	i := l.pos.Idx + 3
	for i < len(l.in) && isSpaceClass(l.in[i]) {
		i++
	}
	if i == l.pos.Idx+3 {
		return false
	}
	l.take(i - l.pos.Idx)
	return true
}

// identEnd returns the end of [a-zA-Z]+[a-zA-Z0-9_]* starting at i, or i.
func (l *lexer) identEnd(i int) int {
	if !isLetter(l.at(i)) {
		return i
	}
	i++
	for i < len(l.in) && isIdentChar(l.in[i]) {
		i++
	}
	return i
}

func (l *lexer) lexIdentifier() bool {
	if end := l.identEnd(l.pos.Idx); end > l.pos.Idx {
		l.take(end - l.pos.Idx)
		return true
	}
	return false
}

// fieldNameEnd returns the end of the longest field name at i, or i. A field
// name is an identifier followed by one or more ".identifier" segments.
func (l *lexer) fieldNameEnd(i int) int {
	end := l.identEnd(i)
	if end == i {
		return i
	}
	segs := 0
	for l.at(end) == '.' && isLetter(l.at(end+1)) {
		end = l.identEnd(end + 1)
		segs++
	}
	if segs == 0 {
		return i
	}
	return end
}

func (l *lexer) lexFieldName() bool {
	if end := l.fieldNameEnd(l.pos.Idx); end > l.pos.Idx {
		l.take(end - l.pos.Idx)
		return true
	}
	return false
}

func (l *lexer) lexWhile(pred func(byte) bool) bool {
	i := l.pos.Idx
	for i < len(l.in) && pred(l.in[i]) {
		i++
	}
	if i == l.pos.Idx {
		return false
	}
	l.take(i - l.pos.Idx)
	return true
}

func (l *lexer) lexBare() bool         { return l.lexWhile(isBareChar) }
func (l *lexer) lexFieldArgBare() bool { return l.lexWhile(isFieldArgBareChar) }

// lexHexNum matches 0[xX][0-9a-fA-F]+.
func (l *lexer) lexHexNum() bool {
	i := l.pos.Idx
	if l.at(i) != '0' || (l.at(i+1) != 'x' && l.at(i+1) != 'X') || !isHexDigit(l.at(i+2)) {
		return false
	}
	i += 3
	for isHexDigit(l.at(i)) {
		i++
	}
	l.take(i - l.pos.Idx)
	return true
}

// lexNum matches [+-]?[0-9]+\.?[0-9]*([eE][+-][0-9]+)?.
func (l *lexer) lexNum() bool {
	i := l.pos.Idx
	if c := l.at(i); c == '+' || c == '-' {
		i++
	}
	if !isDigit(l.at(i)) {
		return false
	}
	for isDigit(l.at(i)) {
		i++
	}
	if l.at(i) == '.' {
		i++
	}
	for isDigit(l.at(i)) {
		i++
	}
	if c := l.at(i); (c == 'e' || c == 'E') && (l.at(i+1) == '+' || l.at(i+1) == '-') && isDigit(l.at(i+2)) {
		i += 3
		for isDigit(l.at(i)) {
			i++
		}
	}
	l.take(i - l.pos.Idx)
	return true
}

// lexQuoted lexes a '...' or "..." string and unescapes it. Like libsinsp it
// ends the string at the first delimiter whose preceding raw byte is not a
// backslash (so `"a\\"` does not end at its last quote) and stops at a NUL
// byte as a C string would. On an unterminated string the cursor is restored
// but the last token keeps the partial text, as upstream does. An unescaping
// error is returned with the cursor already past the string.
func (l *lexer) lexQuoted() (bool, error) {
	delim := l.cur()
	if delim != '"' && delim != '\'' {
		return false, nil
	}
	start := l.pos.Idx
	prev := byte('\\') // so the opening delimiter never closes the string
	for i := start; i < len(l.in) && l.in[i] != 0; i++ {
		c := l.in[i]
		if c == delim && prev != '\\' {
			raw := l.in[start : i+1]
			l.last = raw
			l.advance(i + 1 - start)
			v, err := unescape(raw)
			if err != nil {
				return true, err
			}
			l.last = v
			return true, nil
		}
		prev = c
	}
	end := start
	for end < len(l.in) && l.in[end] != 0 {
		end++
	}
	l.last = l.in[start:end]
	return false, nil
}

// unescape decodes the body of a quoted token (delimiters included in raw).
func unescape(raw string) (string, error) {
	delim := raw[0]
	body := raw[1 : len(raw)-1]
	if strings.IndexByte(body, '\\') < 0 {
		return body, nil
	}
	var b strings.Builder
	b.Grow(len(body))
	escaped := false
	for i := 0; i < len(body); i++ {
		c := body[i]
		if !escaped {
			if c == '\\' {
				escaped = true
			} else {
				b.WriteByte(c)
			}
			continue
		}
		escaped = false
		switch c {
		case 'b':
			b.WriteByte('\b')
		case 'f':
			b.WriteByte('\f')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 't':
			b.WriteByte('\t')
		case ' ', '\\':
			// "\ " yields a single backslash: a legacy quirk kept upstream for
			// old, wrongly escaped rules.
			b.WriteByte('\\')
		case '/':
			b.WriteByte('/')
		case '"':
			if delim != '"' {
				return "", errorString(`invalid \" escape in '-quoted string`)
			}
			b.WriteByte('"')
		case '\'':
			if delim != '\'' {
				return "", errorString(`invalid \' escape in "-quoted string`)
			}
			b.WriteByte('\'')
		default:
			return "", errorString(`unsupported string escape sequence: \` + string(c))
		}
	}
	return b.String(), nil
}

type errorString string

func (e errorString) Error() string { return string(e) }
