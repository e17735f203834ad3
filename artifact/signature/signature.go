// Package signature verifies and makes cosign signatures of OCI artifacts, compatible with the
// cosign CLI in both directions, using sigstore's libraries for every cryptographic step.
//
// Scheme: cosign's key-based signatures stored as a tag of the artifact's repository,
// "sha256-<hex>.sig", whose manifest has one layer per signature: a simple-signing payload
// (application/vnd.dev.cosign.simplesigning.v1+json, naming the signed manifest digest) with the
// base64 signature of the payload in the annotation dev.cosignproject.cosign/signature. A
// signature is valid for an artifact when it verifies with the configured public key and its
// payload names exactly the artifact's (root) digest. The signature is checked before any of
// the artifact's own blobs are downloaded; it costs two requests (signature manifest, payload).
//
// cosign v3's signatures (keyless.go) are Sigstore bundles attached to the artifact as OCI 1.1
// referrers, verified with sigstore-go: keyless ones offline against a trusted root the user
// provides, key-based ones (`cosign sign --key --new-bundle-format`) with the key; a key checks
// both schemes, the tag first, and Signer makes either (sign.go). Not covered: keyless
// signatures in the legacy tag scheme, and keyless signing.
package signature

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	sigsig "github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature/payload"
	"oras.land/oras-go/v2/errdef"
	"oras.land/oras-go/v2/registry/remote"

	"github.com/falco-k8s/falco-k8s/artifact/oci"
	"github.com/falco-k8s/falco-k8s/artifact/ref"
)

// Media types and annotations of cosign's signature manifests.
const (
	SimpleSigningMediaType = "application/vnd.dev.cosign.simplesigning.v1+json"
	SignatureAnnotation    = "dev.cosignproject.cosign/signature"
	dockerManifestType     = "application/vnd.docker.distribution.manifest.v2+json"
	ociConfigType          = "application/vnd.oci.image.config.v1+json"
	// maxPayload bounds one signature payload (cosign's are a few hundred bytes).
	maxPayload = 64 << 10
	// maxSignatures bounds the signatures examined per artifact.
	maxSignatures = 32
)

// Policy says what a followed reference requires.
type Policy string

const (
	// Required: an artifact without a valid signature is refused.
	Required Policy = "required"
	// IfPresent: unsigned artifacts pass; a signature that is there must be valid.
	IfPresent Policy = "if-present"
	// Off: signatures are not looked at.
	Off Policy = "off"
)

// ParsePolicy validates a policy name; "" is returned as "".
func ParsePolicy(s string) (Policy, error) {
	switch p := Policy(s); p {
	case "", Required, IfPresent, Off:
		return p, nil
	}
	return "", fmt.Errorf("invalid signature policy %q: want required, if-present or off", s)
}

// Kind classifies why an artifact's signature was refused.
type Kind string

const (
	// Unsigned: no signature exists for the digest.
	Unsigned Kind = "unsigned"
	// BadSignature: signatures exist but none verifies with the configured key (another key,
	// or a tampered payload or signature).
	BadSignature Kind = "bad-signature"
	// OtherDigest: a signature verifies but was made for another artifact digest.
	OtherDigest Kind = "other-digest"
	// Malformed: the signature manifest or payload cannot be read.
	Malformed Kind = "malformed"
)

// Error is a refused signature check.
type Error struct {
	Kind   Kind
	Digest string
	Detail string
}

func (e *Error) Error() string {
	switch e.Kind {
	case Unsigned:
		return fmt.Sprintf("signature required: no cosign signature for %s (%s)", e.Digest, e.Detail)
	case BadSignature:
		return fmt.Sprintf("signature of %s does not verify with the configured key or identity: %s", e.Digest, e.Detail)
	case OtherDigest:
		return fmt.Sprintf("signature verifies but was made for %s, not for this artifact %s", e.Detail, e.Digest)
	}
	return fmt.Sprintf("signature of %s is malformed: %s", e.Digest, e.Detail)
}

// Checker is one way of verifying an artifact's signature: Verifier (a key) or Keyless.
type Checker interface {
	Verify(ctx context.Context, c *oci.Client, r ref.Reference, d string, p Policy) (*Verified, error)
}

