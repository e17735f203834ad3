package match

import (
	"path"
	"testing"
)

func TestGlobMatchesGlibc(t *testing.T) {
	for _, tc := range glibcFnmatchCases {
		g := CompileGlob(tc.pattern, tc.fold)
		if got := g.Match([]byte(tc.s)); got != tc.match {
			t.Errorf("CompileGlob(%q, %v).Match(%q) = %v, glibc says %v", tc.pattern, tc.fold, tc.s, got, tc.match)
		}
		if got := fnmatch(g.pattern, 0, []byte(tc.s), 0, tc.fold); got != tc.match {
			t.Errorf("fnmatch model(%q, %v, %q) = %v, glibc says %v", tc.pattern, tc.fold, tc.s, got, tc.match)
		}
	}
}

func TestGlobIsNotPathMatch(t *testing.T) {
	// The cases where Go's path.Match and fnmatch without flags disagree.
	tests := []struct {
		pattern, s string
	}{
		{"/proc/*", "/proc/1/status"}, // '*' crosses '/'
		{"*", "a/b"},
		{"a?b", "a/b"}, // '?' matches '/'
		{"[!a]", "/"},  // negated class matches '/'
		{"[", "["},     // unterminated bracket is literal, not an error
		{"a[", "a["},
		{"[]a]", "]"}, // ']' first in a bracket is a member
		{"[a-]", "-"},
	}
	for _, tc := range tests {
		if !CompileGlob(tc.pattern, false).Match([]byte(tc.s)) {
			t.Errorf("glob %q should match %q", tc.pattern, tc.s)
		}
		if ok, err := path.Match(tc.pattern, tc.s); ok && err == nil {
			t.Errorf("case %q/%q does not illustrate a difference from path.Match", tc.pattern, tc.s)
		}
	}
}

func TestGlobCStrings(t *testing.T) {
	// Falco passes both sides as C strings.
	if !CompileGlob("ab*", false).Match([]byte("abc\x00def")) {
		t.Error("value should end at its NUL")
	}
	if CompileGlob("ab*", false).Match([]byte("a\x00bc")) {
		t.Error("value should end at its NUL")
	}
	if !CompileGlob("abc\x00zzz", false).Match([]byte("abc")) {
		t.Error("pattern should end at its NUL")
	}
}

func TestGlobCaseFold(t *testing.T) {
	g := CompileGlob("/ETC/*Shadow*", true)
	for _, s := range []string{"/etc/shadow", "/Etc/gSHADOW-", "/etc/x/shadow"} {
		if !g.Match([]byte(s)) {
			t.Errorf("iglob should match %q", s)
		}
	}
	if g.Match([]byte("/etc/passwd")) {
		t.Error("iglob matched /etc/passwd")
	}
	if CompileGlob("/ETC/*", false).Match([]byte("/etc/x")) {
		t.Error("glob must be case-sensitive")
	}
}

func TestGlobString(t *testing.T) {
	if got := CompileGlob("a*\x00b", false).String(); got != "a*" {
		t.Errorf("String() = %q", got)
	}
}
