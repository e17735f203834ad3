package auth

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/oauth2/clientcredentials"
)

func TestParseBasicEnv(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []Basic
		err  string
	}{
		{"ghcr.io,u,p", []Basic{{"ghcr.io", "u", "p"}}, ""},
		{"ghcr.io/org/repo,u,p;localhost:5000,a,b", []Basic{{"ghcr.io", "u", "p"}, {"localhost:5000", "a", "b"}}, ""},
		{" r,u,p ", []Basic{{" r", "u", "p "}}, ""}, // no trimming, like falcoctl
		{`[{"registry":"r","user":"u","password":"p,;w"}]`, []Basic{{"r", "u", "p,;w"}}, ""},
		{"r,u,p;", nil, "trailing ';'"},
		{"r,u,p;;r2,u,p", nil, "entry 2 is empty"},
		{"r,u", nil, "exactly 3"},
		{"r,u,p,with,commas", nil, "exactly 3"},
		{"r,,p", nil, "empty user"},
		{",u,p", nil, "empty registry"},
		{`[{"registry":"r"}]`, nil, "non-empty"},
		{`[{"registry":"r","user":"u","password":"supersecret"`, nil, "invalid JSON"},
	} {
		got, err := ParseBasicEnv(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: want %q, got %v", tc.in, tc.err, err)
			}
			if err != nil && strings.Contains(err.Error(), "supersecret") {
				t.Errorf("secret leaked: %v", err)
			}
			continue
		}
		if err != nil || len(got) != len(tc.want) {
			t.Fatalf("%q: %v %v", tc.in, got, err)
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Errorf("%q: got %+v want %+v", tc.in, got[i], tc.want[i])
			}
		}
	}
}

func FuzzParseBasicEnv(f *testing.F) {
	for _, s := range []string{"r,u,p", "a,b,c;d,e,f", "[{", ";", "r,u,p;"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseBasicEnv(s)
		if err != nil {
			// Errors must not echo field contents (they may be passwords).
			for _, part := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ';' }) {
				if len(part) > 12 && strings.Contains(err.Error(), part) {
					t.Fatalf("error echoes input %q: %v", part, err)
				}
			}
			return
		}
		for _, b := range got {
			if b.Registry == "" || b.User == "" || b.Password == "" || strings.Contains(b.Registry, "/") {
				t.Fatalf("invalid entry accepted: %+v", b)
			}
		}
	})
}

func FuzzParseOAuthEnv(f *testing.F) {
	f.Add("r,id,secret,https://t/token")
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseOAuthEnv(s)
		if err == nil {
			for _, o := range got {
				if o.TokenURL == "" || o.ClientSecret == "" {
					t.Fatal("empty field accepted")
				}
			}
		}
	})
}

func TestClientCredentialsFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "sub", "clientcredentials.json")
	if err := WriteClientCredentials(p, "reg", clientcredentials.Config{ClientID: "id", ClientSecret: "s", TokenURL: "http://t"}); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(p)
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", fi.Mode())
	}
	b, _ := os.ReadFile(p)
	if !strings.Contains(string(b), `"ClientID": "id"`) || !strings.Contains(string(b), `"TokenURL"`) {
		t.Fatalf("falcoctl shape: %s", b)
	}
	m, err := ReadClientCredentials(p)
	if err != nil || m["reg"].ClientID != "id" {
		t.Fatal(m, err)
	}
}

// Two logins at once used to share one fixed PATH.tmp: one writer could rename the other's
// half-written file into place or fail on a temp file that vanished. Every concurrent write
// must now succeed and leave a whole, 0600 file holding one writer's entry.
func TestClientCredentialsConcurrentWriters(t *testing.T) {
	p := filepath.Join(t.TempDir(), "clientcredentials.json")
	const writers = 16
	var wg sync.WaitGroup
	for i := 0; i < writers; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			id := fmt.Sprintf("id-%02d", i)
			if err := WriteClientCredentials(p, "reg", clientcredentials.Config{ClientID: id, ClientSecret: strings.Repeat("s", 100*i), TokenURL: "http://t"}); err != nil {
				t.Errorf("writer %d: %v", i, err)
			}
		}(i)
	}
	wg.Wait()
	m, err := ReadClientCredentials(p)
	if err != nil {
		t.Fatalf("torn file: %v", err)
	}
	var id int
	if _, err := fmt.Sscanf(m["reg"].ClientID, "id-%02d", &id); err != nil || m["reg"].ClientSecret != strings.Repeat("s", 100*id) {
		t.Fatalf("entry is no writer's whole entry: %+v", m["reg"])
	}
	if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, %v", fi.Mode(), err)
	}
	if ents, _ := os.ReadDir(filepath.Dir(p)); len(ents) != 1 {
		t.Fatalf("temporary files left: %v", ents)
	}
}

func TestResolverOrder(t *testing.T) {
	dir := t.TempDir()
	dc := filepath.Join(dir, "config.json")
	// "dTpwdw==" is base64("u:pw").
	if err := os.WriteFile(dc, []byte(`{"auths":{"docker.example":{"auth":"dTpwdw=="},"env.example":{"auth":"dTpwdw=="}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := NewResolver(context.Background(), Sources{Basic: []Basic{{"env.example", "envuser", "envpw"}, {"env.example", "cfg", "cfg"}}, DockerConfig: dc})
	if err != nil {
		t.Fatal(err)
	}
	c, _ := r.Credential(context.Background(), "env.example")
	if c.Username != "envuser" {
		t.Fatalf("env entry must win: %+v", c)
	}
	c, _ = r.Credential(context.Background(), "docker.example")
	if c.Username != "u" || c.Password != "pw" {
		t.Fatalf("docker store: %+v", c)
	}
	before, _ := os.ReadFile(dc)
	_, _ = r.Credential(context.Background(), "other.example")
	after, _ := os.ReadFile(dc)
	if string(before) != string(after) {
		t.Fatal("resolver wrote the docker config")
	}
}
