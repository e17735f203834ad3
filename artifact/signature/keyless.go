package signature

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/sigstore/sigstore-go/pkg/bundle"
	"github.com/sigstore/sigstore-go/pkg/root"
	"github.com/sigstore/sigstore-go/pkg/verify"
	sigsig "github.com/sigstore/sigstore/pkg/signature"

	"github.com/falco-k8s/falco-k8s/artifact/oci"
	"github.com/falco-k8s/falco-k8s/artifact/ref"
)

// BundleMediaType is the artifactType of cosign v3's signature referrers (and of their one
// layer): a Sigstore bundle v0.3 holding a DSSE envelope whose in-toto statement names the
// signed digest as its subject.
const BundleMediaType = "application/vnd.dev.sigstore.bundle.v0.3+json"

// maxBundle bounds one bundle (certificate chain, envelope, log entry: a few KiB).
const maxBundle = 1 << 20

// cosignSignPredicate is the predicate type of the in-toto statement cosign v3's sign makes;
// an attestation (cosign attest) made by the same signer has another and is not a signature.
const cosignSignPredicate = "https://sigstore.dev/cosign/sign/v1"

// Keyless verifies keyless (certificate-based) cosign v3 signatures offline: Sigstore bundles
// attached to the artifact as OCI 1.1 referrers, whose certificate must chain to the Fulcio CA
// of a trusted root the user provides, name the configured identity and OIDC issuer, and be
// logged in a transparency log of that root (the inclusion proof travels in the bundle).
type Keyless struct {
	bundles bundleCheck
}

// NewKeyless loads a trusted root (Sigstore's trusted_root.json format) and the identity a
// signature's certificate must carry: subject alternative name and OIDC issuer, each exact or
// a regular expression.
func NewKeyless(trustedRootJSON []byte, identity, identityRegexp, issuer, issuerRegexp string) (*Keyless, error) {
	tr, err := root.NewTrustedRootFromJSON(trustedRootJSON)
	if err != nil {
		return nil, fmt.Errorf("trusted root: %w", err)
	}
	v, err := verify.NewVerifier(tr, verify.WithTransparencyLog(1), verify.WithObserverTimestamps(1))
	if err != nil {
		return nil, fmt.Errorf("trusted root: %w", err)
	}
	id, err := verify.NewShortCertificateIdentity(issuer, issuerRegexp, identity, identityRegexp)
	if err != nil {
		return nil, fmt.Errorf("certificate identity: %w", err)
	}
	return &Keyless{bundles: bundleCheck{v: v, policy: verify.NewPolicy(verify.WithoutArtifactUnsafe(), verify.WithCertificateIdentity(id)),
		signer: func(res *verify.VerificationResult) *Verified {
			out := &Verified{}
			if res.Signature != nil && res.Signature.Certificate != nil {
				out.Identity = res.Signature.Certificate.SubjectAlternativeName
				out.Issuer = res.Signature.Certificate.Issuer
			}
			return out
		}}}, nil
}

// CheckTrustedRoot reports whether trustedRootJSON is a usable Sigstore trusted root, for
// configuration that holds one before any identity is known.
func CheckTrustedRoot(trustedRootJSON []byte) error {
	tr, err := root.NewTrustedRootFromJSON(trustedRootJSON)
	if err == nil {
		_, err = verify.NewVerifier(tr, verify.WithTransparencyLog(1), verify.WithObserverTimestamps(1))
	}
	if err != nil {
		return fmt.Errorf("trusted root: %w", err)
	}
	return nil
}

// Verify checks the bundles referring to r's digest d; see Verifier.Verify for the results.
func (k *Keyless) Verify(ctx context.Context, c *oci.Client, r ref.Reference, d string, p Policy) (*Verified, error) {
	return k.bundles.Verify(ctx, c, r, d, p)
}

// newKeyBundles verifies cosign v3 bundles signed with the public key behind v (`cosign sign
// --key --new-bundle-format`): the bundle carries a key hint instead of a certificate. Like the
// tag scheme, no transparency-log entry or timestamp is required (cosign's
// --insecure-ignore-tlog): the key alone is trusted.
func newKeyBundles(sv sigsig.Verifier, key string) (*bundleCheck, error) {
	ek := root.NewExpiringKey(sv, time.Time{}, time.Time{})
	tm := root.NewTrustedPublicKeyMaterial(func(string) (root.TimeConstrainedVerifier, error) { return ek, nil })
	v, err := verify.NewVerifier(tm, verify.WithNoObserverTimestamps())
	if err != nil {
		return nil, fmt.Errorf("signature key: %w", err)
	}
	return &bundleCheck{v: v, policy: verify.NewPolicy(verify.WithoutArtifactUnsafe(), verify.WithKey()),
		signer: func(*verify.VerificationResult) *Verified { return &Verified{Key: key} }}, nil
}

// bundleCheck verifies the Sigstore bundles attached to an artifact as OCI 1.1 referrers with
// one sigstore-go verifier and policy: a certificate identity (Keyless) or a key.
type bundleCheck struct {
	v      *verify.Verifier
	policy verify.PolicyBuilder
	// signer describes who signed a bundle that verified.
	signer func(*verify.VerificationResult) *Verified
}

