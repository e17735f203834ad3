package match

import "bytes"

// IContains reports whether needle occurs in haystack ignoring ASCII case,
// like strcasestr(3) in the C locale: both are C strings, so each ends at its
// first NUL byte, and an empty needle is always found.
func IContains(haystack, needle []byte) bool {
	if i := bytes.IndexByte(haystack, 0); i >= 0 {
		haystack = haystack[:i]
	}
	if i := bytes.IndexByte(needle, 0); i >= 0 {
		needle = needle[:i]
	}
	if len(needle) == 0 {
		return true
	}
	first := lower(needle[0])
	rest := needle[1:]
	last := len(haystack) - len(needle)
	for i := 0; i <= last; i++ {
		if lower(haystack[i]) == first && equalFoldASCII(haystack[i+1:i+len(needle)], rest) {
			return true
		}
	}
	return false
}

func equalFoldASCII(a, b []byte) bool {
	for i := range a {
		if lower(a[i]) != lower(b[i]) {
			return false
		}
	}
	return true
}
