package follower

import (
	"bytes"
	"context"
	"crypto/elliptic"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sigstore/sigstore/pkg/cryptoutils"

	"github.com/falco-k8s/falco-k8s/agent/config"
	"github.com/falco-k8s/falco-k8s/artifact/ref"
	"github.com/falco-k8s/falco-k8s/artifact/signature"
	"github.com/falco-k8s/falco-k8s/artifact/signature/signaturetest"
	"github.com/falco-k8s/falco-k8s/internal/testregistry"
)

func signingKeys(t *testing.T) (*signature.Signer, *signature.Verifier) {
	t.Helper()
	priv, pub, err := cryptoutils.GeneratePEMEncodedECDSAKeyPair(elliptic.P256(), nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := signature.NewSigner(priv, nil)
	if err != nil {
		t.Fatal(err)
	}
	v, err := signature.NewVerifier(pub)
	if err != nil {
		t.Fatal(err)
	}
	return s, v
}

// TestSignedFollow: with a key configured (policy required by default) only artifacts signed
// with it for their own digest are accepted; unsigned, other-key and other-digest signatures are
// ignored with distinct reasons, and an idle check is still one request.
func TestSignedFollow(t *testing.T) {
	ctx := context.Background()
	reg := testregistry.New(t, testregistry.Options{})
	p := newPusher(t, reg, "", "")
	signer, verifier := signingKeys(t)
	other, _ := signingKeys(t)
	sign := func(s *signature.Signer, d string) {
		t.Helper()
		r, _ := ref.Parse(reg.Host + "/rules/k8s:1")
		if _, err := s.Sign(ctx, p.c, r, d); err != nil {
			t.Fatal(err)
		}
	}

	d1 := p.push("rules/k8s:1", map[string]string{"k8s.yaml": genRule("v1")})
	e := newEnv(t, envOpts{reg: reg, follow: func(o *Options) {
		o.Interval = time.Hour
		o.Signature = SignatureOptions{Verifier: verifier}
	}})
	r := postSync(t, e.url, "")
	if r.Result != ResultIgnored || !strings.Contains(r.Reason, "signature required: no cosign signature for "+d1) {
		t.Fatalf("unsigned: %+v", r)
	}
	// Signed after it was pushed (publishers sign second): the next check takes it.
	sign(signer, d1)
	if r := postSync(t, e.url, ""); r.Result != ResultAccepted || r.Signer != "cosign key "+signer.Key() {
		t.Fatalf("signed: %+v", r)
	}
	if src := e.a.Status().Sources; len(src) != 1 || src[0].Signer != "cosign key "+signer.Key() {
		t.Fatalf("sources %+v", src) // Sync reports health before it answers
	}

	// Another key.
	d2 := p.push("rules/k8s:1", map[string]string{"k8s.yaml": genRule("v2")})
	sign(other, d2)
	if r := postSync(t, e.url, ""); r.Result != ResultIgnored || !strings.Contains(r.Reason, "does not verify with the configured key") {
		t.Fatalf("other key: %+v", r)
	}
	// A valid signature of d1 copied onto d3: made for another digest.
	d3 := p.push("rules/k8s:1", map[string]string{"k8s.yaml": genRule("v3")})
	copySignature(t, p, reg.Host+"/rules/k8s:1", d1, d3)
	if r := postSync(t, e.url, ""); r.Result != ResultIgnored || !strings.Contains(r.Reason, "was made for "+d1+", not for this artifact "+d3) {
		t.Fatalf("other digest: %+v", r)
	}
	if e.runningDigest() != d1 {
		t.Fatalf("running %s", e.runningDigest())
	}
	// The guard still applies to a signed candidate.
	d4 := p.push("rules/k8s:1", map[string]string{"k8s.yaml": genRule("v1") + "\n- rule: Every event\n  enabled: false\n"})
	sign(signer, d4)
	reg.Reset()
	start := time.Now()
	r = postSync(t, e.url, "")
	t.Logf("signed candidate checked in %s with %d registry requests: %v", time.Since(start), reg.Requests(), reg.Log())
	if r.Result != ResultIgnored || !strings.Contains(r.Reason, `"Every event" (disabled)`) || r.Signer == "" {
		t.Fatalf("guard on a signed candidate: %+v", r)
	}
	// Signed and valid: accepted; then an idle scheduled check is one HEAD.
	d5 := p.push("rules/k8s:1", map[string]string{"k8s.yaml": genRule("v5")})
	sign(signer, d5)
	if r := postSync(t, e.url, ""); r.Result != ResultAccepted || r.Digest != d5 {
		t.Fatalf("signed v5: %+v", r)
	}
	e.stop()
	reg.Reset()
	e2 := newEnv(t, envOpts{reg: reg, stateDir: e.stateDir, follow: func(o *Options) {
		o.Interval = 100 * time.Millisecond
		o.Signature = SignatureOptions{Verifier: verifier}
	}})
	waitFor(t, "3 idle checks", func() bool { return reg.Requests() >= 3 })
	// The signer was committed with the set: reported after the restart without a new check.
	if src := e2.a.Status().Sources; len(src) != 1 || src[0].Signer != "cosign key "+signer.Key() || src[0].Digest != d5 {
		t.Fatalf("signer after a restart: %+v", src)
	}
	e2.stop()
	for _, l := range reg.Log() {
		if !strings.HasPrefix(l, "HEAD /v2/rules/k8s/manifests/1") {
			t.Fatalf("idle checks made %v", reg.Log())
		}
	}
}

// TestSignaturePolicies: if-present accepts unsigned artifacts but not bad signatures; off
// ignores signatures; policies override per reference.
func TestSignaturePolicies(t *testing.T) {
	ctx := context.Background()
	reg := testregistry.New(t, testregistry.Options{})
	p := newPusher(t, reg, "", "")
	_, verifier := signingKeys(t)
	other, _ := signingKeys(t)
	d1 := p.push("rules/k8s:1", map[string]string{"k8s.yaml": genRule("v1")})
	e := newEnv(t, envOpts{reg: reg, follow: func(o *Options) {
		o.Interval = time.Hour
		o.Signature = SignatureOptions{Verifier: verifier, Policy: signature.IfPresent}
	}})
	e.waitAccepted(d1)
	d2 := p.push("rules/k8s:1", map[string]string{"k8s.yaml": genRule("v2")})
	r, _ := ref.Parse(reg.Host + "/rules/k8s:1")
	if _, err := other.Sign(ctx, p.c, r, d2); err != nil {
		t.Fatal(err)
	}
	if r := postSync(t, e.url, ""); r.Result != ResultIgnored || !strings.Contains(r.Reason, "does not verify") {
		t.Fatalf("if-present, bad signature: %+v", r)
	}
	e.stop()
	e2 := newEnv(t, envOpts{reg: reg, stateDir: e.stateDir, follow: func(o *Options) {
		o.Interval = time.Hour
		o.Signature = SignatureOptions{Verifier: verifier, Policies: map[string]signature.Policy{reg.Host + "/rules/k8s:1": signature.Off}}
	}})
	e2.waitAccepted(d2)
}

// copySignature puts digest from's signature manifest under to's signature tag.
func copySignature(t *testing.T, p *pusher, refStr, from, to string) {
	t.Helper()
	r, _ := ref.Parse(refStr)
	repo, err := p.c.Repository(r)
	if err != nil {
		t.Fatal(err)
	}
	desc, rc, err := repo.FetchReference(context.Background(), signature.Tag(from))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(rc)
	rc.Close()
	if err := repo.PushReference(context.Background(), desc, bytes.NewReader(raw), signature.Tag(to)); err != nil {
		t.Fatal(err)
	}
}

func TestSignatureFromConfig(t *testing.T) {
	_, pub, err := cryptoutils.GeneratePEMEncodedECDSAKeyPair(elliptic.P256(), nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	keyFile := dir + "/cosign.pub"
	if err := os.WriteFile(keyFile, pub, 0o644); err != nil {
		t.Fatal(err)
	}
	bad := dir + "/bad.pub"
	os.WriteFile(bad, []byte("nope"), 0o644) //nolint:errcheck
	for _, tc := range []struct {
		name string
		cfg  config.Signature
		err  string
	}{
		{"key", config.Signature{KeyFile: keyFile, Policies: map[string]string{"r:1": "off"}}, ""},
		{"missing key", config.Signature{KeyFile: dir + "/none.pub"}, "follow.signature.key_file: open"},
		{"bad key", config.Signature{KeyFile: bad}, "follow.signature.key_file " + bad + ": signature key"},
		{"bad policy", config.Signature{Policy: "sometimes"}, "follow.signature.policy"},
	} {
		o, err := signatureFromConfig(tc.cfg)
		switch {
		case tc.err == "" && (err != nil || o.Verifier == nil || o.Policies["r:1"] != signature.Off):
			t.Errorf("%s: %+v %v", tc.name, o, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%s: %v, want %q", tc.name, err, tc.err)
		}
	}
}

// TestKeylessFollow: a keyless signature (cosign v3 bundle as a referrer, from the test
// Sigstore) by the configured identity is accepted through follow.signature's configuration;
// one by another identity is ignored.
func TestKeylessFollow(t *testing.T) {
	const identity = "https://github.com/acme/rules/.github/workflows/release.yaml@refs/heads/main"
	const issuer = "https://token.actions.githubusercontent.com"
	vs := signaturetest.NewSigstore(t)
	dir := t.TempDir()
	rootFile := dir + "/trusted_root.json"
	if err := os.WriteFile(rootFile, signaturetest.TrustedRootJSON(t, vs), 0o644); err != nil {
		t.Fatal(err)
	}
	sig, err := signatureFromConfig(config.Signature{TrustedRootFile: rootFile, CertificateIdentity: identity, CertificateOIDCIssuer: issuer})
	if err != nil {
		t.Fatal(err)
	}
	reg := testregistry.New(t, testregistry.Options{})
	p := newPusher(t, reg, "", "")
	r, _ := ref.Parse(reg.Host + "/rules/k8s:1")
	repo := reg.Host + "/rules/k8s"
	d1 := p.push("rules/k8s:1", map[string]string{"k8s.yaml": genRule("v1")})
	signaturetest.AttachBundle(t, p.c, r, d1, signaturetest.KeylessBundle(t, vs, identity, issuer, repo, d1))
	e := newEnv(t, envOpts{reg: reg, follow: func(o *Options) { o.Interval = time.Hour; o.Signature = sig }})
	e.waitAccepted(d1)
	waitFor(t, "the keyless signer in /status", func() bool {
		src := e.a.Status().Sources
		return len(src) == 1 && src[0].Signer == "cosign keyless "+identity+" (issuer "+issuer+")"
	})
	d2 := p.push("rules/k8s:1", map[string]string{"k8s.yaml": genRule("v2")})
	signaturetest.AttachBundle(t, p.c, r, d2, signaturetest.KeylessBundle(t, vs, "https://github.com/evil/x@refs/heads/main", issuer, repo, d2))
	if res := postSync(t, e.url, ""); res.Result != ResultIgnored || !strings.Contains(res.Reason, "expected SAN value") {
		t.Fatalf("other identity: %+v", res)
	}
}

// TestPerRefKeyless: follow.signature.per_ref gives one reference its own keyless signer (the
// identity of the falcoctl index entry it was resolved through) with no global identity: a
// signature by it is accepted and its signer survives a restart (state.json), one by another
// identity is ignored with the reason; a reference without one is not checked.
func TestPerRefKeyless(t *testing.T) {
	const identity = "https://github.com/acme/rules/.github/workflows/release.yaml@refs/heads/main"
	const issuer = "https://token.actions.githubusercontent.com"
	vs := signaturetest.NewSigstore(t)
	rootFile := t.TempDir() + "/trusted_root.json"
	if err := os.WriteFile(rootFile, signaturetest.TrustedRootJSON(t, vs), 0o644); err != nil {
		t.Fatal(err)
	}
	reg := testregistry.New(t, testregistry.Options{})
	refStr := reg.Host + "/rules/k8s:1"
	sig, err := signatureFromConfig(config.Signature{TrustedRootFile: rootFile,
		PerRef: map[string]config.RefSigner{refStr: {CertificateIdentity: identity, CertificateOIDCIssuer: issuer}}})
	if err != nil {
		t.Fatal(err)
	}
	p := newPusher(t, reg, "", "")
	r, _ := ref.Parse(refStr)
	repo := reg.Host + "/rules/k8s"
	want := "cosign keyless " + identity + " (issuer " + issuer + ")"

	d1 := p.push("rules/k8s:1", map[string]string{"k8s.yaml": genRule("v1")})
	e := newEnv(t, envOpts{reg: reg, follow: func(o *Options) { o.Interval = time.Hour; o.Signature = sig }})
	if res := postSync(t, e.url, ""); res.Result != ResultIgnored || !strings.Contains(res.Reason, "signature required") {
		t.Fatalf("unsigned under the reference's identity: %+v", res)
	}
	signaturetest.AttachBundle(t, p.c, r, d1, signaturetest.KeylessBundle(t, vs, identity, issuer, repo, d1))
	if res := postSync(t, e.url, ""); res.Result != ResultAccepted || res.Signer != want {
		t.Fatalf("signed by the reference's identity: %+v", res)
	}
	e.stop()
	e2 := newEnv(t, envOpts{reg: reg, stateDir: e.stateDir, follow: func(o *Options) { o.Interval = time.Hour; o.Signature = sig }})
	waitFor(t, "the signer in /status after a restart", func() bool {
		src := e2.a.Status().Sources
		return len(src) == 1 && src[0].Signer == want && src[0].Digest == d1
	})
	if res := postSync(t, e2.url, ""); res.Result != ResultUnchanged || res.Signer != want {
		t.Fatalf("unchanged after a restart: %+v", res)
	}
	d2 := p.push("rules/k8s:1", map[string]string{"k8s.yaml": genRule("v2")})
	signaturetest.AttachBundle(t, p.c, r, d2, signaturetest.KeylessBundle(t, vs, "https://github.com/evil/x@refs/heads/main", issuer, repo, d2))
	if res := postSync(t, e2.url, ""); res.Result != ResultIgnored || !strings.Contains(res.Reason, "expected SAN value") {
		t.Fatalf("another identity: %+v", res)
	}
	if e2.runningDigest() != d1 {
		t.Fatalf("running %s", e2.runningDigest())
	}
	e2.stop()

	// Another reference, without a signer of its own: off by default.
	other := reg.Host + "/rules/other:1"
	d3 := p.push("rules/other:1", map[string]string{"k8s.yaml": genRule("v3")})
	e3 := newEnv(t, envOpts{reg: reg, follow: func(o *Options) { o.Refs = []string{other}; o.Interval = time.Hour; o.Signature = sig }})
	e3.waitAccepted(d3)
}

// TestKeyBundleFollow: with a key configured, an artifact signed by cosign v3's key-based bundle
// (an OCI 1.1 referrer, no signature tag) is accepted and its signer reported.
func TestKeyBundleFollow(t *testing.T) {
	priv, pub, err := cryptoutils.GeneratePEMEncodedECDSAKeyPair(elliptic.P256(), nil)
	if err != nil {
		t.Fatal(err)
	}
	v, err := signature.NewVerifier(pub)
	if err != nil {
		t.Fatal(err)
	}
	s, _ := signature.NewSigner(priv, nil) // for the key's fingerprint only
	reg := testregistry.New(t, testregistry.Options{})
	p := newPusher(t, reg, "", "")
	r, _ := ref.Parse(reg.Host + "/rules/k8s:1")
	d1 := p.push("rules/k8s:1", map[string]string{"k8s.yaml": genRule("v1")})
	signaturetest.AttachBundle(t, p.c, r, d1, signaturetest.KeyBundle(t, priv, reg.Host+"/rules/k8s", d1))
	e := newEnv(t, envOpts{reg: reg, follow: func(o *Options) { o.Interval = time.Hour; o.Signature = SignatureOptions{Verifier: v} }})
	e.waitAccepted(d1)
	if res := postSync(t, e.url, ""); res.Result != ResultUnchanged || res.Signer != "cosign key "+s.Key() {
		t.Fatalf("key bundle: %+v", res)
	}
}
