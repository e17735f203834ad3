package follower

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/falco-k8s/falco-k8s/agent/config"
	"github.com/falco-k8s/falco-k8s/artifact/ref"
	"github.com/falco-k8s/falco-k8s/artifact/signature"
)

// SignatureOptions configure the cosign signature check of new digests (follow.signature; see
// artifact/signature).
type SignatureOptions struct {
	// Verifier checks signatures (a key, keyless, or signature.Any of both); nil when none is
	// configured.
	Verifier signature.Checker
	// Policy applies to references without an entry in Policies; "" means required when a
	// Verifier is set, else off.
	Policy signature.Policy
	// Policies are per reference, keyed as in Options.Refs.
	Policies map[string]signature.Policy
	// PerRef are signers trusted for one reference besides Verifier (keyed as in Options.Refs):
	// the keyless identity of the falcoctl index entry the reference was resolved through.
	PerRef map[string]signature.Checker
}

// signatureFromConfig reads follow.signature's key file.
func signatureFromConfig(s config.Signature) (SignatureOptions, error) {
	o := SignatureOptions{Policies: map[string]signature.Policy{}, PerRef: map[string]signature.Checker{}}
	var err error
	if o.Policy, err = signature.ParsePolicy(s.Policy); err != nil {
		return o, fmt.Errorf("follow.signature.policy: %w", err)
	}
	for r, p := range s.Policies {
		if o.Policies[r], err = signature.ParsePolicy(p); err != nil {
			return o, fmt.Errorf("follow.signature.policies[%s]: %w", r, err)
		}
	}
	var checkers signature.Any
	if s.KeyFile != "" {
		b, err := os.ReadFile(s.KeyFile)
		if err != nil {
			return o, fmt.Errorf("follow.signature.key_file: %w", err)
		}
		v, err := signature.NewVerifier(b)
		if err != nil {
			return o, fmt.Errorf("follow.signature.key_file %s: %w", s.KeyFile, err)
		}
		checkers = append(checkers, v)
	}
	if s.TrustedRootFile != "" {
		b, err := os.ReadFile(s.TrustedRootFile)
		if err != nil {
			return o, fmt.Errorf("follow.signature.trusted_root_file: %w", err)
		}
		if s.CertificateIdentity != "" || s.CertificateIdentityRegexp != "" || len(s.PerRef) == 0 {
			k, err := signature.NewKeyless(b, s.CertificateIdentity, s.CertificateIdentityRegexp, s.CertificateOIDCIssuer, s.CertificateOIDCIssuerRegexp)
			if err != nil {
				return o, fmt.Errorf("follow.signature.trusted_root_file %s: %w", s.TrustedRootFile, err)
			}
			checkers = append(checkers, k)
		}
		for r, id := range s.PerRef {
			k, err := signature.NewKeyless(b, id.CertificateIdentity, id.CertificateIdentityRegexp, id.CertificateOIDCIssuer, id.CertificateOIDCIssuerRegexp)
			if err != nil {
				return o, fmt.Errorf("follow.signature.per_ref[%s]: %w", r, err)
			}
			o.PerRef[r] = k
		}
	}
	switch len(checkers) {
	case 1:
		o.Verifier = checkers[0]
	case 2:
		o.Verifier = checkers
	}
	return o, nil
}

// notYetSigned is an artifact refused for having no signature. Unlike other refused content it
// is examined again at the next check: publishers push the artifact first and sign it next.
type notYetSigned struct{ unusableError }

func (e notYetSigned) Unwrap() error { return e.unusableError }

// signaturePolicy is reference i's policy.
func (f *Follower) signaturePolicy(i int) signature.Policy {
	s := f.o.Signature
	for k, p := range s.Policies {
		if r, err := ref.Parse(k); err == nil && r.String() == f.names[i] && p != "" {
			return p
		}
	}
	switch {
	case s.Policy != "":
		return s.Policy
	case f.checker(i) != nil:
		return signature.Required
	}
	return signature.Off
}

// checker is what verifies reference i's signatures: the signers trusted for every reference,
// plus its own (PerRef); nil when there is none.
func (f *Follower) checker(i int) signature.Checker {
	s := f.o.Signature
	for k, c := range s.PerRef {
		if r, err := ref.Parse(k); err == nil && r.String() == f.names[i] && c != nil {
			if s.Verifier == nil {
				return c
			}
			return signature.Any{s.Verifier, c}
		}
	}
	return s.Verifier
}

// verifySignature is the follower's one call into artifact/signature: it checks digest d of
// reference i before anything of it is downloaded and returns who signed ("" when unsigned and
// allowed). A refused signature is a unusableError (not retried for that digest); a registry
// failure is retried like any other.
func (f *Follower) verifySignature(ctx context.Context, i int, d string) (string, error) {
	p := f.signaturePolicy(i)
	if p == signature.Off {
		return "", nil
	}
	r := f.refs[i].WithDigest(d)
	ch := f.checker(i)
	if ch == nil {
		return "", unusableError{fmt.Errorf("artifact %s ignored: signature policy %s but no follow.signature.key_file or trusted_root_file", r, p)}
	}
	start := time.Now()
	v, err := ch.Verify(ctx, f.client, f.refs[i], d, p)
	var se *signature.Error
	switch {
	case errors.As(err, &se) && se.Kind == signature.Unsigned:
		return "", notYetSigned{unusableError{fmt.Errorf("artifact %s ignored: %w", r, err)}}
	case errors.As(err, &se):
		return "", unusableError{fmt.Errorf("artifact %s ignored: %w", r, err)}
	case err != nil:
		return "", explainRegistry(r.Registry, r.String(), f.creds.HasCredential(r.Registry), err)
	case v == nil:
		f.log.Info().Str("ref", f.names[i]).Str("digest", d).Str("policy", string(p)).Msg("artifact is not signed; accepted by the if-present signature policy")
		return "", nil
	}
	f.log.Info().Str("ref", f.names[i]).Str("digest", d).Str("signer", v.String()).Dur("took", time.Since(start)).Msg("signature verified")
	return v.String(), nil
}
