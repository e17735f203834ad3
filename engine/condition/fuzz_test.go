package condition

import "testing"

// fuzzSeeds are hand-picked inputs that exercise the quirks; the upstream
// rule conditions are added when the shared testdata is present.
var fuzzSeeds = []string{
	"a.b in(x,y)", "a.b inlist", "x.y = oneof (a, b)", "x.y contains anyof lst",
	`x.y in ("\c")`, "not (not a)", "not(a)", `x.y = 'a\ b'`, "x.y > 0x1F",
	"x.y <= -1.5e+3", `getopt(x.y, "ab:")[b] = c`, `concat(x.y, "a", (z.w, 'q'), 3) = a`,
	`x.y["a b"] = 1`, "x.y[/a/b*] = 1", "(not) and b", "x.y = val(z.w)[3]",
	"a or (b and c) or not d", "x.y exists and not z.w exists",
}

func FuzzParse(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	conds, _ := readCorpus()
	for _, c := range conds {
		f.Add(c.cond)
	}
	f.Fuzz(func(t *testing.T, in string) {
		e, err := Parse(in)
		if err != nil {
			if _, ok := err.(*ParseError); !ok {
				t.Fatalf("error of type %T: %v", err, err)
			}
			return
		}
		s := e.String()
		e2, err := Parse(s)
		if err != nil {
			t.Fatalf("canonical form of %q does not parse: %v\n%s", in, err, s)
		}
		if s2 := e2.String(); s2 != s {
			t.Fatalf("canonical form of %q not stable:\n%s\n%s", in, s, s2)
		}
		_, _, _ = ParseOperandPrefix(in)
	})
}
