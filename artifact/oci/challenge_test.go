package oci

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	orasauth "oras.land/oras-go/v2/registry/remote/auth"

	"github.com/falco-k8s/falco-k8s/artifact/ref"
	"github.com/falco-k8s/falco-k8s/internal/testregistry"
)

const (
	testUser = "carol"
	testPass = "pa55-w0rd-never-on-disk"
)

func basicCred(user, pass string) orasauth.CredentialFunc {
	return func(context.Context, string) (orasauth.Credential, error) {
		return orasauth.Credential{Username: user, Password: pass}, nil
	}
}

// pushRules pushes a one-rule rulesfile with a client that has no challenge
// cache, so the tests below start from a cold cache file.
func pushRules(t *testing.T, reg *testregistry.Registry, cred orasauth.CredentialFunc, name string) ref.Reference {
	t.Helper()
	p := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(p, []byte("- rule: a\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := ref.Parse(reg.Host + "/" + name + ":1")
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewClient(Options{PlainHTTP: true, Credential: cred})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Push(context.Background(), r, PushOptions{Type: Rulesfile, Layers: []Layer{{Path: p}},
		Config: ArtifactConfig{Name: name, Version: "1.0.0"}}); err != nil {
		t.Fatal(err)
	}
	return r
}

// install does what "artifact install" does on the wire: manifest, config,
// layer, with a fresh process-wide client.
func install(t *testing.T, file string, cred orasauth.CredentialFunc, r ref.Reference) error {
	t.Helper()
	c, err := NewClient(Options{PlainHTTP: true, Credential: cred, ChallengeCacheFile: file})
	if err != nil {
		t.Fatal(err)
	}
	a, err := c.Describe(context.Background(), r, "")
	if err != nil {
		return err
	}
	return c.FetchLayer(context.Background(), a, io.Discard, 1<<20)
}

func TestChallengeCacheSavesTheChallengeRoundTrip(t *testing.T) {
	reg := testregistry.New(t, testregistry.Options{Token: true, User: testUser, Password: testPass})
	cred := basicCred(testUser, testPass)
	r := pushRules(t, reg, cred, "rules/a")
	file := filepath.Join(t.TempDir(), "sub", "registry-challenges.json")

	reg.Reset()
	if err := install(t, file, cred, r); err != nil {
		t.Fatal(err)
	}
	if n := reg.Requests(); n != 5 {
		t.Fatalf("first contact: %d requests, want 5 (401, token, manifest, config, layer): %v", n, reg.Log())
	}
	// Lean first contact: the 401 comes from the manifest GET itself, with
	// no /v2/ ping and no HEAD before it.
	if log := reg.Log(); log[0] != log[2] || !strings.Contains(log[0], "GET /v2/rules/a/manifests/1") || log[1] != "GET /token" {
		t.Fatalf("first contact: want manifest (401), token, manifest, ...; got %v", log)
	}

	fi, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("cache file mode %v, want 0600", fi.Mode().Perm())
	}
	if di, _ := os.Stat(filepath.Dir(file)); di.Mode().Perm() != 0o700 {
		t.Fatalf("cache dir mode %v, want 0700", di.Mode().Perm())
	}
	b, _ := os.ReadFile(file)
	for _, secret := range []string{testPass, testUser, testregistry.Token, "scope"} {
		if bytes.Contains(b, []byte(secret)) {
			t.Fatalf("cache file contains %q:\n%s", secret, b)
		}
	}
	if !bytes.Contains(b, []byte(`"realm": "`+reg.URL+`/token"`)) {
		t.Fatalf("cache file lacks the realm:\n%s", b)
	}
	if entries, _ := os.ReadDir(filepath.Dir(file)); len(entries) != 1 {
		t.Fatalf("temporary files left behind: %v", entries)
	}

	reg.Reset()
	if err := install(t, file, cred, r); err != nil {
		t.Fatal(err)
	}
	log := reg.Log()
	if len(log) != 4 || log[0] != "GET /token" || !strings.Contains(log[1], "/manifests/") {
		t.Fatalf("warm cache: want token + manifest + config + layer, got %v", log)
	}

	// A second repository in the same process is pre-authenticated too.
	r2 := pushRules(t, reg, cred, "rules/b")
	c, _ := NewClient(Options{PlainHTTP: true, Credential: cred, ChallengeCacheFile: file})
	reg.Reset()
	for _, rr := range []ref.Reference{r, r2} {
		if _, err := c.Describe(context.Background(), rr, ""); err != nil {
			t.Fatal(err)
		}
	}
	if n := reg.Requests(); n != 6 {
		t.Fatalf("two repositories: %d requests, want 2x(token, manifest, config): %v", n, reg.Log())
	}
}

func TestChallengeCacheStaleRealmFallsBack(t *testing.T) {
	reg := testregistry.New(t, testregistry.Options{Token: true, User: testUser, Password: testPass})
	cred := basicCred(testUser, testPass)
	r := pushRules(t, reg, cred, "rules/a")
	file := filepath.Join(t.TempDir(), "c.json")
	if err := install(t, file, cred, r); err != nil {
		t.Fatal(err)
	}

	reg.SetRealm("/v2/auth") // the registry moved its token endpoint
	reg.Reset()
	if err := install(t, file, cred, r); err != nil {
		t.Fatalf("stale realm must fall back to the registry's challenge: %v", err)
	}
	log := reg.Log()
	if len(log) != 6 || log[0] != "GET /token" || log[2] != "GET /v2/auth" {
		t.Fatalf("stale realm: want failed pre-fetch, then 401, token, manifest, config, layer; got %v", log)
	}
	if b, _ := os.ReadFile(file); !bytes.Contains(b, []byte(reg.URL+"/v2/auth")) {
		t.Fatalf("cache not refreshed from the new challenge:\n%s", b)
	}

	reg.Reset()
	if err := install(t, file, cred, r); err != nil {
		t.Fatal(err)
	}
	if n := reg.Requests(); n != 4 {
		t.Fatalf("after refresh: %d requests, want 4: %v", n, reg.Log())
	}
}

func TestChallengeCacheWrongPassword(t *testing.T) {
	reg := testregistry.New(t, testregistry.Options{Token: true, User: testUser, Password: testPass})
	r := pushRules(t, reg, basicCred(testUser, testPass), "rules/a")
	file := filepath.Join(t.TempDir(), "c.json")
	for _, warm := range []bool{false, true} {
		if warm {
			if err := install(t, file, basicCred(testUser, testPass), r); err != nil {
				t.Fatal(err)
			}
		}
		err := install(t, file, basicCred(testUser, "wrong"), r)
		if err == nil {
			t.Fatalf("warm=%v: wrong password accepted", warm)
		}
		msg := err.Error()
		t.Logf("warm=%v: %s", warm, msg)
		if !strings.Contains(msg, reg.Host+"/rules/a") || !strings.Contains(msg, "authentication failed") {
			t.Fatalf("warm=%v: error should name the registry and say authentication failed: %v", warm, msg)
		}
		if strings.Contains(msg, "wrong") || strings.Contains(msg, "pre-fetch") {
			t.Fatalf("warm=%v: error leaks the password or the pre-fetch detail: %v", warm, msg)
		}
	}
	if b, _ := os.ReadFile(file); !bytes.Contains(b, []byte(reg.URL+"/token")) {
		t.Fatalf("a wrong password must not drop a correct challenge:\n%s", b)
	}
}

// A tampered cache naming another host (or http for an https registry) is
// never used: nothing reaches the other host.
func TestChallengeCacheRejectsForeignRealm(t *testing.T) {
	var stolen atomic.Int64
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		stolen.Add(1)
		_, _ = w.Write([]byte(`{"token":"x"}`))
	}))
	defer evil.Close()
	reg := testregistry.New(t, testregistry.Options{Token: true, User: testUser, Password: testPass})
	cred := basicCred(testUser, testPass)
	r := pushRules(t, reg, cred, "rules/a")
	file := filepath.Join(t.TempDir(), "c.json")
	poison := `{"version":1,"registries":{"` + reg.Host + `":{"realm":"` + evil.URL + `/token","service":"test"}}}`
	if err := os.WriteFile(file, []byte(poison), 0o600); err != nil {
		t.Fatal(err)
	}
	reg.Reset()
	if err := install(t, file, cred, r); err != nil {
		t.Fatal(err)
	}
	if stolen.Load() != 0 {
		t.Fatal("credentials were sent to a realm on another host")
	}
	if n := reg.Requests(); n != 5 {
		t.Fatalf("%d requests, want the normal 5: %v", n, reg.Log())
	}
	if b, _ := os.ReadFile(file); bytes.Contains(b, []byte(evil.URL)) {
		t.Fatalf("the registry's own challenge did not replace the poisoned entry:\n%s", b)
	}

	for _, tc := range []struct {
		host, realm string
		plain, ok   bool
	}{
		{"ghcr.io", "https://ghcr.io/token", false, true},
		{"ghcr.io", "https://GHCR.io/token?x=1", false, true},
		{"ghcr.io", "http://ghcr.io/token", false, false},
		{"h:5000", "http://h:5000/token", true, true},
		{"h:5000", "https://h:5000/token", true, true},
		{"ghcr.io", "https://ghcr.io:443/token", false, false},
		{"ghcr.io", "https://evil.example/token", false, false},
		{"ghcr.io", "https://u:p@ghcr.io/token", false, false},
		{"ghcr.io", "file:///etc/passwd", false, false},
		{"ghcr.io", "ghcr.io/token", false, false},
		{"docker.io", "https://auth.docker.io/token", false, false},
	} {
		if _, ok := usableRealm(tc.host, tc.realm, tc.plain); ok != tc.ok {
			t.Errorf("usableRealm(%q, %q, plain=%v) = %v, want %v", tc.host, tc.realm, tc.plain, ok, tc.ok)
		}
	}
}