// Verify implements Checker.
func (k *bundleCheck) Verify(ctx context.Context, c *oci.Client, r ref.Reference, d string, p Policy) (*Verified, error) {
	if p == Off {
		return nil, nil
	}
	repo, err := repository(c, r)
	if err != nil {
		return nil, err
	}
	var refs []ocispec.Descriptor
	subject := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.Digest(d)}
	// Not filtered by the registry: cosign (go-containerregistry) lists its bundles in the
	// referrers tag of registries without the referrers API under their config's media type
	// (the empty JSON), not their artifactType.
	err = repo.Referrers(ctx, subject, "", func(rs []ocispec.Descriptor) error {
		for _, desc := range rs {
			if desc.ArtifactType == BundleMediaType || desc.ArtifactType == ocispec.MediaTypeEmptyJSON {
				refs = append(refs, desc)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list signatures of %s: %w", d, err)
	}
	var reasons []string
	other := ""
	n := 0
	for _, desc := range refs {
		if n == maxSignatures {
			break
		}
		b, err := fetchBundle(ctx, repo, desc)
		var nb *notBundleError
		if errors.As(err, &nb) {
			continue // another kind of artifact with an empty config
		}
		n++
		if err != nil {
			var me *malformedError
			if errors.As(err, &me) {
				reasons = append(reasons, me.msg)
				continue
			}
			return nil, err
		}
		// The signature, the key or the certificate chain, identity and log proof first; the
		// subject after, so that a valid signature of another digest is told apart from a bad
		// one.
		res, err := k.v.Verify(b, k.policy)
		if err != nil {
			reasons = append(reasons, err.Error())
			continue
		}
		subjects, err := statementSubjects(b)
		if err != nil {
			reasons = append(reasons, err.Error())
			continue
		}
		if !subjects[d] {
			for s := range subjects {
				other = s
			}
			continue
		}
		return k.signer(res), nil
	}
	switch {
	case other != "":
		return nil, &Error{Kind: OtherDigest, Digest: d, Detail: other}
	case n == 0 && p == IfPresent:
		return nil, nil
	case n == 0:
		return nil, &Error{Kind: Unsigned, Digest: d, Detail: "no Sigstore bundle refers to it"}
	}
	return nil, &Error{Kind: BadSignature, Digest: d, Detail: strings.Join(dedupe(reasons), "; ")}
}

// notBundleError is a referrer that is not a Sigstore bundle.
type notBundleError struct{}

func (*notBundleError) Error() string { return "not a Sigstore bundle" }

type malformedError struct{ msg string }

func (e *malformedError) Error() string { return e.msg }

func fetchBundle(ctx context.Context, repo interface {
	Fetch(context.Context, ocispec.Descriptor) (io.ReadCloser, error)
}, desc ocispec.Descriptor) (*bundle.Bundle, error) {
	read := func(d ocispec.Descriptor, max int64) ([]byte, error) {
		rc, err := repo.Fetch(ctx, d)
		if err != nil {
			return nil, fmt.Errorf("fetch signature bundle %s: %w", d.Digest, err)
		}
		defer rc.Close()
		b, err := io.ReadAll(io.LimitReader(rc, max+1))
		if err != nil {
			return nil, fmt.Errorf("fetch signature bundle %s: %w", d.Digest, err)
		}
		if int64(len(b)) > max || digest.FromBytes(b) != d.Digest {
			return nil, &malformedError{fmt.Sprintf("bundle %s is larger than %d bytes or does not match its digest", d.Digest, max)}
		}
		return b, nil
	}
	raw, err := read(desc, 4<<20)
	if err != nil {
		return nil, err
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(raw, &m); err != nil || len(m.Layers) == 0 {
		return nil, &malformedError{fmt.Sprintf("bundle manifest %s has no layer", desc.Digest)}
	}
	l := m.Layers[0]
	if m.ArtifactType != BundleMediaType && l.MediaType != BundleMediaType {
		return nil, &notBundleError{}
	}
	if l.Size > maxBundle {
		return nil, &malformedError{fmt.Sprintf("bundle %s of %d bytes exceeds %d", l.Digest, l.Size, maxBundle)}
	}
	body, err := read(l, maxBundle)
	if err != nil {
		return nil, err
	}
	var b bundle.Bundle
	if err := b.UnmarshalJSON(body); err != nil {
		return nil, &malformedError{fmt.Sprintf("bundle %s: %v", l.Digest, err)}
	}
	return &b, nil
}

// statementSubjects returns the "sha256:<hex>" subjects of the bundle's in-toto statement.
func statementSubjects(b *bundle.Bundle) (map[string]bool, error) {
	env := b.GetDsseEnvelope()
	if env == nil {
		return nil, errors.New("the bundle holds no DSSE envelope (cosign v3 signs an in-toto statement)")
	}
	var st struct {
		PredicateType string `json:"predicateType"`
		Subject       []struct {
			Digest map[string]string `json:"digest"`
		} `json:"subject"`
	}
	if err := json.Unmarshal(env.GetPayload(), &st); err != nil {
		return nil, fmt.Errorf("the bundle's statement: %w", err)
	}
	if st.PredicateType != cosignSignPredicate {
		return nil, fmt.Errorf("the bundle is an attestation (predicate type %q), not a cosign signature (%s)", st.PredicateType, cosignSignPredicate)
	}
	out := map[string]bool{}
	for _, s := range st.Subject {
		if h, ok := s.Digest["sha256"]; ok {
			if _, err := hex.DecodeString(h); err == nil {
				out["sha256:"+h] = true
			}
		}
	}
	return out, nil
}