// Any accepts an artifact that one of its checkers accepts. Refused by all, the error is the
// first that is not "unsigned" (a signature is there but is bad), else "unsigned".
type Any []Checker

// Verify implements Checker.
func (a Any) Verify(ctx context.Context, c *oci.Client, r ref.Reference, d string, p Policy) (*Verified, error) {
	if p == Off {
		return nil, nil
	}
	var first, unsigned error
	for _, ch := range a {
		// Each checker under Required: "unsigned" for one scheme says nothing about the other.
		v, err := ch.Verify(ctx, c, r, d, Required)
		var se *Error
		switch {
		case err == nil:
			return v, nil
		case errors.As(err, &se) && se.Kind == Unsigned:
			if unsigned == nil {
				unsigned = err
			}
		case first == nil:
			first = err
		}
	}
	switch {
	case first != nil:
		return nil, first
	case p == IfPresent:
		return nil, nil
	case unsigned == nil:
		return nil, &Error{Kind: Unsigned, Digest: d, Detail: "no key or identity to verify signatures with"}
	}
	return nil, unsigned
}

// Verifier checks cosign signatures with one public key, in the tag scheme and as v3 bundles.
type Verifier struct {
	v       sigsig.Verifier
	key     string // "sha256:<hex of the DER public key>", for reports
	bundles *bundleCheck
}

// NewVerifier loads a PEM public key (cosign.pub, or any PKIX ECDSA, RSA or Ed25519 key).
func NewVerifier(pemBytes []byte) (*Verifier, error) {
	pub, err := cryptoutils.UnmarshalPEMToPublicKey(pemBytes)
	if err != nil {
		return nil, fmt.Errorf("signature key: %w (want a PEM public key such as cosign.pub)", err)
	}
	v, err := sigsig.LoadVerifier(pub, crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("signature key: %w", err)
	}
	key := fingerprint(pub)
	b, err := newKeyBundles(v, key)
	if err != nil {
		return nil, err
	}
	return &Verifier{v: v, key: key, bundles: b}, nil
}

func fingerprint(pub crypto.PublicKey) string {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "unknown key"
	}
	s := sha256.Sum256(der)
	return "sha256:" + hex.EncodeToString(s[:])
}

// Verified is what a verified signature tells about who signed.
type Verified struct {
	// Key is the public key's fingerprint ("key sha256:..."): who signed, as configured.
	Key string `json:"key"`
	// Identity is the docker-reference the payload claims (key-based), or the certificate's
	// subject alternative name (keyless).
	Identity string `json:"identity,omitempty"`
	// Issuer is the OIDC issuer of a keyless signature's certificate.
	Issuer string `json:"issuer,omitempty"`
}

func (s Verified) String() string {
	if s.Key == "" {
		return fmt.Sprintf("cosign keyless %s (issuer %s)", s.Identity, s.Issuer)
	}
	return "cosign key " + s.Key
}

// Tag is the cosign signature tag of a digest: "sha256-<hex>.sig".
func Tag(d string) string { return strings.Replace(d, ":", "-", 1) + ".sig" }

// repository is c's repository for r, accepting the Docker schema 2 manifests cosign may write.
func repository(c *oci.Client, r ref.Reference) (*remote.Repository, error) {
	repo, err := c.Repository(r)
	if err != nil {
		return nil, err
	}
	repo.ManifestMediaTypes = append(append([]string(nil), repo.ManifestMediaTypes...), dockerManifestType)
	return repo, nil
}

// Verify checks the signatures of r's digest d (the root digest that is about to be pulled):
// the "sha256-<hex>.sig" tag, then, unless it held a valid signature, the v3 bundles referring to
// d. It returns who signed, or (nil, nil) for an unsigned artifact under IfPresent; an *Error
// for a refused artifact; any other error is the registry's (retry later).
func (v *Verifier) Verify(ctx context.Context, c *oci.Client, r ref.Reference, d string, p Policy) (*Verified, error) {
	if p == Off {
		return nil, nil
	}
	got, err := v.verifyTag(ctx, c, r, d)
	var tagErr *Error
	if !errors.As(err, &tagErr) {
		return got, err // verified, or the registry failed
	}
	got, err = v.bundles.Verify(ctx, c, r, d, Required)
	var bundleErr *Error
	switch {
	case !errors.As(err, &bundleErr):
		return got, err
	case tagErr.Kind == Unsigned && bundleErr.Kind == Unsigned:
		if p == IfPresent {
			return nil, nil
		}
		return nil, &Error{Kind: Unsigned, Digest: d, Detail: tagErr.Detail + ", and " + bundleErr.Detail}
	case tagErr.Kind == Unsigned:
		return nil, bundleErr // a bundle is there, but bad
	}
	return nil, tagErr
}

