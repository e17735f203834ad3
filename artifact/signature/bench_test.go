package signature_test

import (
	"context"
	"crypto/elliptic"
	"testing"

	"github.com/sigstore/sigstore/pkg/cryptoutils"

	"github.com/falco-k8s/falco-k8s/artifact/ref"
	"github.com/falco-k8s/falco-k8s/artifact/signature"
	"github.com/falco-k8s/falco-k8s/artifact/signature/signaturetest"
)

// BenchmarkVerify is the signature check of one candidate digest against the in-process
// registry: fetch and verify, key-based (legacy tag, and v3 bundle: the tag is looked for
// first) and keyless (referrer bundle).
func BenchmarkVerify(b *testing.B) {
	ctx := context.Background()
	f := newExtFixture(b)
	r, d := f.push("rules/k8s:1", "a: 1\n")

	priv, pub, err := cryptoutils.GeneratePEMEncodedECDSAKeyPair(elliptic.P256(), nil)
	if err != nil {
		b.Fatal(err)
	}
	s, _ := signature.NewSigner(priv, nil)
	if _, err := s.Sign(ctx, f.c, r, d); err != nil {
		b.Fatal(err)
	}
	v, _ := signature.NewVerifier(pub)

	vs := signaturetest.NewSigstore(b)
	signaturetest.AttachBundle(b, f.c, r, d, signaturetest.KeylessBundle(b, vs, ciIdentity, ciIssuer, f.reg.Host+"/rules/k8s", d))
	k, err := signature.NewKeyless(signaturetest.TrustedRootJSON(b, vs), ciIdentity, "", ciIssuer, "")
	if err != nil {
		b.Fatal(err)
	}
	// A second artifact signed with the key as a v3 bundle only.
	r2, d2 := f.push("rules/k8s:2", "a: 2\n")
	signaturetest.AttachBundle(b, f.c, r2, d2, signaturetest.KeyBundle(b, priv, f.reg.Host+"/rules/k8s", d2))
	for _, bc := range []struct {
		name string
		c    signature.Checker
		r    ref.Reference
		d    string
	}{{"key", v, r, d}, {"key-bundle", v, r2, d2}, {"keyless", k, r, d}} {
		b.Run(bc.name, func(b *testing.B) {
			f.reg.Reset()
			for b.Loop() {
				if _, err := bc.c.Verify(ctx, f.c, bc.r, bc.d, signature.Required); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(f.reg.Requests())/float64(b.N), "requests/op")
		})
	}
}
