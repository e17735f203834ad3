// Package redact removes credentials from strings that are shown to people: URLs (user info,
// query, fragment) and registry references written with user info. It works on text that does
// not parse too, because the error about a malformed URL is exactly where one would otherwise
// print it whole.
package redact

import "strings"

// URL returns u without user info ("user:password@" becomes "***@"), with a query replaced by
// "?..." and the fragment dropped. It works on text that does not parse (a malformed URL is what
// an error prints), so user info is everything up to the last '@', whatever the password holds
// ('/', '?', '#', '@'), except the '@' of a reference's digest (ghcr.io/org/rules@sha256:...),
// which is kept.
func URL(u string) string {
	rest := u
	scheme, user := "", ""
	if i := strings.Index(u, "://"); i >= 0 && !strings.ContainsAny(u[:i], "/?#@") {
		scheme, rest = u[:i+3], u[i+3:]
	}
	if i := userInfoEnd(rest); i >= 0 {
		user, rest = "***@", rest[i+1:]
	}
	suffix := ""
	if i := strings.IndexAny(rest, "?#"); i >= 0 {
		if rest[i] == '?' {
			suffix = "?..."
		}
		rest = rest[:i]
	}
	return scheme + user + rest + suffix
}

// userInfoEnd is the index of the last '@' of s that is not followed by a digest (the OCI
// algorithms sha256, sha384, sha512), or -1.
func userInfoEnd(s string) int {
	for i := strings.LastIndexByte(s, '@'); i >= 0; i = strings.LastIndexByte(s[:i], '@') {
		d := s[i+1:]
		if !strings.HasPrefix(d, "sha256:") && !strings.HasPrefix(d, "sha384:") && !strings.HasPrefix(d, "sha512:") {
			return i
		}
	}
	return -1
}
