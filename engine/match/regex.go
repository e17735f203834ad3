package match

import (
	"errors"
	"regexp"
	"regexp/syntax"
	"strings"
)

// Regex is a compiled pattern for Falco's regex operator: RE2 in POSIX
// syntax mode, matched against the whole value.
type Regex struct {
	pattern string
	re      *regexp.Regexp
}

// re2POSIXFlags are the parse flags RE2 uses for RE2::POSIX options: POSIX
// egrep syntax (no \d, \b, (?i), non-greedy or \pL) where negated classes
// may match '\n' (ClassNL) but '.' may not, and '^'/'$' match at line
// boundaries because one_line is off.
const re2POSIXFlags = syntax.ClassNL

// CompileRegex validates pattern with RE2's POSIX-mode rules and compiles it
// anchored at both ends, as libsinsp matches with ANCHOR_BOTH. Like libsinsp,
// which builds the RE2 from the value as a C string, the pattern ends at its
// first NUL byte. Errors read like RE2's error(): "missing ): (a".
func CompileRegex(pattern string) (*Regex, error) {
	if i := strings.IndexByte(pattern, 0); i >= 0 {
		pattern = pattern[:i]
	}
	tree, err := syntax.Parse(pattern, re2POSIXFlags)
	if err != nil {
		return nil, re2Error(err)
	}
	anchored := &syntax.Regexp{
		Op:    syntax.OpConcat,
		Flags: re2POSIXFlags,
		Sub: []*syntax.Regexp{
			{Op: syntax.OpBeginText},
			{Op: syntax.OpCapture, Sub: []*syntax.Regexp{tree}},
			{Op: syntax.OpEndText},
		},
	}
	// syntax.Regexp.String prints Perl syntax with explicit flag groups, so
	// the Perl-mode compiler reproduces the POSIX-mode tree exactly.
	re, err := regexp.Compile(anchored.String())
	if err != nil {
		return nil, re2Error(err)
	}
	return &Regex{pattern: pattern, re: re}, nil
}

// re2Codes maps Go's parse error codes to RE2's RegexpStatus texts.
var re2Codes = map[syntax.ErrorCode]string{
	syntax.ErrInvalidCharClass:      "invalid character class",
	syntax.ErrInvalidCharRange:      "invalid character class range",
	syntax.ErrInvalidEscape:         "invalid escape sequence",
	syntax.ErrInvalidNamedCapture:   "invalid named capture group",
	syntax.ErrInvalidPerlOp:         "invalid perl operator",
	syntax.ErrInvalidRepeatOp:       "bad repetition operator",
	syntax.ErrInvalidRepeatSize:     "invalid repetition size",
	syntax.ErrInvalidUTF8:           "invalid UTF-8",
	syntax.ErrMissingBracket:        "missing ]",
	syntax.ErrMissingParen:          "missing )",
	syntax.ErrMissingRepeatArgument: "no argument for repetition operator",
	syntax.ErrTrailingBackslash:     "trailing \\",
	syntax.ErrUnexpectedParen:       "unexpected )",
	syntax.ErrNestingDepth:          "expression nests too deeply",
	syntax.ErrLarge:                 "pattern too large - compile failed",
}

func re2Error(err error) error {
	var se *syntax.Error
	if !errors.As(err, &se) {
		return err
	}
	text, ok := re2Codes[se.Code]
	if !ok {
		text = string(se.Code)
	}
	if se.Expr == "" {
		return errors.New(text)
	}
	return errors.New(text + ": " + se.Expr)
}

// String returns the pattern as compiled.
func (r *Regex) String() string { return r.pattern }

// Match reports whether the whole of s matches. Invalid UTF-8 in s is read
// as U+FFFD, one per invalid byte, which is how the value is sanitised before
// matching; it never makes the match fail by itself.
func (r *Regex) Match(s []byte) bool {
	return r.re.Match(s)
}

// Characters that make a pattern a "real" regular expression for Falco's
// optimisation hint.
const (
	regexSpecialChars    = ".+*?^$()[]{}|\\"
	regexOccurrenceChars = "+*?"
)

// RegexSimplerOperator reproduces libsinsp's compile-time hint for regex
// checks: when the pattern has no metacharacters other than a leading '^',
// a trailing '$' and a leading or trailing ".*", ".+" or ".?", it returns
// the warning text Falco emits and true.
func RegexSimplerOperator(pattern string) (string, bool) {
	n := len(pattern)
	for i := 0; i < n; i++ {
		c := pattern[i]
		// Anchors are implied by the full-string match.
		if (i == 0 && c == '^') || (i == n-1 && c == '$') {
			continue
		}
		// A leading or trailing any-char run maps to endswith/startswith/contains.
		if ((i == 0 && n > 1) || i == n-2) && c == '.' && i+1 < n &&
			strings.IndexByte(regexOccurrenceChars, pattern[i+1]) >= 0 {
			i++
			continue
		}
		if strings.IndexByte(regexSpecialChars, c) >= 0 {
			return "", false
		}
	}
	return "regex check with '" + pattern + "' may be optimized with simpler operators such as '=', 'contains', 'startswith', 'endswith'", true
}