func TestChallengeCacheIgnoresBadFiles(t *testing.T) {
	reg := testregistry.New(t, testregistry.Options{Token: true})
	r := pushRules(t, reg, nil, "rules/a")
	for name, tc := range map[string]struct {
		body string
		mode os.FileMode
	}{
		"corrupt":         {`{"version":1,"registries":{`, 0o600},
		"other version":   {`{"version":2,"registries":{"` + reg.Host + `":{"realm":"` + reg.URL + `/token"}}}`, 0o600},
		"world-writable":  {`{"version":1,"registries":{"` + reg.Host + `":{"realm":"` + reg.URL + `/token"}}}`, 0o666},
		"empty":           {``, 0o600},
		"realm is a path": {`{"version":1,"registries":{"` + reg.Host + `":{"realm":"/token"}}}`, 0o600},
	} {
		t.Run(name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "c.json")
			if err := os.WriteFile(file, []byte(tc.body), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(file, tc.mode); err != nil {
				t.Fatal(err)
			}
			reg.Reset()
			if err := install(t, file, nil, r); err != nil {
				t.Fatal(err)
			}
			if n := reg.Requests(); n != 5 {
				t.Fatalf("%d requests, want the normal 5: %v", n, reg.Log())
			}
		})
	}
	// A missing file in a directory that cannot be created: still works.
	ro := t.TempDir()
	if err := os.Chmod(ro, 0o500); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Chmod(ro, 0o700) })
	if err := install(t, filepath.Join(ro, "x", "c.json"), nil, r); err != nil {
		t.Fatalf("an unwritable cache dir must not fail the install: %v", err)
	}
}

