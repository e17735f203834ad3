package charm

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/rs/zerolog"

	"github.com/falco-k8s/falco-k8s/artifact/signature/signaturetest"
)

// TestResolveIndexSigners: resolving index names keeps each entry's keyless signer for the
// reference (cached with the resolution, so a later hook fetches nothing), only with a trusted
// root (else a warning, once); an entry whose signer cannot be checked blocks; a cache written
// by an older charm, without signers, is resolved again.
func TestResolveIndexSigners(t *testing.T) {
	var fetches atomic.Int32
	idx := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fetches.Add(1)
		entry := func(name, sig string) string {
			return fmt.Sprintf("- name: %s\n  type: rulesfile\n  registry: reg.example\n  repository: acme/%s\n%s", name, name, sig)
		}
		fmt.Fprint(w, entry("signed", "  signature:\n    cosign:\n      certificate-oidc-issuer: https://issuer\n      certificate-identity-regexp: ^https://ci/\n")+
			entry("plain", "")+
			entry("half", "  signature:\n    cosign:\n      certificate-identity: https://ci/x\n"))
	}))
	defer idx.Close()
	root := string(signaturetest.TrustedRootJSON(t, signaturetest.NewSigstore(t)))
	var logs strings.Builder
	c := &Context{Log: zerolog.New(&logs)}
	settings := func(artifacts, trustedRoot string) *Settings {
		t.Helper()
		s, err := ParseSettings(map[string]any{"rules-artifacts": artifacts, "rule-files": "r.yaml", "indexes": "t," + idx.URL + "/index.yaml",
			"rules-trusted-root": trustedRoot}, "falco-k8s")
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	want := map[string]RefSigner{"reg.example/acme/signed:1": {IdentityRegexp: "^https://ci/", Issuer: "https://issuer"}}

	m := &manifest{}
	s := settings("signed:1, plain:1", root)
	if err := c.resolveRefs(context.Background(), s, m); err != nil {
		t.Fatal(err)
	}
	if strings.Join(s.RulesArtifacts, " ") != "reg.example/acme/signed:1 reg.example/acme/plain:1" || fmt.Sprint(s.IndexSigners) != fmt.Sprint(want) || !m.dirty {
		t.Fatalf("resolved %v, signers %v (dirty %v)", s.RulesArtifacts, s.IndexSigners, m.dirty)
	}
	// The next hook: from the cache.
	m.dirty = false
	s = settings("signed:1, plain:1", root)
	if err := c.resolveRefs(context.Background(), s, m); err != nil || fmt.Sprint(s.IndexSigners) != fmt.Sprint(want) || m.dirty || fetches.Load() != 1 {
		t.Fatalf("cached: %v %v dirty %v, %d fetches", err, s.IndexSigners, m.dirty, fetches.Load())
	}
	// A cache from before signers were kept: resolved again.
	old := &manifest{Resolved: map[string]string{}}
	for k, v := range m.Resolved {
		old.Resolved[strings.TrimPrefix(k, resolvedKeyVersion)] = v
	}
	s = settings("signed:1, plain:1", root)
	if err := c.resolveRefs(context.Background(), s, old); err != nil || fmt.Sprint(s.IndexSigners) != fmt.Sprint(want) || fetches.Load() != 2 {
		t.Fatalf("old cache: %v %v, %d fetches", err, s.IndexSigners, fetches.Load())
	}
	// Without a trusted root: not verified, and said so once.
	m = &manifest{}
	for range 2 {
		s = settings("signed:1", "")
		if err := c.resolveRefs(context.Background(), s, m); err != nil || s.IndexSigners != nil {
			t.Fatalf("no trusted root: %v %v", err, s.IndexSigners)
		}
	}
	if n := strings.Count(logs.String(), "names a keyless signer that is not verified"); n != 1 {
		t.Fatalf("%d warnings:\n%s", n, logs.String())
	}
	// An entry naming an identity without an issuer cannot be checked: blocked.
	err := c.resolveRefs(context.Background(), settings("half:1", root), &manifest{})
	var be *blockedError
	if !errors.As(err, &be) || !strings.Contains(err.Error(), "the entry of half:1 names a keyless signer without exactly one certificate identity and one OIDC issuer") {
		t.Fatalf("incomplete signer: %v", err)
	}
}
