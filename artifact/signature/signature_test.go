package signature

import (
	"bytes"
	"context"
	"crypto/elliptic"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"oras.land/oras-go/v2/registry/remote"

	"github.com/falco-k8s/falco-k8s/artifact/oci"
	"github.com/falco-k8s/falco-k8s/artifact/ref"
	"github.com/falco-k8s/falco-k8s/internal/testregistry"
)

// keyPair returns a PEM private key (encrypted with password when set) and its public key.
func keyPair(t testing.TB, password string) (priv, pub []byte) {
	t.Helper()
	var pf cryptoutils.PassFunc
	if password != "" {
		pf = cryptoutils.StaticPasswordFunc([]byte(password))
	}
	priv, pub, err := cryptoutils.GeneratePEMEncodedECDSAKeyPair(elliptic.P256(), pf)
	if err != nil {
		t.Fatal(err)
	}
	return priv, pub
}

type fixture struct {
	t   testing.TB
	reg *testregistry.Registry
	c   *oci.Client
}

func newFixture(t testing.TB) *fixture {
	reg := testregistry.New(t, testregistry.Options{})
	c, err := oci.NewClient(oci.Options{PlainHTTP: true})
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{t: t, reg: reg, c: c}
}

// push uploads a rulesfile artifact with body as its one file and returns its reference and
// digest.
func (f *fixture) push(repoTag, body string) (ref.Reference, string) {
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

func TestSignVerify(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	priv, pub := keyPair(t, "s3cret")
	signer, err := NewSigner(priv, []byte("s3cret"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewSigner(priv, []byte("wrong")); err == nil {
		t.Fatal("wrong password accepted")
	}
	v, err := NewVerifier(pub)
	if err != nil {
		t.Fatal(err)
	}
	_, otherPub := keyPair(t, "")
	other, err := NewVerifier(otherPub)
	if err != nil {
		t.Fatal(err)
	}

	r, d := f.push("rules/k8s:1", "a: 1\n")
	if _, err := signer.Sign(ctx, f.c, r, d); err != nil {
		t.Fatal(err)
	}
	f.reg.Reset()
	got, err := v.Verify(ctx, f.c, r, d, Required)
	if err != nil || got == nil || got.Key != signer.Key() || got.Identity != f.reg.Host+"/rules/k8s" {
		t.Fatalf("verify: %+v %v", got, err)
	}
	if n := f.reg.Requests(); n != 2 {
		t.Fatalf("verification took %d requests, want 2 (signature manifest, payload): %v", n, f.reg.Log())
	}
	// Signing again with another key keeps the first signature: both keys verify.
	otherPriv, otherPub2 := keyPair(t, "")
	s2, _ := NewSigner(otherPriv, nil)
	if _, err := s2.Sign(ctx, f.c, r, d); err != nil {
		t.Fatal(err)
	}
	v2, _ := NewVerifier(otherPub2)
	for _, vv := range []*Verifier{v, v2} {
		if _, err := vv.Verify(ctx, f.c, r, d, Required); err != nil {
			t.Fatalf("after a second signature: %v", err)
		}
	}

	// Unsigned.
	r2, d2 := f.push("rules/k8s:2", "a: 2\n")
	// A signature for d copied to d2's signature tag: made for another digest.
	r3, d3 := f.push("rules/k8s:3", "a: 3\n")
	copySig(t, f, r, d, d3)
	// A payload swapped for d4's while keeping d's signature: tampered.
	r4, d4 := f.push("rules/k8s:4", "a: 4\n")
	if _, err := signer.Sign(ctx, f.c, r4, d4); err != nil {
		t.Fatal(err)
	}
	tamper(t, f, r4, d4)

	cases := []struct {
		name   string
		v      *Verifier
		r      ref.Reference
		d      string
		policy Policy
		kind   Kind // "" for success
		signed bool
	}{
		{"signed", v, r, d, Required, "", true},
		{"other key", other, r, d, Required, BadSignature, false},
		{"other key if-present", other, r, d, IfPresent, BadSignature, false},
		{"unsigned", v, r2, d2, Required, Unsigned, false},
		{"unsigned if-present", v, r2, d2, IfPresent, "", false},
		{"unsigned off", v, r2, d2, Off, "", false},
		{"signature for another digest", v, r3, d3, Required, OtherDigest, false},
		{"tampered payload", v, r4, d4, Required, BadSignature, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.v.Verify(ctx, f.c, tc.r, tc.d, tc.policy)
			var se *Error
			switch {
			case tc.kind == "" && err != nil:
				t.Fatalf("unexpected %v", err)
			case tc.kind != "" && (!errors.As(err, &se) || se.Kind != tc.kind):
				t.Fatalf("err %v, want kind %s", err, tc.kind)
			case (got != nil) != tc.signed:
				t.Fatalf("signer %+v", got)
			}
			if err != nil {
				t.Log(err)
			}
		})
	}
}

// copySig puts digest d's signature manifest under dst's signature tag.
func copySig(t *testing.T, f *fixture, r ref.Reference, d, dst string) {
	t.Helper()
	repo, err := repository(f.c, r)
	if err != nil {
		t.Fatal(err)
	}
	desc, rc, err := repo.FetchReference(context.Background(), Tag(d))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(rc)
	rc.Close()
	if err := repo.PushReference(context.Background(), desc, bytes.NewReader(raw), Tag(dst)); err != nil {
		t.Fatal(err)
	}
}

// tamper rewrites d's signature manifest so its payload names another digest while keeping the
// original signature.
func tamper(t *testing.T, f *fixture, r ref.Reference, d string) {
	t.Helper()
	ctx := context.Background()
	repo, err := repository(f.c, r)
	if err != nil {
		t.Fatal(err)
	}
	_, rc, err := repo.FetchReference(ctx, Tag(d))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(rc)
	rc.Close()
	var m map[string]any
	json.Unmarshal(raw, &m) //nolint:errcheck
	layers := m["layers"].([]any)
	l := layers[0].(map[string]any)
	body := []byte(`{"critical":{"identity":{"docker-reference":"x/y"},"image":{"docker-manifest-digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000"},"type":"cosign container image signature"},"optional":null}`)
	if err := pushBlob(ctx, repo, SimpleSigningMediaType, body); err != nil {
		t.Fatal(err)
	}
	l["digest"] = digestOf(body)
	l["size"] = len(body)
	raw, _ = json.Marshal(m)
	if err := pushManifest(ctx, repo, raw, Tag(d)); err != nil {
		t.Fatal(err)
	}
}

func digestOf(b []byte) string { return digest.FromBytes(b).String() }

func pushManifest(ctx context.Context, repo *remote.Repository, raw []byte, tag string) error {
	d := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(raw), Size: int64(len(raw))}
	return repo.PushReference(ctx, d, bytes.NewReader(raw), tag)
}
