package match

// This file models glibc's fnmatch(3) (C locale, flags 0 or FNM_CASEFOLD)
// closely enough to reproduce its handling of malformed bracket expressions,
// which is where implementations differ. Observed glibc 2.36 behaviour that
// the model keeps:
//   - an unterminated '[' is an ordinary character, and so is "[=" without a
//     closing "=]" or "[:" followed by anything but a lowercase class name;
//   - an unknown class name, "[." without ".]", a multi-byte collating symbol,
//     a range whose end is missing and a trailing backslash all make the
//     bracket (or pattern) fail, but only when the scan reaches them: a byte
//     matched by an earlier element still matches;
//   - with FNM_CASEFOLD, characters and range bounds are lowered before
//     comparison while classes, "[=c=]" and "[.c.]" see the unfolded byte;
//   - '!' and '^' both negate; '*' and '?' match '/' and a leading '.'.

// classMaxLen is glibc's CHAR_CLASS_MAX_LENGTH: longer names are errors.
const classMaxLen = 256

func lower(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + ('a' - 'A')
	}
	return c
}

func foldIf(fold bool, c byte) byte {
	if fold {
		return lower(c)
	}
	return c
}

// inClass reports whether c belongs to the named POSIX class in the C locale.
// ok is false for an unknown name.
func inClass(name string, c byte) (in, ok bool) {
	isUpper := c >= 'A' && c <= 'Z'
	isLower := c >= 'a' && c <= 'z'
	isDigit := c >= '0' && c <= '9'
	isAlpha := isUpper || isLower
	isGraph := c > ' ' && c < 0x7f
	switch name {
	case "alnum":
		return isAlpha || isDigit, true
	case "alpha":
		return isAlpha, true
	case "blank":
		return c == ' ' || c == '\t', true
	case "cntrl":
		return c < ' ' || c == 0x7f, true
	case "digit":
		return isDigit, true
	case "graph":
		return isGraph, true
	case "lower":
		return isLower, true
	case "print":
		return isGraph || c == ' ', true
	case "punct":
		return isGraph && !isAlpha && !isDigit, true
	case "space":
		return c == ' ' || (c >= '\t' && c <= '\r'), true
	case "upper":
		return isUpper, true
	case "xdigit":
		return isDigit || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'), true
	}
	return false, false
}

// bracket outcomes.
const (
	brFail    = iota // the bracket (and this matching attempt) fails
	brMatch          // the byte matches; matching resumes after the closing ']'
	brLiteral        // the '[' is an ordinary character; resume right after it
)

// at returns p[i], or 0 past the end, so the scanners can read the pattern
// like the C string glibc walks.
func at(p string, i int) byte {
	if i < len(p) {
		return p[i]
	}
	return 0
}

// evalBracket decides how the bracket expression whose '[' is at p[start-1]
// treats the string byte b. next is where pattern matching resumes.
func evalBracket(p string, start int, b byte, fold bool) (outcome, next int) {
	i := start
	negate := at(p, i) == '!' || at(p, i) == '^'
	if negate {
		i++
	}
	fn := foldIf(fold, b)
	c := at(p, i)
	i++
	for {
		var (
			cold    byte
			isRange bool
		)
		switch {
		case c == '\\':
			if at(p, i) == 0 {
				return brFail, 0
			}
			c = foldIf(fold, p[i])
			i++
			goto normal
		case c == '[' && at(p, i) == ':':
			startp := i
			var name string
			for {
				if i-startp == classMaxLen {
					return brFail, 0
				}
				i++
				c = at(p, i)
				if c == ':' && at(p, i+1) == ']' {
					name = p[startp+1 : i]
					i += 2
					break
				}
				if c < 'a' || c >= 'z' {
					// Not a class name after all: '[' is an ordinary member.
					i = startp
					c = '['
					goto normal
				}
			}
			in, ok := inClass(name, b)
			if !ok {
				return brFail, 0
			}
			if in {
				return skipRest(p, start, i, negate)
			}
			c = at(p, i)
			i++
			goto tail
		case c == 0:
			return brLiteral, start
		case c == '[' && at(p, i) == '.':
			startp := i
			n := 0
			for {
				i++
				c = at(p, i)
				if c == '.' && at(p, i+1) == ']' {
					i += 2
					break
				}
				if c == 0 {
					return brFail, 0
				}
				n++
			}
			// Unlike a plain member, a symbol followed by "-]" counts as a
			// range start and so never matches by itself.
			isRange = at(p, i) == '-' && at(p, i+1) != 0
			if n != 1 {
				return brFail, 0
			}
			if !isRange && b == p[startp+1] {
				return skipRest(p, start, i, negate)
			}
			cold = p[startp+1]
			c = at(p, i)
			i++
			goto rangeCheck
		case c == '[' && at(p, i) == '=':
			startp := i
			if at(p, i+1) == 0 || at(p, i+2) != '=' || at(p, i+3) != ']' {
				i = startp
				c = '['
				goto normal
			}
			eq := p[i+1]
			i += 4
			if b == eq {
				return skipRest(p, start, i, negate)
			}
			c = at(p, i)
			i++
			goto tail
		default:
			c = foldIf(fold, c)
			goto normal
		}
	normal:
		isRange = at(p, i) == '-' && at(p, i+1) != 0 && at(p, i+1) != ']'
		if !isRange && c == fn {
			return skipRest(p, start, i, negate)
		}
		cold = c
		c = at(p, i)
		i++
	rangeCheck:
		if c == '-' && at(p, i) != ']' {
			cend := at(p, i)
			i++
			if cend == '\\' {
				cend = at(p, i)
				i++
			} else if cend == '[' && at(p, i) == '.' {
				// A collating symbol as the range end.
				startp := i
				n := 0
				for {
					i++
					ch := at(p, i)
					if ch == '.' && at(p, i+1) == ']' {
						i += 2
						break
					}
					if ch == 0 {
						return brFail, 0
					}
					n++
				}
				if n != 1 {
					return brFail, 0
				}
				cend = p[startp+1]
			}
			if cend == 0 {
				return brFail, 0
			}
			cend = foldIf(fold, cend)
			if cold <= fn && fn <= cend {
				return skipRest(p, start, i, negate)
			}
			c = at(p, i)
			i++
		}
	tail:
		if c == ']' {
			break
		}
	}
	if negate {
		return brMatch, i
	}
	return brFail, 0
}

