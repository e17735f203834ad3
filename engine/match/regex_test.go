package match

import "testing"

func TestRegexMatch(t *testing.T) {
	tests := []struct {
		pattern, s string
		want       bool
	}{
		{"abc", "abc", true},
		{"abc", "xabcx", false}, // anchored at both ends
		{"b", "abc", false},
		{".*b.*", "abc", true},
		{"a.c", "a\nc", false},   // '.' never matches a newline
		{"a[^x]c", "a\nc", true}, // negated classes do (RE2 ClassNL)
		{"(foo|bar)+", "foobarfoo", true},
		{"[[:digit:]]{3}", "123", true},
		{"[[:digit:]]{3}", "1234", false},
		{"^a$", "a", true},
		{"a|b", "ab", false},
		{"x*?", "xx", true}, // POSIX mode stacks repetitions instead of non-greedy
		{"", "", true},
		{"", "a", false},
		{"caf.", "caf\xc3\xa9", true},
		{"caf.", "caf\xff", true},      // an invalid byte reads as one U+FFFD
		{"caf..", "caf\xff\xfe", true}, // one per invalid byte
		{"a\x00b", "a", true},          // the pattern ends at NUL like a C string
	}
	for _, tc := range tests {
		r, err := CompileRegex(tc.pattern)
		if err != nil {
			t.Fatalf("CompileRegex(%q): %v", tc.pattern, err)
		}
		if got := r.Match([]byte(tc.s)); got != tc.want {
			t.Errorf("regex %q on %q = %v, want %v", tc.pattern, tc.s, got, tc.want)
		}
	}
}

func TestRegexErrors(t *testing.T) {
	tests := []struct{ pattern, err string }{
		{`\d+`, `invalid escape sequence: \d`}, // no Perl classes in POSIX mode
		{`\bword`, `invalid escape sequence: \b`},
		{`\pL`, `invalid escape sequence: \p`},
		{`(?i)abc`, `no argument for repetition operator: ?`},
		{`(abc`, `missing ): (abc`},
		{`abc)`, `unexpected ): abc)`},
		{`[abc`, `missing ]: [abc`},
		{`x{2,1}`, `invalid repetition size: {2,1}`},
		{`x{1001}`, `invalid repetition size: {1001}`},
		{`*a`, `no argument for repetition operator: *`},
		{`abc\`, `trailing \`},
		{`[z-a]`, `invalid character class range: z-a`},
		{`[[:foo:]]`, `invalid character class range: [:foo:]`},
	}
	for _, tc := range tests {
		_, err := CompileRegex(tc.pattern)
		if err == nil || err.Error() != tc.err {
			t.Errorf("CompileRegex(%q) error = %v, want %q", tc.pattern, err, tc.err)
		}
	}
}

func TestRegexSimplerOperator(t *testing.T) {
	const suffix = "' may be optimized with simpler operators such as '=', 'contains', 'startswith', 'endswith'"
	tests := []struct {
		pattern string
		warn    bool
	}{
		{"abc", true},
		{"^abc$", true},
		{".*abc", true},
		{"abc.*", true},
		{".+abc.?", true},
		{".*", true},
		{"", true},
		{"/usr/bin/x", true},
		{"a.c", false},
		{"^.*abc", false}, // only a leading any-char run at index 0 is ignored
		{"abc$x", false},
		{"a|b", false},
		{"a+", false},
		{"[ab]", false},
		{`a\.b`, false},
		{".", false},
		{"ab.{2}", false},
	}
	for _, tc := range tests {
		msg, warn := RegexSimplerOperator(tc.pattern)
		if warn != tc.warn {
			t.Errorf("RegexSimplerOperator(%q) = %v, want %v", tc.pattern, warn, tc.warn)
			continue
		}
		if warn && msg != "regex check with '"+tc.pattern+suffix {
			t.Errorf("message %q", msg)
		}
	}
}
