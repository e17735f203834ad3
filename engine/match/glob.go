package match

import "bytes"

type tokKind uint8

const (
	tokLit tokKind = iota
	tokAny
	tokStar
	tokSet
)

type globTok struct {
	kind tokKind
	lit  byte      // folded when the glob is case-insensitive
	set  [4]uint64 // bytes accepted by a bracket expression
}

// Glob is a compiled fnmatch(3) pattern: Match(s) equals
// fnmatch(pattern, s, 0) == 0, or with FNM_CASEFOLD when compiled with
// caseFold, in the C locale. Unlike path.Match, '*' and '?' match '/' and a
// leading '.'. Both pattern and value are read as C strings, so each ends at
// its first NUL byte, as in Falco where they are passed as char pointers.
type Glob struct {
	pattern string
	fold    bool
	toks    []globTok
	never   bool // some token can never match: nothing matches
	interp  bool // brackets too irregular to precompile: interpret the pattern
}

// CompileGlob compiles pattern once for repeated, allocation-free matching.
// Every pattern is valid: malformed brackets behave as glibc makes them.
func CompileGlob(pattern string, caseFold bool) *Glob {
	if i := indexNUL(pattern); i >= 0 {
		pattern = pattern[:i]
	}
	g := &Glob{pattern: pattern, fold: caseFold}
	p := pattern
	for i := 0; i < len(p); {
		c := p[i]
		i++
		switch c {
		case '*':
			if n := len(g.toks); n == 0 || g.toks[n-1].kind != tokStar {
				g.toks = append(g.toks, globTok{kind: tokStar})
			}
		case '?':
			g.toks = append(g.toks, globTok{kind: tokAny})
		case '\\':
			if i == len(p) {
				g.never = true
				return g
			}
			g.toks = append(g.toks, globTok{kind: tokLit, lit: foldIf(caseFold, p[i])})
			i++
		case '[':
			tok, next, ok := compileBracket(p, i, caseFold)
			if !ok {
				g.interp = true
				g.toks = nil
				return g
			}
			if tok == nil {
				g.never = true
				return g
			}
			g.toks = append(g.toks, *tok)
			i = next
		default:
			g.toks = append(g.toks, globTok{kind: tokLit, lit: foldIf(caseFold, c)})
		}
	}
	return g
}

// compileBracket evaluates the bracket starting after p[start-1] == '[' for
// every byte. When all matching bytes resume at the same place it becomes a
// single set token (nil if it can never match). ok is false in the
// pathological case where some bytes would see a literal '[' and others a
// bracket, which a linear token list cannot express.
func compileBracket(p string, start int, fold bool) (tok *globTok, next int, ok bool) {
	var set [4]uint64
	matchNext, literal, matched := -1, false, false
	for b := 0; b < 256; b++ {
		outcome, n := evalBracket(p, start, byte(b), fold)
		switch outcome {
		case brMatch:
			if matched && n != matchNext {
				return nil, 0, false
			}
			matched, matchNext = true, n
			set[b>>6] |= 1 << (b & 63)
		case brLiteral:
			if b == '[' {
				literal = true
			}
		}
	}
	switch {
	case matched && literal:
		return nil, 0, false
	case literal:
		return &globTok{kind: tokLit, lit: '['}, start, true
	case matched:
		return &globTok{kind: tokSet, set: set}, matchNext, true
	}
	return nil, 0, true
}

func indexNUL(s string) int {
	for i := 0; i < len(s); i++ {
		if s[i] == 0 {
			return i
		}
	}
	return -1
}

// String returns the pattern as compiled.
func (g *Glob) String() string { return g.pattern }

// Match reports whether s matches the whole pattern.
func (g *Glob) Match(s []byte) bool {
	if i := bytes.IndexByte(s, 0); i >= 0 {
		s = s[:i]
	}
	switch {
	case g.never:
		return false
	case g.interp:
		return fnmatch(g.pattern, 0, s, 0, g.fold)
	}
	toks := g.toks
	// Each non-star token consumes exactly one byte, so the classic greedy
	// scan that backtracks only to the most recent star is exact and O(n*m).
	ti, si := 0, 0
	starTi, starSi := -1, 0
	for si < len(s) {
		if ti < len(toks) {
			t := &toks[ti]
			if t.kind == tokStar {
				starTi, starSi = ti, g.nextCandidate(s, ti, si)
				ti, si = ti+1, starSi
				continue
			}
			if t.matches(s[si], g.fold) {
				ti++
				si++
				continue
			}
		}
		if starTi < 0 {
			return false
		}
		starSi = g.nextCandidate(s, starTi, starSi+1)
		ti, si = starTi+1, starSi
	}
	for ti < len(toks) && toks[ti].kind == tokStar {
		ti++
	}
	return ti == len(toks)
}

// nextCandidate returns the first position at or after si where the token
// following the star at starTi can match, skipping with IndexByte when that
// token is a case-exact literal. It returns len(s) when there is none.
func (g *Glob) nextCandidate(s []byte, starTi, si int) int {
	if starTi+1 >= len(g.toks) || si >= len(s) {
		return si
	}
	t := &g.toks[starTi+1]
	if t.kind != tokLit || (g.fold && lower(t.lit) != upperOf(t.lit)) {
		return si
	}
	j := bytes.IndexByte(s[si:], t.lit)
	if j < 0 {
		return len(s)
	}
	return si + j
}

func upperOf(c byte) byte {
	if c >= 'a' && c <= 'z' {
		return c - ('a' - 'A')
	}
	return c
}

func (t *globTok) matches(c byte, fold bool) bool {
	switch t.kind {
	case tokLit:
		return foldIf(fold, c) == t.lit
	case tokAny:
		return true
	default:
		return t.set[c>>6]&(1<<(c&63)) != 0
	}
}
