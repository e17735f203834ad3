package k8saudit

import (
	"unicode"
	"unicode/utf8"
)

// appendPrintable appends s with every control character (C0, DEL, C1) and every ill-formed
// UTF-8 sequence replaced by U+FFFD, as Falco renders evt.plugininfo: one replacement per
// maximal ill-formed subpart (Unicode's "substitution of maximal subparts", so "\xe2\x82"
// is one U+FFFD and a UTF-8-encoded surrogate three), while well-formed non-ASCII text stays.
func appendPrintable(dst, s []byte) []byte {
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c < 0x7f {
			dst = append(dst, c)
			i++
			continue
		}
		r, n := utf8.DecodeRune(s[i:])
		if r == utf8.RuneError && n <= 1 {
			dst = append(dst, "\uFFFD"...)
			i += illFormedLen(s[i:])
			continue
		}
		if unicode.IsControl(r) {
			dst = append(dst, "\uFFFD"...)
		} else {
			dst = append(dst, s[i:i+n]...)
		}
		i += n
	}
	return dst
}

// illFormedLen is the length of the maximal subpart at the start of s, which does not begin
// with a well-formed sequence: the lead byte and the continuation bytes that could still have
// completed it (Unicode Table 3-7), at least 1.
func illFormedLen(s []byte) int {
	lo, hi, need := byte(0x80), byte(0xbf), 0
	switch c := s[0]; {
	case c >= 0xc2 && c <= 0xdf:
		need = 1
	case c == 0xe0:
		lo, need = 0xa0, 2
	case c == 0xed:
		hi, need = 0x9f, 2
	case c >= 0xe1 && c <= 0xef:
		need = 2
	case c == 0xf0:
		lo, need = 0x90, 3
	case c >= 0xf1 && c <= 0xf3:
		need = 3
	case c == 0xf4:
		hi, need = 0x8f, 3
	}
	n := 1
	for ; n <= need && n < len(s); n++ {
		if s[n] < lo || s[n] > hi {
			break
		}
		lo, hi = 0x80, 0xbf
	}
	return n
}
