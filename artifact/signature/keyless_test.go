package signature_test

import (
	"context"
	"crypto/elliptic"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sigstore/sigstore/pkg/cryptoutils"

	"github.com/falco-k8s/falco-k8s/artifact/oci"
	"github.com/falco-k8s/falco-k8s/artifact/ref"
	"github.com/falco-k8s/falco-k8s/artifact/signature"
	"github.com/falco-k8s/falco-k8s/artifact/signature/signaturetest"
	"github.com/falco-k8s/falco-k8s/internal/testregistry"
)

const (
	ciIdentity = "https://github.com/acme/rules/.github/workflows/release.yaml@refs/heads/main"
	ciIssuer   = "https://token.actions.githubusercontent.com"
)

type extFixture struct {
	t   testing.TB
	reg *testregistry.Registry
	c   *oci.Client
}

func newExtFixture(t testing.TB) *extFixture {
	reg := testregistry.New(t, testregistry.Options{})
	c, err := oci.NewClient(oci.Options{PlainHTTP: true})
	if err != nil {
		t.Fatal(err)
	}
	return &extFixture{t: t, reg: reg, c: c}
}

func (f *extFixture) push(repoTag, body string) (ref.Reference, string) {
	f.t.Helper()
	path := filepath.Join(f.t.TempDir(), "rules.yaml")
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		f.t.Fatal(err)
	}
	r, err := ref.Parse(f.reg.Host + "/" + repoTag)
	if err != nil {
		f.t.Fatal(err)
	}
	res, err := f.c.Push(context.Background(), r, oci.PushOptions{Type: oci.Rulesfile, Layers: []oci.Layer{{Path: path}},
		Config: oci.ArtifactConfig{Name: "rules", Version: "1.0.0"}})
	if err != nil {
		f.t.Fatal(err)
	}
	return r, res.Root.Digest.String()
}

// TestKeyless: keyless bundles attached as referrers verify offline against a trusted root
// (generated here: the public Sigstore services cannot be reached) for the configured identity
// and issuer only.
func TestKeyless(t *testing.T) {
	ctx := context.Background()
	f := newExtFixture(t)
	vs := signaturetest.NewSigstore(t)
	trJSON := signaturetest.TrustedRootJSON(t, vs)
	k, err := signature.NewKeyless(trJSON, ciIdentity, "", ciIssuer, "")
	if err != nil {
		t.Fatal(err)
	}
	repoName := f.reg.Host + "/rules/k8s"

	r1, d1 := f.push("rules/k8s:1", "a: 1\n")
	signaturetest.AttachBundle(t, f.c, r1, d1, signaturetest.KeylessBundle(t, vs, ciIdentity, ciIssuer, repoName, d1))
	f.reg.Reset()
	start := time.Now()
	got, err := k.Verify(ctx, f.c, r1, d1, signature.Required)
	t.Logf("keyless verification in %s, %d registry requests", time.Since(start), f.reg.Requests())
	if err != nil || got == nil || got.Identity != ciIdentity || got.Issuer != ciIssuer {
		t.Fatalf("keyless: %+v %v", got, err)
	}

	r2, d2 := f.push("rules/k8s:2", "a: 2\n")
	signaturetest.AttachBundle(t, f.c, r2, d2, signaturetest.KeylessBundle(t, vs, "https://github.com/evil/fork/.github/workflows/x.yaml@refs/heads/main", ciIssuer, repoName, d2))
	r3, d3 := f.push("rules/k8s:3", "a: 3\n")
	r4, d4 := f.push("rules/k8s:4", "a: 4\n")
	signaturetest.AttachBundle(t, f.c, r4, d4, signaturetest.KeylessBundle(t, vs, ciIdentity, ciIssuer, repoName, d1)) // made for d1
	other := signaturetest.NewSigstore(t)
	r5, d5 := f.push("rules/k8s:5", "a: 5\n")
	signaturetest.AttachBundle(t, f.c, r5, d5, signaturetest.KeylessBundle(t, other, ciIdentity, ciIssuer, repoName, d5)) // untrusted CA
	for _, tc := range []struct {
		name string
		r    ref.Reference
		d    string
		p    signature.Policy
		kind signature.Kind
	}{
		{"other identity", r2, d2, signature.Required, signature.BadSignature},
		{"unsigned", r3, d3, signature.Required, signature.Unsigned},
		{"unsigned if-present", r3, d3, signature.IfPresent, ""},
		{"made for another digest", r4, d4, signature.Required, signature.OtherDigest},
		{"untrusted CA", r5, d5, signature.Required, signature.BadSignature},
	} {
		_, err := k.Verify(ctx, f.c, tc.r, tc.d, tc.p)
		var se *signature.Error
		if tc.kind == "" && err != nil || tc.kind != "" && (!errors.As(err, &se) || se.Kind != tc.kind) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.kind)
		} else if err != nil {
			t.Logf("%s: %v", tc.name, err)
		}
	}
}

// TestKeyBundle: a key-based v3 bundle (made here with sigstore's DSSE signer; the real cosign's
// are in TestCosignBundleInterop) verifies with the key, not with another key nor as keyless;
// with a key and an identity configured (signature.Any) either kind of bundle is accepted.
func TestKeyBundle(t *testing.T) {
	ctx := context.Background()
	f := newExtFixture(t)
	priv, pub, err := cryptoutils.GeneratePEMEncodedECDSAKeyPair(elliptic.P256(), nil)
	if err != nil {
		t.Fatal(err)
	}
	_, otherPub, err := cryptoutils.GeneratePEMEncodedECDSAKeyPair(elliptic.P256(), nil)
	if err != nil {
		t.Fatal(err)
	}
	v, _ := signature.NewVerifier(pub)
	other, _ := signature.NewVerifier(otherPub)
	vs := signaturetest.NewSigstore(t)
	k, err := signature.NewKeyless(signaturetest.TrustedRootJSON(t, vs), ciIdentity, "", ciIssuer, "")
	if err != nil {
		t.Fatal(err)
	}
	repoName := f.reg.Host + "/rules/k8s"
	r1, d1 := f.push("rules/k8s:1", "a: 1\n")
	signaturetest.AttachBundle(t, f.c, r1, d1, signaturetest.KeyBundle(t, priv, repoName, d1))
	r2, d2 := f.push("rules/k8s:2", "a: 2\n")
	signaturetest.AttachBundle(t, f.c, r2, d2, signaturetest.KeylessBundle(t, vs, ciIdentity, ciIssuer, repoName, d2))
	for _, tc := range []struct {
		name string
		c    signature.Checker
		r    ref.Reference
		d    string
		kind signature.Kind // "" accepted
	}{
		{"the key", v, r1, d1, ""},
		{"another key", other, r1, d1, signature.BadSignature},
		{"keyless checker on a key bundle", k, r1, d1, signature.BadSignature},
		{"key checker on a keyless bundle", v, r2, d2, signature.BadSignature},
		{"key or identity, key bundle", signature.Any{v, k}, r1, d1, ""},
		{"key or identity, keyless bundle", signature.Any{v, k}, r2, d2, ""},
	} {
		got, err := tc.c.Verify(ctx, f.c, tc.r, tc.d, signature.Required)
		var se *signature.Error
		switch {
		case tc.kind == "" && (err != nil || got == nil):
			t.Errorf("%s: %+v %v", tc.name, got, err)
		case tc.kind != "" && (!errors.As(err, &se) || se.Kind != tc.kind):
			t.Errorf("%s: %v, want %s", tc.name, err, tc.kind)
		default:
			t.Logf("%s: %v %v", tc.name, got, err)
		}
	}
}
