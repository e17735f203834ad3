// Package signaturetest makes cosign v3 signatures for tests: keyless Sigstore bundles signed by
// a test CA's short-lived certificate and logged in a test transparency log (sigstore-go's
// virtual Sigstore), the trusted_root.json a user would provide for them, key-based bundles,
// and their attachment to an artifact as an OCI 1.1 referrer, as cosign v3 does. The public
// Sigstore services cannot be reached from tests.
package signaturetest

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"testing"
	"time"

	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	protodsse "github.com/sigstore/protobuf-specs/gen/pb-go/dsse"
	protorekor "github.com/sigstore/protobuf-specs/gen/pb-go/rekor/v1"
	"github.com/sigstore/sigstore-go/pkg/bundle"
	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore-go/pkg/testing/ca"
	"google.golang.org/protobuf/proto"

	"github.com/falco-k8s/falco-k8s/artifact/oci"
	"github.com/falco-k8s/falco-k8s/artifact/ref"
	"github.com/falco-k8s/falco-k8s/artifact/signature"
)

// NewSigstore is a fresh test CA, transparency log and timestamp authority.
func NewSigstore(t testing.TB) *ca.VirtualSigstore {
	t.Helper()
	vs, err := ca.NewVirtualSigstore()
	if err != nil {
		t.Fatal(err)
	}
	return vs
}

// KeylessBundle signs an in-toto statement naming subject (as cosign v3's sign does) with a
// short-lived certificate from the test CA for identity and issuer, logs it in the test
// transparency log, and returns the Sigstore bundle (v0.3) JSON.
func KeylessBundle(t testing.TB, vs *ca.VirtualSigstore, identity, issuer, repo, subject string) []byte {
	t.Helper()
	ent, err := vs.AttestAtTime(identity, issuer, signature.SignStatement(repo, subject), time.Now().Add(5*time.Minute), true)
	if err != nil {
		t.Fatal(err)
	}
	sc, _ := ent.SignatureContent()
	env := sc.EnvelopeContent().RawEnvelope()
	payload, err := base64.StdEncoding.DecodeString(env.Payload)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := base64.StdEncoding.DecodeString(env.Signatures[0].Sig)
	if err != nil {
		t.Fatal(err)
	}
	vc, _ := ent.VerificationContent()
	entries, _ := ent.TlogEntries()
	tle := proto.Clone(entries[0].TransparencyLogEntry()).(*protorekor.TransparencyLogEntry)
	tle.KindVersion = &protorekor.KindVersion{Kind: "intoto", Version: "0.0.2"}
	tss, _ := ent.Timestamps()
	var rfc []*protocommon.RFC3161SignedTimestamp
	for _, ts := range tss {
		rfc = append(rfc, &protocommon.RFC3161SignedTimestamp{SignedTimestamp: ts})
	}
	pb := &protobundle.Bundle{
		MediaType: signature.BundleMediaType,
		VerificationMaterial: &protobundle.VerificationMaterial{
			Content:                   &protobundle.VerificationMaterial_Certificate{Certificate: &protocommon.X509Certificate{RawBytes: vc.Certificate().Raw}},
			TlogEntries:               []*protorekor.TransparencyLogEntry{tle},
			TimestampVerificationData: &protobundle.TimestampVerificationData{Rfc3161Timestamps: rfc},
		},
		Content: &protobundle.Bundle_DsseEnvelope{DsseEnvelope: &protodsse.Envelope{
			Payload: payload, PayloadType: env.PayloadType, Signatures: []*protodsse.Signature{{Sig: sig}}}},
	}
	b, err := bundle.NewBundle(pb)
	if err != nil {
		t.Fatal(err)
	}
	out, err := b.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TrustedRootJSON writes the test Sigstore's CA, log and TSA keys as a trusted_root.json, the
// file a user provides.
func TrustedRootJSON(t testing.TB, vs *ca.VirtualSigstore) []byte {
	t.Helper()
	// The virtual log names itself by its hex key ID; a trusted root carries the raw bytes.
	logs := map[string]*root.TransparencyLog{}
	for k, l := range vs.RekorLogs() {
		c := *l
		id, err := hex.DecodeString(k)
		if err != nil {
			t.Fatal(err)
		}
		c.ID = id
		logs[k] = &c
	}
	tr, err := root.NewTrustedRoot(root.TrustedRootMediaType01, vs.FulcioCertificateAuthorities(), nil,
		vs.TimestampingAuthorities(), logs)
	if err != nil {
		t.Fatal(err)
	}
	b, err := tr.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// AttachBundle stores bundleJSON as an OCI 1.1 referrer of r@d, as cosign v3 does
// (signature.AttachBundle).
func AttachBundle(t testing.TB, c *oci.Client, r ref.Reference, d string, bundleJSON []byte) {
	t.Helper()
	if _, err := signature.AttachBundle(context.Background(), c, r, d, bundleJSON); err != nil {
		t.Fatal(err)
	}
}

// KeyBundle signs an in-toto statement naming subject with the PEM private key privPEM, as
// `cosign sign --key --new-bundle-format` does (signature.Signer.Bundle), and returns the
// bundle JSON.
func KeyBundle(t testing.TB, privPEM []byte, repo, subject string) []byte {
	t.Helper()
	s, err := signature.NewSigner(privPEM, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.Bundle(repo, subject)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