// skipRest finds the end of a bracket whose member at p[i-1] matched. glibc
// does not validate the remaining members here, only their extent.
func skipRest(p string, start, i int, negate bool) (int, int) {
	for {
		c := at(p, i)
		i++
		switch {
		case c == 0:
			return brLiteral, start
		case c == '\\':
			if at(p, i) == 0 {
				return brFail, 0
			}
			i++
		case c == '[' && at(p, i) == ':':
			startp := i
			n := 0
			ok := true
			for {
				i++
				ch := at(p, i)
				n++
				if n == classMaxLen {
					return brFail, 0
				}
				if ch == ':' && at(p, i+1) == ']' {
					break
				}
				if ch < 'a' || ch >= 'z' {
					ok = false
					break
				}
			}
			if ok {
				i += 2
			} else {
				i = startp
			}
		case c == '[' && at(p, i) == '=':
			if at(p, i+1) == 0 {
				return brFail, 0
			}
			if at(p, i+2) != '=' || at(p, i+3) != ']' {
				return brFail, 0
			}
			i += 4
		case c == '[' && at(p, i) == '.':
			for {
				i++
				ch := at(p, i)
				if ch == 0 {
					return brFail, 0
				}
				if ch == '.' && at(p, i+1) == ']' {
					break
				}
			}
			i += 2
		case c == ']':
			if negate {
				return brFail, 0
			}
			return brMatch, i
		}
	}
}

// fnmatch interprets pattern p against s the way glibc's internal_fnmatch
// does. It is the semantic reference for Glob and its fallback for patterns
// whose brackets cannot be precompiled into single tokens.
func fnmatch(p string, pi int, s []byte, si int, fold bool) bool {
	for pi < len(p) {
		c := foldIf(fold, p[pi])
		pi++
		switch c {
		case '?':
			if si == len(s) {
				return false
			}
		case '\\':
			if pi == len(p) {
				return false // a trailing backslash never matches
			}
			c = foldIf(fold, p[pi])
			pi++
			if si == len(s) || c != foldIf(fold, s[si]) {
				return false
			}
		case '*':
			for pi < len(p) && (p[pi] == '?' || p[pi] == '*') {
				if p[pi] == '?' {
					if si == len(s) {
						return false
					}
					si++
				}
				pi++
			}
			if pi == len(p) {
				return true
			}
			for ; si < len(s); si++ {
				if fnmatch(p, pi, s, si, fold) {
					return true
				}
			}
			return false
		case '[':
			if si == len(s) {
				return false
			}
			outcome, next := evalBracket(p, pi, s[si], fold)
			switch outcome {
			case brFail:
				return false
			case brLiteral:
				if s[si] != '[' {
					return false
				}
			}
			pi = next
		default:
			if si == len(s) || c != foldIf(fold, s[si]) {
				return false
			}
		}
		si++
	}
	return si == len(s)
}
