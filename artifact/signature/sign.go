package signature

import (
	"bytes"
	"context"
	"crypto"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	protodsse "github.com/sigstore/protobuf-specs/gen/pb-go/dsse"
	"github.com/sigstore/sigstore-go/pkg/bundle"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	sigsig "github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature/dsse"
	"github.com/sigstore/sigstore/pkg/signature/payload"
	"oras.land/oras-go/v2/errdef"

	"github.com/falco-k8s/falco-k8s/artifact/oci"
	"github.com/falco-k8s/falco-k8s/artifact/ref"
)

// PasswordEnv holds the password of an encrypted signing key, as for cosign.
const PasswordEnv = "COSIGN_PASSWORD"

// inTotoPayloadType is the DSSE payload type of an in-toto statement.
const inTotoPayloadType = "application/vnd.in-toto+json"

// Signer signs artifacts with a private key.
type Signer struct {
	s   sigsig.Signer
	key string
}

// NewSigner loads a PEM private key: cosign's encrypted key (cosign.key, with its password) or
// an unencrypted PKCS#8 / EC / RSA key (password ignored).
func NewSigner(pemBytes, password []byte) (*Signer, error) {
	priv, err := cryptoutils.UnmarshalPEMToPrivateKey(pemBytes, cryptoutils.StaticPasswordFunc(password))
	if err != nil {
		return nil, fmt.Errorf("signing key: %w (want cosign.key with its password, or a PEM private key)", err)
	}
	s, err := sigsig.LoadSigner(priv, crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	pub, err := s.PublicKey()
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	return &Signer{s: s, key: fingerprint(pub)}, nil
}

// Key is the signer's public key fingerprint, as Verify reports it.
func (s *Signer) Key() string { return s.key }

// Sign signs digest d of r's repository the way `cosign sign --key` does (without a
// transparency-log entry) and adds the signature to the "sha256-<hex>.sig" tag, keeping the
// signatures already there. It returns the signature manifest's digest.
func (s *Signer) Sign(ctx context.Context, c *oci.Client, r ref.Reference, d string) (string, error) {
	repoName := r.Registry + "/" + r.Repository
	nd, err := name.NewDigest(repoName+"@"+d, name.Insecure)
	if err != nil {
		return "", fmt.Errorf("sign %s@%s: %w", repoName, d, err)
	}
	body, err := json.Marshal(payload.Cosign{Image: nd, ClaimedIdentity: repoName}.SimpleContainerImage())
	if err != nil {
		return "", err
	}
	sig, err := s.s.SignMessage(bytes.NewReader(body))
	if err != nil {
		return "", fmt.Errorf("sign %s: %w", d, err)
	}
	repo, err := repository(c, r)
	if err != nil {
		return "", err
	}
	tag := Tag(d)
	layer := ocispec.Descriptor{MediaType: SimpleSigningMediaType, Digest: digest.FromBytes(body), Size: int64(len(body)),
		Annotations: map[string]string{SignatureAnnotation: base64.StdEncoding.EncodeToString(sig)}}
	// Keep the signatures already there (another key, the publisher's CI), as cosign does.
	var layers []ocispec.Descriptor
	if _, rc, err := repo.FetchReference(ctx, tag); err == nil {
		raw, rerr := io.ReadAll(io.LimitReader(rc, 4<<20))
		rc.Close()
		var m ocispec.Manifest
		if rerr == nil && json.Unmarshal(raw, &m) == nil {
			for _, l := range m.Layers {
				if l.Digest != layer.Digest || l.Annotations[SignatureAnnotation] != layer.Annotations[SignatureAnnotation] {
					layers = append(layers, l)
				}
			}
		}
	} else if !errors.Is(err, errdef.ErrNotFound) {
		return "", fmt.Errorf("read signature %s: %w", tag, err)
	}
	layers = append(layers, layer)
	if err := pushBlob(ctx, repo, layer.MediaType, body); err != nil {
		return "", err
	}
	// An image config listing the payloads as layers, as cosign writes it.
	diffIDs := make([]string, len(layers))
	for i, l := range layers {
		diffIDs[i] = l.Digest.String()
	}
	cfg, _ := json.Marshal(map[string]any{"architecture": "", "os": "", "config": map[string]any{},
		"rootfs": map[string]any{"type": "layers", "diff_ids": diffIDs}})
	if err := pushBlob(ctx, repo, ociConfigType, cfg); err != nil {
		return "", err
	}
	m := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, Layers: layers,
		Config: ocispec.Descriptor{MediaType: ociConfigType, Digest: digest.FromBytes(cfg), Size: int64(len(cfg))}}
	m.SchemaVersion = 2
	raw, _ := json.Marshal(m)
	md := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(raw), Size: int64(len(raw))}
	if err := repo.PushReference(ctx, md, bytes.NewReader(raw), tag); err != nil {
		return "", fmt.Errorf("push signature %s: %w", tag, err)
	}
	return md.Digest.String(), nil
}

func pushBlob(ctx context.Context, repo interface {
	Exists(context.Context, ocispec.Descriptor) (bool, error)
	Push(context.Context, ocispec.Descriptor, io.Reader) error
}, mediaType string, b []byte) error {
	d := ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(b), Size: int64(len(b))}
	if ok, err := repo.Exists(ctx, d); err == nil && ok {
		return nil
	}
	if err := repo.Push(ctx, d, bytes.NewReader(b)); err != nil && !errors.Is(err, errdef.ErrAlreadyExists) {
		return fmt.Errorf("push signature blob: %w", err)
	}
	return nil
}

