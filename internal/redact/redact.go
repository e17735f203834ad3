// Package redact removes credentials from strings that are shown to people: URLs (user info,
// query, fragment) and registry references written with user info. It works on text that does
// not parse too, because the error about a malformed URL is exactly where one would otherwise
// print it whole.
package redact

import "strings"

// URL returns u without user info ("user:password@" becomes "***@"), with a query replaced by
// "?..." and the fragment dropped. Whatever u is, no byte of its user info or query is kept.
// A reference such as ghcr.io/org/rules@sha256:... keeps its digest: only an '@' before the
// first '/' of the authority is user info.
func URL(u string) string {
	rest := u
	scheme := ""
	if i := strings.Index(u, "://"); i >= 0 {
		scheme, rest = u[:i+3], u[i+3:]
	}
	suffix := ""
	if i := strings.IndexAny(rest, "?#"); i >= 0 {
		if rest[i] == '?' {
			suffix = "?..."
		}
		rest = rest[:i]
	}
	auth := rest
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		auth = rest[:i]
	}
	if i := strings.LastIndexByte(auth, '@'); i >= 0 {
		rest = "***@" + rest[i+1:]
	}
	return scheme + rest + suffix
}
