package match

import "testing"

func FuzzGlob(f *testing.F) {
	for _, tc := range glibcFnmatchCases {
		f.Add(tc.pattern, []byte(tc.s), tc.fold)
	}
	f.Fuzz(func(t *testing.T, pattern string, s []byte, fold bool) {
		// The reference interpreter backtracks exponentially on many stars;
		// short inputs keep every execution fast.
		if len(pattern) > 24 || len(s) > 48 {
			return
		}
		g := CompileGlob(pattern, fold)
		got := g.Match(s)
		cs := s
		for i, c := range cs {
			if c == 0 {
				cs = cs[:i]
				break
			}
		}
		if want := fnmatch(g.pattern, 0, cs, 0, fold); got != want {
			t.Fatalf("CompileGlob(%q, %v).Match(%q) = %v, reference says %v", pattern, fold, s, got, want)
		}
	})
}

func FuzzRegexCompile(f *testing.F) {
	for _, p := range []string{"abc", "a.c", "(a|b)*", `\d`, "[[:alpha:]]+", "x{2,3}", "(?i)a", "[^\n]", "a**", "^a$"} {
		f.Add(p, []byte("abc"))
	}
	f.Fuzz(func(t *testing.T, pattern string, s []byte) {
		r, err := CompileRegex(pattern)
		if err != nil {
			if r != nil {
				t.Fatal("non-nil regex with an error")
			}
			return
		}
		if r.Match(s) {
			// A match must span the whole value.
			if loc := r.re.FindIndex(s); loc == nil || loc[0] != 0 || loc[1] != len(s) {
				t.Fatalf("regex %q matched %q only at %v", pattern, s, loc)
			}
		}
		_, _ = RegexSimplerOperator(pattern)
	})
}