// SignStatement is the in-toto statement cosign v3's sign makes for digest d of repository
// repo (registry/repository): d as its one subject, predicate type cosign/sign/v1.
func SignStatement(repo, d string) []byte {
	b, _ := json.Marshal(map[string]any{
		"_type":         "https://in-toto.io/Statement/v1",
		"subject":       []any{map[string]any{"name": repo, "digest": map[string]string{"sha256": strings.TrimPrefix(d, "sha256:")}}},
		"predicateType": cosignSignPredicate,
		"predicate":     map[string]any{},
	})
	return b
}

// Bundle signs digest d of repository repo as `cosign sign --key --new-bundle-format` does: the
// statement in a DSSE envelope, in a Sigstore bundle (v0.3) carrying the key's hint, without a
// certificate or a transparency-log entry. It returns the bundle's JSON.
func (s *Signer) Bundle(repo, d string) ([]byte, error) {
	raw, err := dsse.WrapSigner(s.s, inTotoPayloadType).SignMessage(bytes.NewReader(SignStatement(repo, d)))
	if err != nil {
		return nil, fmt.Errorf("sign %s: %w", d, err)
	}
	var env struct {
		Payload     []byte `json:"payload"`
		PayloadType string `json:"payloadType"`
		Signatures  []struct {
			Sig []byte `json:"sig"`
		} `json:"signatures"`
	}
	if err := json.Unmarshal(raw, &env); err != nil || len(env.Signatures) != 1 {
		return nil, fmt.Errorf("sign %s: unexpected DSSE envelope (%v)", d, err)
	}
	b, err := bundle.NewBundle(&protobundle.Bundle{
		MediaType: BundleMediaType,
		VerificationMaterial: &protobundle.VerificationMaterial{
			Content: &protobundle.VerificationMaterial_PublicKey{PublicKey: &protocommon.PublicKeyIdentifier{Hint: s.key}}},
		Content: &protobundle.Bundle_DsseEnvelope{DsseEnvelope: &protodsse.Envelope{
			Payload: env.Payload, PayloadType: env.PayloadType, Signatures: []*protodsse.Signature{{Sig: env.Signatures[0].Sig}}}},
	})
	if err != nil {
		return nil, fmt.Errorf("sign %s: %w", d, err)
	}
	return b.MarshalJSON()
}

// SignBundle signs digest d of r's repository with a v3 bundle (Bundle) and attaches it to d as
// an OCI 1.1 referrer (AttachBundle), as `cosign sign --key --new-bundle-format` does. It
// returns the referrer manifest's digest.
func (s *Signer) SignBundle(ctx context.Context, c *oci.Client, r ref.Reference, d string) (string, error) {
	b, err := s.Bundle(r.Registry+"/"+r.Repository, d)
	if err != nil {
		return "", err
	}
	return AttachBundle(ctx, c, r, d, b)
}

// AttachBundle stores bundleJSON as an OCI 1.1 referrer of r's digest d, with cosign v3's
// manifest shape (empty config, the bundle as its one layer, artifactType the bundle's media
// type); on a registry without the referrers API, the referrers tag is updated as well. It
// returns the referrer manifest's digest.
func AttachBundle(ctx context.Context, c *oci.Client, r ref.Reference, d string, bundleJSON []byte) (string, error) {
	repo, err := repository(c, r)
	if err != nil {
		return "", err
	}
	subject, err := repo.Resolve(ctx, d)
	if err != nil {
		return "", fmt.Errorf("attach signature to %s: %w", d, err)
	}
	if err := pushBlob(ctx, repo, BundleMediaType, bundleJSON); err != nil {
		return "", err
	}
	empty := []byte("{}")
	if err := pushBlob(ctx, repo, ocispec.MediaTypeEmptyJSON, empty); err != nil {
		return "", err
	}
	m := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, ArtifactType: BundleMediaType,
		Config:      ocispec.Descriptor{MediaType: ocispec.MediaTypeEmptyJSON, Digest: digest.FromBytes(empty), Size: int64(len(empty))},
		Layers:      []ocispec.Descriptor{{MediaType: BundleMediaType, Digest: digest.FromBytes(bundleJSON), Size: int64(len(bundleJSON))}},
		Subject:     &ocispec.Descriptor{MediaType: subject.MediaType, Digest: subject.Digest, Size: subject.Size},
		Annotations: map[string]string{"dev.sigstore.bundle.content": "dsse-envelope", "dev.sigstore.bundle.predicateType": cosignSignPredicate}}
	m.SchemaVersion = 2
	raw, _ := json.Marshal(m)
	md := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, ArtifactType: BundleMediaType, Digest: digest.FromBytes(raw), Size: int64(len(raw))}
	if err := repo.Push(ctx, md, bytes.NewReader(raw)); err != nil && !errors.Is(err, errdef.ErrAlreadyExists) {
		return "", fmt.Errorf("push signature bundle of %s: %w", d, err)
	}
	return md.Digest.String(), nil
}