// verifyTag checks the signatures in d's "sha256-<hex>.sig" tag; an unsigned digest is an
// *Error of kind Unsigned.
func (v *Verifier) verifyTag(ctx context.Context, c *oci.Client, r ref.Reference, d string) (*Verified, error) {
	repo, err := repository(c, r)
	if err != nil {
		return nil, err
	}
	tag := Tag(d)
	_, rc, err := repo.FetchReference(ctx, tag)
	if errors.Is(err, errdef.ErrNotFound) {
		return nil, &Error{Kind: Unsigned, Digest: d, Detail: "tag " + tag + " not found"}
	}
	if err != nil {
		return nil, fmt.Errorf("fetch signature %s: %w", tag, err)
	}
	raw, err := io.ReadAll(io.LimitReader(rc, 4<<20))
	rc.Close()
	if err != nil {
		return nil, fmt.Errorf("fetch signature %s: %w", tag, err)
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, &Error{Kind: Malformed, Digest: d, Detail: "signature manifest: " + err.Error()}
	}
	var reasons []string
	other := ""
	n := 0
	for _, l := range m.Layers {
		if l.MediaType != SimpleSigningMediaType {
			continue
		}
		if n++; n > maxSignatures {
			break
		}
		sig, err := base64.StdEncoding.DecodeString(l.Annotations[SignatureAnnotation])
		if err != nil || len(sig) == 0 {
			reasons = append(reasons, "a signature annotation is not base64")
			continue
		}
		if l.Size > maxPayload {
			reasons = append(reasons, fmt.Sprintf("a payload of %d bytes exceeds %d", l.Size, maxPayload))
			continue
		}
		body, err := fetchBlob(ctx, repo, l)
		if err != nil {
			var de *digestError
			if errors.As(err, &de) {
				reasons = append(reasons, err.Error())
				continue
			}
			return nil, err
		}
		if err := v.v.VerifySignature(bytes.NewReader(sig), bytes.NewReader(body)); err != nil {
			reasons = append(reasons, "invalid signature")
			continue
		}
		var sci payload.SimpleContainerImage
		if err := json.Unmarshal(body, &sci); err != nil || sci.Critical.Type != payload.CosignSignatureType {
			reasons = append(reasons, "a signed payload is not a cosign container image signature")
			continue
		}
		if sci.Critical.Image.DockerManifestDigest != d {
			other = sci.Critical.Image.DockerManifestDigest
			continue
		}
		return &Verified{Key: v.key, Identity: sci.Critical.Identity.DockerReference}, nil
	}
	switch {
	case other != "":
		return nil, &Error{Kind: OtherDigest, Digest: d, Detail: other}
	case n == 0:
		return nil, &Error{Kind: Unsigned, Digest: d, Detail: "tag " + tag + " holds no cosign signature"}
	}
	return nil, &Error{Kind: BadSignature, Digest: d, Detail: strings.Join(dedupe(reasons), "; ")}
}

type digestError struct{ want, got digest.Digest }

func (e *digestError) Error() string {
	return fmt.Sprintf("a payload does not match its digest %s (got %s)", e.want, e.got)
}

func fetchBlob(ctx context.Context, repo *remote.Repository, d ocispec.Descriptor) ([]byte, error) {
	rc, err := repo.Blobs().Fetch(ctx, d)
	if err != nil {
		return nil, fmt.Errorf("fetch signature payload %s: %w", d.Digest, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, maxPayload+1))
	if err != nil {
		return nil, fmt.Errorf("fetch signature payload %s: %w", d.Digest, err)
	}
	if got := digest.FromBytes(b); got != d.Digest {
		return nil, &digestError{want: d.Digest, got: got}
	}
	return b, nil
}

func dedupe(s []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, x := range s {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}
