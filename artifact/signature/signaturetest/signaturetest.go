// Package signaturetest makes cosign v3 signatures for tests: keyless Sigstore bundles signed by
// a test CA's short-lived certificate and logged in a test transparency log (sigstore-go's
// virtual Sigstore), the trusted_root.json a user would provide for them, key-based bundles,
// and their attachment to an artifact as an OCI 1.1 referrer, as cosign v3 does. The public Sigstore services cannot be
// reached from tests.
package signaturetest

import (
	"bytes"
	"context"
	"crypto"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	protodsse "github.com/sigstore/protobuf-specs/gen/pb-go/dsse"
	protorekor "github.com/sigstore/protobuf-specs/gen/pb-go/rekor/v1"
	"github.com/sigstore/sigstore-go/pkg/bundle"
	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore-go/pkg/testing/ca"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	sigsig "github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature/dsse"
	"google.golang.org/protobuf/proto"
	"oras.land/oras-go/v2/errdef"

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
	ent, err := vs.AttestAtTime(identity, issuer, statement(repo, subject), time.Now().Add(5*time.Minute), true)
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

// AttachBundle stores bundleJSON as an OCI 1.1 referrer of r@d, as cosign v3 does.
func AttachBundle(t testing.TB, c *oci.Client, r ref.Reference, d string, bundleJSON []byte) {
	t.Helper()
	ctx := context.Background()
	repo, err := c.Repository(r)
	if err != nil {
		t.Fatal(err)
	}
	subject, err := repo.Resolve(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	if err := pushBlob(ctx, repo, signature.BundleMediaType, bundleJSON); err != nil {
		t.Fatal(err)
	}
	empty := []byte("{}")
	if err := pushBlob(ctx, repo, ocispec.MediaTypeEmptyJSON, empty); err != nil {
		t.Fatal(err)
	}
	m := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, ArtifactType: signature.BundleMediaType,
		Config:  ocispec.Descriptor{MediaType: ocispec.MediaTypeEmptyJSON, Digest: digest.FromBytes(empty), Size: 2},
		Layers:  []ocispec.Descriptor{{MediaType: signature.BundleMediaType, Digest: digest.FromBytes(bundleJSON), Size: int64(len(bundleJSON))}},
		Subject: &ocispec.Descriptor{MediaType: subject.MediaType, Digest: subject.Digest, Size: subject.Size}}
	m.SchemaVersion = 2
	raw, _ := json.Marshal(m)
	md := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, ArtifactType: signature.BundleMediaType, Digest: digest.FromBytes(raw), Size: int64(len(raw))}
	if err := repo.Push(ctx, md, bytes.NewReader(raw)); err != nil {
		t.Fatal(err)
	}
}

func pushBlob(ctx context.Context, repo interface {
	Exists(context.Context, ocispec.Descriptor) (bool, error)
	Push(context.Context, ocispec.Descriptor, io.Reader) error
}, mediaType string, b []byte) error {
	d := ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(b), Size: int64(len(b))}
	if err := repo.Push(ctx, d, bytes.NewReader(b)); err != nil && !errors.Is(err, errdef.ErrAlreadyExists) {
		return err
	}
	return nil
}

// KeyBundle signs an in-toto statement naming subject with the PEM private key privPEM, as
// `cosign sign --key --new-bundle-format` does: a Sigstore bundle (v0.3) holding the DSSE
// envelope and a key hint, no certificate and no log entry. It returns the bundle JSON.
func KeyBundle(t testing.TB, privPEM []byte, repo, subject string) []byte {
	t.Helper()
	priv, err := cryptoutils.UnmarshalPEMToPrivateKey(privPEM, cryptoutils.SkipPassword)
	if err != nil {
		t.Fatal(err)
	}
	s, err := sigsig.LoadSigner(priv, crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := dsse.WrapSigner(s, "application/vnd.in-toto+json").SignMessage(bytes.NewReader(statement(repo, subject)))
	if err != nil {
		t.Fatal(err)
	}
	var env struct {
		Payload     []byte `json:"payload"`
		PayloadType string `json:"payloadType"`
		Signatures  []struct {
			Sig []byte `json:"sig"`
		} `json:"signatures"`
	}
	if err := json.Unmarshal(raw, &env); err != nil || len(env.Signatures) != 1 {
		t.Fatalf("DSSE envelope %s: %v", raw, err)
	}
	pb := &protobundle.Bundle{
		MediaType: signature.BundleMediaType,
		VerificationMaterial: &protobundle.VerificationMaterial{
			Content: &protobundle.VerificationMaterial_PublicKey{PublicKey: &protocommon.PublicKeyIdentifier{Hint: "falco-k8s-test"}}},
		Content: &protobundle.Bundle_DsseEnvelope{DsseEnvelope: &protodsse.Envelope{
			Payload: env.Payload, PayloadType: env.PayloadType, Signatures: []*protodsse.Signature{{Sig: env.Signatures[0].Sig}}}},
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

// statement is cosign v3's signed statement: the subject digest, predicate cosign/sign/v1.
func statement(repo, subject string) []byte {
	stmt, _ := json.Marshal(map[string]any{
		"_type":         "https://in-toto.io/Statement/v1",
		"subject":       []any{map[string]any{"name": repo, "digest": map[string]string{"sha256": strings.TrimPrefix(subject, "sha256:")}}},
		"predicateType": "https://sigstore.dev/cosign/sign/v1",
		"predicate":     map[string]any{},
	})
	return stmt
}
