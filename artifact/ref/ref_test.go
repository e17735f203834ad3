package ref

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	const d = "sha256:" + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	for _, tc := range []struct{ in, want, err string }{
		{"ghcr.io/falcosecurity/rules/falco-rules", "ghcr.io/falcosecurity/rules/falco-rules:latest", ""},
		{"ghcr.io/falcosecurity/rules/falco-rules:3", "ghcr.io/falcosecurity/rules/falco-rules:3", ""},
		{"localhost:5000/x:1.2.3", "localhost:5000/x:1.2.3", ""},
		{"ghcr.io/a/b:1@" + d, "ghcr.io/a/b@" + d, ""},
		{"ghcr.io/a/b@" + d, "ghcr.io/a/b@" + d, ""},
		{"ghcr.io/A/b", "", "invalid repository"},
		{"ghcr.io/a/b:", "", "empty tag"},
		{"ghcr.io/a/b@sha256:zz", "", "invalid digest"},
		{"falco-rules", "", "no registry"},
		{"", "", "empty"},
	} {
		r, err := Parse(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: want error %q, got %v", tc.in, tc.err, err)
			}
			continue
		}
		if err != nil || r.String() != tc.want {
			t.Errorf("%q: got %q, %v; want %q", tc.in, r.String(), err, tc.want)
		}
	}
}

func TestResolveIndexNames(t *testing.T) {
	lookup := func(n string) (string, string, bool) {
		if n == "falco-rules" {
			return "ghcr.io", "falcosecurity/rules/falco-rules", true
		}
		return "", "", false
	}
	const d = "sha256:" + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	for in, want := range map[string]string{
		"falco-rules":        "ghcr.io/falcosecurity/rules/falco-rules:latest",
		"falco-rules:5":      "ghcr.io/falcosecurity/rules/falco-rules:5",
		"falco-rules@" + d:   "ghcr.io/falcosecurity/rules/falco-rules@" + d,
		"falco-rules:5@" + d: "ghcr.io/falcosecurity/rules/falco-rules@" + d,
		"ghcr.io/x/y:1":      "ghcr.io/x/y:1",
	} {
		r, err := Resolve(in, lookup)
		if err != nil || r.String() != want {
			t.Errorf("%q: got %q %v want %q", in, r, err, want)
		}
	}
	if _, err := Resolve("unknown", lookup); err == nil || !strings.Contains(err.Error(), "cannot find unknown among the configured indexes") {
		t.Errorf("unknown: %v", err)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"ghcr.io/a/b:1", "a/b@sha256:00", "x", "h:1/p:t@", "localhost:5000/x/y:z"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := Parse(s)
		if err != nil {
			return
		}
		// A parsed reference must round-trip.
		r2, err := Parse(r.String())
		if err != nil || r2 != r {
			t.Fatalf("round trip %q -> %q -> %v %v", s, r.String(), r2, err)
		}
		if _, err := Resolve(s, nil); err != nil {
			t.Fatalf("full reference must resolve without index: %v", err)
		}
	})
}

func FuzzParseIndexRef(f *testing.F) {
	for _, s := range []string{"falco-rules", "a:1", "a@sha256:00", "a:b@c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ir, err := ParseIndexRef(s)
		if err == nil && (ir.Name == "" || strings.ContainsAny(ir.Name, "/:@")) {
			t.Fatalf("bad name %q from %q", ir.Name, s)
		}
	})
}
