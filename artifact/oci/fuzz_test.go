package oci

import (
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/falco-k8s/falco-k8s/artifact/version"
)

// formatChallenge writes scheme and params in the form parseBearerChallenge reads, quoting
// every value.
func formatChallenge(scheme string, params map[string]string) string {
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString(scheme)
	for i, k := range keys {
		if i == 0 {
			b.WriteString(" ")
		} else {
			b.WriteString(", ")
		}
		b.WriteString(k + `="` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(params[k]) + `"`)
	}
	return b.String()
}

func isToken(s string) bool {
	t, rest := splitToken(s)
	return t == s && rest == "" && s != ""
}

// FuzzParseBearerChallenge: the scheme is a token (or empty), keys are lower-case tokens, there
// are no more parameters than '=' signs, and a challenge with a scheme survives formatting
// (quoted values) and parsing again.
func FuzzParseBearerChallenge(f *testing.F) {
	for _, s := range []string{
		`Bearer realm="https://ghcr.io/token",service="ghcr.io", scope="repository:a/b:pull"`,
		`Basic realm="x\"y"`,
		`Bearer realm="unterminated`,
		`Bearer realm=https://auth.docker.io/token,service=registry.docker.io`,
		`Bearer realm="a\\b", REALM="c"`,
		`Bearer realm = "x" , service= y`,
		`Bearer realm=`, `Bearer ,realm=x`, `Bearer=x`, ` realm=x`, `realm="x"`, ``, `Bearer realm="\`,
		"Bearer realm=\"\xff\x00\"", "Bearer\trealm=\"x\"\t,\tservice=\"y\"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		scheme, params := parseBearerChallenge(h)
		if params == nil {
			t.Fatal("nil params")
		}
		if scheme != "" && !isToken(scheme) {
			t.Fatalf("scheme %q is not a token", scheme)
		}
		if !strings.HasPrefix(h, scheme) {
			t.Fatalf("scheme %q is not a prefix of %q", scheme, h)
		}
		if len(params) > strings.Count(h, "=") {
			t.Fatalf("%d params from %d '='", len(params), strings.Count(h, "="))
		}
		for k, v := range params {
			if !isToken(k) || k != strings.ToLower(k) {
				t.Fatalf("key %q is not a lower-case token", k)
			}
			if len(v) > len(h) {
				t.Fatalf("value %q longer than the header", v)
			}
		}
		if scheme == "" {
			return
		}
		s2, p2 := parseBearerChallenge(formatChallenge(scheme, params))
		if s2 != scheme || !reflect.DeepEqual(p2, params) {
			t.Fatalf("round trip of %q: %q %q -> %q %q", h, scheme, params, s2, p2)
		}
	})
}

// FuzzParseType: accepted types are canonical (re-parse to themselves) and have media types
// that map back to them; rejected ones return "".
func FuzzParseType(f *testing.F) {
	for _, s := range []string{"rulesfile", "plugin", "asset", " Plugin ", "RULESFILE", "", "rules", "plugin,asset", "\u212a"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		typ, err := ParseType(s)
		if err != nil {
			if typ != "" {
				t.Fatalf("ParseType(%q) = %q with error %v", s, typ, err)
			}
			return
		}
		if again, err := ParseType(string(typ)); err != nil || again != typ {
			t.Fatalf("ParseType(%q) = %q, re-parse %q, %v", s, typ, again, err)
		}
		if typ.ConfigMediaType() == "" || typ.LayerMediaType() == "" {
			t.Fatalf("type %q has no media types", typ)
		}
		if back, ok := TypeFromLayer(typ.LayerMediaType()); !ok || back != typ {
			t.Fatalf("TypeFromLayer(%q) = %q, %v", typ.LayerMediaType(), back, ok)
		}
	})
}

// FuzzParsePlatform: an accepted platform is exactly os + "/" + arch, with both non-empty.
func FuzzParsePlatform(f *testing.F) {
	for _, s := range []string{"linux/amd64", "linux/arm64", "darwin/arm64", "windows/x86_64", "Linux/amd64", "linux", "linux/", "/amd64",
		"linux/amd64/v8", "linux/amd64\n", "", "linux//amd64"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		os, arch, err := ParsePlatform(s)
		if err != nil {
			if os != "" || arch != "" {
				t.Fatalf("ParsePlatform(%q) = %q, %q with error %v", s, os, arch, err)
			}
			return
		}
		if os == "" || arch == "" || strings.Contains(arch, "/") || os+"/"+arch != s {
			t.Fatalf("ParsePlatform(%q) = %q, %q", s, os, arch)
		}
		if o2, a2, err := ParsePlatform(os + "/" + arch); err != nil || o2 != os || a2 != arch {
			t.Fatalf("round trip of %q: %q %q %v", s, o2, a2, err)
		}
	})
}

// FuzzParseRequirement: an accepted requirement formats back to the input.
func FuzzParseRequirement(f *testing.F) {
	for _, s := range []string{"engine_version_semver:0.40.0", "k8saudit:0.7.0", "a:b", ":1", "a:", "a", "a:b:c", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRequirement(s)
		if err != nil {
			if r != (Requirement{}) {
				t.Fatalf("ParseRequirement(%q) = %+v with error %v", s, r, err)
			}
			return
		}
		if r.Name == "" || r.Version == "" || r.Name+":"+r.Version != s {
			t.Fatalf("ParseRequirement(%q) = %+v", s, r)
		}
		if r2, err := ParseRequirement(r.Name + ":" + r.Version); err != nil || r2 != r {
			t.Fatalf("round trip of %q: %+v, %v", s, r2, err)
		}
	})
}

func formatDependency(d Dependency) string {
	s := d.Name + ":" + d.Version
	for _, a := range d.Alternatives {
		s += "|" + a.Name + ":" + a.Version
	}
	return s
}

// FuzzParseDependency: with the CLI's strict semver check and with a check that accepts any
// version, an accepted dependency formats back to the input and re-parses to itself, names
// follow falcoctl's grammar, and a rejected one is the zero value.
func FuzzParseDependency(f *testing.F) {
	for _, s := range []string{"k8saudit:0.7.0", "k8saudit:0.7.0|k8saudit-eks:0.4.0|k8saudit-gke:0.1.0", "json:0.7.0-rc1",
		"k8saudit:0.7", "K8saudit:0.7.0", "k8saudit", "k8saudit:0.7.0|", "|k8saudit:0.7.0", "k8saudit:0.7.0+meta",
		"k8s_audit-x:1.2.3", "a:1.0.0:x", "", "k8saudit:0.7.0\n"} {
		f.Add(s)
	}
	strictFn := func(s string) error { _, err := version.ParseStrict(s); return err }
	anyFn := func(string) error { return nil }
	f.Fuzz(func(t *testing.T, s string) {
		for _, check := range []func(string) error{strictFn, anyFn} {
			d, err := ParseDependency(s, check)
			if err != nil {
				if !reflect.DeepEqual(d, Dependency{}) {
					t.Fatalf("ParseDependency(%q) = %+v with error %v", s, d, err)
				}
				continue
			}
			if !depNameRe.MatchString(d.Name) || check(d.Version) != nil {
				t.Fatalf("ParseDependency(%q) = %+v", s, d)
			}
			for _, a := range d.Alternatives {
				if !depNameRe.MatchString(a.Name) || check(a.Version) != nil {
					t.Fatalf("ParseDependency(%q): alternative %+v", s, a)
				}
			}
			if formatDependency(d) != s {
				t.Fatalf("ParseDependency(%q) = %+v formats as %q", s, d, formatDependency(d))
			}
			if d2, err := ParseDependency(formatDependency(d), check); err != nil || !reflect.DeepEqual(d2, d) {
				t.Fatalf("round trip of %q: %+v, %v", s, d2, err)
			}
		}
	})
}