// The registry stops asking for tokens: the entry goes away, so later runs
// do not fetch tokens for nothing.
func TestChallengeCacheForgetsWhenAuthIsDropped(t *testing.T) {
	openReg := testregistry.New(t, testregistry.Options{})
	r := pushRules(t, openReg, nil, "rules/a")
	file := filepath.Join(t.TempDir(), "c.json")
	// Claim openReg asked for tokens at an endpoint that does not exist there.
	body := `{"version":1,"registries":{"` + openReg.Host + `":{"realm":"` + openReg.URL + `/token"}}}`
	if err := os.WriteFile(file, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := install(t, file, nil, r); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(file); bytes.Contains(b, []byte(openReg.Host)) {
		t.Fatalf("entry kept for a registry that answers without auth:\n%s", b)
	}
	openReg.Reset()
	if err := install(t, file, nil, r); err != nil {
		t.Fatal(err)
	}
	if n := openReg.Requests(); n != 3 {
		t.Fatalf("%d requests, want 3: %v", n, openReg.Log())
	}
}

// Many goroutines of one process share one pre-fetch per scope set.
func TestChallengeCacheConcurrent(t *testing.T) {
	reg := testregistry.New(t, testregistry.Options{Token: true})
	r := pushRules(t, reg, nil, "rules/a")
	file := filepath.Join(t.TempDir(), "c.json")
	if err := install(t, file, nil, r); err != nil {
		t.Fatal(err)
	}
	c, _ := NewClient(Options{PlainHTTP: true, ChallengeCacheFile: file})
	reg.Reset()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := c.Resolve(context.Background(), r); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	tokens := 0
	for _, l := range reg.Log() {
		if strings.HasPrefix(l, "GET /token") {
			tokens++
		}
		if strings.Contains(l, "401") {
			t.Fatal(l)
		}
	}
	if tokens != 1 || reg.Requests() != 9 {
		t.Fatalf("want 1 token + 8 HEADs, got %v", reg.Log())
	}
}

func TestParseBearerChallenge(t *testing.T) {
	s, p := parseBearerChallenge(`Bearer realm="https://ghcr.io/token",service="ghcr.io", scope="repository:a/b:pull"`)
	if s != "Bearer" || p["realm"] != "https://ghcr.io/token" || p["service"] != "ghcr.io" || p["scope"] != "repository:a/b:pull" {
		t.Fatalf("%q %v", s, p)
	}
	s, p = parseBearerChallenge(`Basic realm="x\"y"`)
	if s != "Basic" || p["realm"] != `x"y` {
		t.Fatalf("%q %v", s, p)
	}
	if _, p = parseBearerChallenge(`Bearer realm="unterminated`); p["realm"] != "" {
		t.Fatalf("%v", p)
	}
}

// The other credential kinds oras handles: an OAuth2 access token is sent as
// is (no token request at all), a refresh token (docker "identitytoken")
// goes through the OAuth2 POST grant, as in oras.
func TestChallengeCacheCredentialKinds(t *testing.T) {
	reg := testregistry.New(t, testregistry.Options{Token: true})
	r := pushRules(t, reg, nil, "rules/a")
	for _, tc := range []struct {
		name string
		cred orasauth.Credential
		want []string
	}{
		{"access token", orasauth.Credential{AccessToken: testregistry.Token}, nil},
		{"refresh token", orasauth.Credential{RefreshToken: "refresh-secret"}, []string{"POST /token"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cred := func(context.Context, string) (orasauth.Credential, error) { return tc.cred, nil }
			file := filepath.Join(t.TempDir(), "c.json")
			if err := install(t, file, cred, r); err != nil {
				t.Fatal(err)
			}
			if b, _ := os.ReadFile(file); bytes.Contains(b, []byte("secret")) || bytes.Contains(b, []byte(testregistry.Token)) {
				t.Fatalf("secret on disk:\n%s", b)
			}
			reg.Reset()
			if err := install(t, file, cred, r); err != nil {
				t.Fatal(err)
			}
			log := reg.Log()
			if len(log) != len(tc.want)+3 || (tc.want != nil && log[0] != tc.want[0]) {
				t.Fatalf("want %v + manifest, config, layer; got %v", tc.want, log)
			}
		})
	}
}
