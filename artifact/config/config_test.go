package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadPrecedenceAndDefaults(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "falcoctl.yaml")
	if err := os.WriteFile(p, []byte(`
Indexes:
  - name: mine
    url: file:///x.yaml
artifact:
  allowedTypes: [rulesfile]
  install:
    rulesfilesDir: /from/config
    resolveDeps: false
driver:
  name: falco
`), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"FALCOCTL_ARTIFACT_INSTALL_RULESFILESDIR": "/from/env",
		"FALCOCTL_ARTIFACT_INSTALL_REFS":          "a:1; b:2",
		"FALCOCTL_ARTIFACT_ALLOWEDTYPES":          "rulesfile,plugin",
	}
	c, err := Load(p, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	in := c.Artifact.Install
	if in.RulesfilesDir != "/from/env" || in.PluginsDir != DefaultPluginsDir || *in.ResolveDeps {
		t.Fatalf("install: %+v", in)
	}
	if strings.Join(in.Refs, "|") != "a:1|b:2" || len(c.Artifact.AllowedTypes) != 2 {
		t.Fatalf("lists: %v %v", in.Refs, c.Artifact.AllowedTypes)
	}
	if len(c.Indexes) != 1 || c.Indexes[0].Name != "mine" {
		t.Fatalf("indexes: %v", c.Indexes)
	}
	// Missing file: defaults, and nothing is created.
	missing := filepath.Join(dir, "etc", "falcoctl", "falcoctl.yaml")
	c, err = Load(missing, func(string) string { return "" })
	if err != nil || c.Indexes[0].Name != DefaultIndexName || c.Artifact.Follow.StartupBehavior != "jitter" {
		t.Fatalf("defaults: %+v %v", c, err)
	}
	if _, err := os.Stat(filepath.Dir(missing)); !os.IsNotExist(err) {
		t.Fatal("Load created the config directory")
	}
	// SetIndexes keeps unrelated keys.
	if err := SetIndexes(p, []Index{{Name: "newidx", URL: "u"}}); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(p)
	if !strings.Contains(string(b), "driver:") || !strings.Contains(string(b), "name: newidx") || strings.Contains(string(b), "mine") {
		t.Fatalf("rewritten config: %s", b)
	}
}

func TestEnvErrors(t *testing.T) {
	for k, v := range map[string]string{
		"FALCOCTL_INDEXES":               "a,b,c",
		"FALCOCTL_ARTIFACT_INSTALL_REFS": "a;;b",
		"FALCOCTL_ARTIFACT_NOVERIFY":     "maybe",
		"FALCOCTL_REGISTRY_TLS":          "host,bogus",
		"FALCOCTL_REGISTRY_AUTH_BASIC":   "r,u",
	} {
		_, err := Load("", func(key string) string {
			if key == k {
				return v
			}
			return ""
		})
		if err == nil || !strings.Contains(err.Error(), k) {
			t.Errorf("%s=%q: want error naming the variable, got %v", k, v, err)
		}
	}
}

func TestParseTLSEnv(t *testing.T) {
	got, err := ParseTLSEnv("a:5000,plainhttp;b,insecure,cafile=/x.pem")
	if err != nil || len(got) != 2 || !got[0].PlainHTTP || !got[1].InsecureSkipVerify || got[1].CAFile != "/x.pem" {
		t.Fatalf("%+v %v", got, err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("indexes: [{name: a, url: b}]\nartifact: {install: {refs: [x]}}"))
	f.Add([]byte("- a"))
	f.Add([]byte("Registry: {Auth: {Basic: [{registry: r}]}}"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Parse(b)
		if err == nil && c == nil {
			t.Fatal("nil config without error")
		}
	})
}

func FuzzParseTLSEnv(f *testing.F) {
	f.Add("h,plainhttp;i,cafile=/p")
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseTLSEnv(s)
		if err == nil {
			for _, e := range got {
				if e.Registry == "" {
					t.Fatal("empty registry accepted")
				}
			}
		}
	})
}
