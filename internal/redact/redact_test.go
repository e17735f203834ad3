package redact

import (
	"strings"
	"testing"
)

func TestURL(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"http://falcosidekick:2801/", "http://falcosidekick:2801/"},
		{"https://user:s3cret@host:8443/path", "https://***@host:8443/path"},
		{"http://user:p@ss@host/", "http://***@host/"},
		{"http://user:p/ss@host/x", "http://***@host/x"},
		{"https://u:p#q@h:99999/", "https://***@h:99999/"},
		{"u:p/q@h/x", "***@h/x"},
		{"u:p@ghcr.io/org/rules@sha256:abc", "***@ghcr.io/org/rules@sha256:abc"},
		{"#://", ""},
		{"https://host/p?token=s3cret#frag", "https://host/p?..."},
		{"http://user:s3cret@[::1", "http://***@[::1"},
		{"ht tp://u:s3cret@h", "ht tp://***@h"},
		{"u:s3cret@ghcr.io/org/rules:1", "***@ghcr.io/org/rules:1"},
		{"ghcr.io/org/rules@sha256:abc", "ghcr.io/org/rules@sha256:abc"},
		{"", ""},
	} {
		if got := URL(tc.in); got != tc.want {
			t.Errorf("URL(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func FuzzURL(f *testing.F) {
	f.Add("https://user:s3cret@host/p?q=1#f")
	f.Add("u:p@h/x@y")
	f.Fuzz(func(t *testing.T, s string) {
		got := URL(s)
		// The user info, query and fragment never survive (when they are not also elsewhere).
		if i := strings.IndexAny(s, "?#"); i >= 0 && len(s)-i > 1 {
			tail := s[i:]
			if strings.Contains(got, tail) && tail != "?..." && !strings.Contains(s[:i], tail) {
				t.Fatalf("URL(%q) = %q keeps %q", s, got, tail)
			}
		}
	})
}
