// Package condition owns the syntax of Falco filter conditions: a lexer and a
// recursive-descent parser that turn condition text into an AST, plus a
// canonical printer (String) whose output re-parses to an equal tree.
//
// It accepts exactly what libsinsp's filter parser (Falco 0.44, libs 0.25)
// accepts, 0.44 transformers and string-operator modifiers included, and
// reproduces its error messages and error positions. The parser's quirks are
// deliberate and kept, among them: word operators need a trailing blank while
// symbol and list operators do not (so `x in(a)` and `x inlist` parse);
// and/or need a blank or '(' after them; "not(" is a form of its own; a
// string ending in an escaped backslash does not terminate; "\ " unescapes to
// a backslash; a list whose first element fails to parse is taken as empty.
//
// The package knows nothing about lists, macros or fields: list names arrive
// already substituted (or stay as bare values and identifiers), identifiers in
// check position are macro references for the compiler to resolve, and field
// names are only checked for shape.
//
// Recursion depth: libsinsp intends to cap recursion at the configured depth
// (1000 for Falco rules), but its guard object is a temporary that is
// destroyed immediately, so upstream never actually fails. Go needs a bound,
// so this package counts nesting levels (parenthesised groups and
// transformers) and reports upstream's message when 1000 are exceeded; no
// realistic condition gets close.
package condition
