package follower

import (
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/falco-k8s/falco-k8s/artifact/auth"
)

// FuzzParseRetryAfter: a delay is never negative nor above maxRetryAfter, "not ok" means 0,
// and delay-seconds within the cap are honoured exactly.
func FuzzParseRetryAfter(f *testing.F) {
	now := time.Date(2026, 8, 1, 12, 0, 0, 0, time.UTC)
	for _, s := range []string{"", "5", " 120 ", "-1", "soon", "9999999", "0", "+3", "86400", "86401",
		"9223372036", "9223372037", "99999999999999999999", now.Add(90 * time.Second).Format(http.TimeFormat),
		now.Add(-time.Hour).Format(http.TimeFormat), "Sun, 06 Nov 1994 08:49:37 GMT", "Sunday, 06-Nov-94 08:49:37 GMT",
		"Sun Nov  6 08:49:37 1994", "Fri, 31 Dec 9999 23:59:59 GMT"} {
		f.Add(s, now.Unix())
	}
	f.Fuzz(func(t *testing.T, v string, unix int64) {
		d, ok := parseRetryAfter(v, time.Unix(unix, 0))
		if d < 0 || d > maxRetryAfter {
			t.Fatalf("parseRetryAfter(%q) = %v: out of [0, %v]", v, d, maxRetryAfter)
		}
		if !ok && d != 0 {
			t.Fatalf("parseRetryAfter(%q) = %v, false", v, d)
		}
		if strings.TrimSpace(v) == "" && ok {
			t.Fatalf("parseRetryAfter(%q) accepted an empty value", v)
		}
		if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && n >= 0 {
			want := maxRetryAfter
			if n < int(maxRetryAfter/time.Second) {
				want = time.Duration(n) * time.Second
			}
			if !ok || d != want {
				t.Fatalf("parseRetryAfter(%q) = %v, %v; want %v", v, d, ok, want)
			}
		}
	})
}

// pwMarker starts the password field of the entry built by FuzzReadAuthFile: the error text
// must never contain it.
const pwMarker = "Zq9pw"

// FuzzReadAuthFile writes "prefix registry,user,<password> suffix" to a 0600 file. Properties:
// the file's errors never contain the password, success means exactly what auth.ParseBasicEnv
// makes of the trimmed content, and the same content in a group-readable file is refused
// without quoting it.
func FuzzReadAuthFile(f *testing.F) {
	for _, s := range [][5]string{
		{"", "ghcr.io", "bob", "s3cret", ";reg.local:5000,al,pw\n"},
		{"", "ghcr.io", "bob", "s3cret", ""},
		{"", "ghcr.io", "bob", "", ""},
		{"", "ghcr.io", "bob", "a,b", ""},
		{"x,y;", "ghcr.io/org", "bob", "p", ";;"},
		{"", "", "", "", ";"},
		{`[{"registry":"ghcr.io/org","user":"bob","password":"`, "", "", `a,b;c"}]`, ""},
		{`[{"registry":"r","user":"u","password":`, "", "", `1}]`, ""},
		{`[{"registry":"r","user":"u","password":"`, "", "", "\x00", ""},
		{`[{`, "", "", "", ""},
		{" \n", "r", "u", "p\n", "\n"},
	} {
		f.Add(s[0], s[1], s[2], s[3], s[4])
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, prefix, registry, user, pw, suffix string) {
		content := prefix + registry + "," + user + "," + pwMarker + pw + suffix
		p := filepath.Join(dir, "auth")
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, 0o600); err != nil {
			t.Fatal(err)
		}
		leaks := func(err error) bool {
			msg := strings.ReplaceAll(err.Error(), p, "")
			return strings.Contains(msg, pwMarker) && !strings.Contains(prefix+registry+user+suffix, pwMarker)
		}
		got, err := ReadAuthFile(p)
		want, werr := auth.ParseBasicEnv(strings.TrimSpace(content))
		if err != nil {
			if leaks(err) {
				t.Fatalf("error quotes the password: %v", err)
			}
			if werr == nil {
				t.Fatalf("ReadAuthFile failed (%v) where ParseBasicEnv succeeds", err)
			}
		} else {
			if werr != nil || !reflect.DeepEqual(got, want) {
				t.Fatalf("ReadAuthFile = %+v, ParseBasicEnv = %+v, %v", got, want, werr)
			}
			for _, b := range got {
				if b.Registry == "" || b.User == "" || b.Password == "" {
					t.Fatalf("empty field accepted: %+v", b)
				}
			}
		}
		if err := os.Chmod(p, 0o640); err != nil {
			t.Fatal(err)
		}
		if _, err := ReadAuthFile(p); err == nil || leaks(err) || !strings.Contains(err.Error(), "chmod 600") {
			t.Fatalf("group-readable file: %v", err)
		}
	})
}
