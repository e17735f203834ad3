package cli

import (
	"context"
	"crypto/elliptic"
	"fmt"
	"strings"
	"testing"

	"github.com/sigstore/sigstore/pkg/cryptoutils"

	"github.com/falco-k8s/falco-k8s/artifact/oci"
	"github.com/falco-k8s/falco-k8s/artifact/ref"
	"github.com/falco-k8s/falco-k8s/artifact/signature/signaturetest"
	"github.com/falco-k8s/falco-k8s/internal/testregistry"
)

// TestPushSignInstallVerify: registry push --sign-key signs (cosign's encrypted key format,
// password from $COSIGN_PASSWORD); artifact install --verify-key installs only artifacts signed
// with that key, and --no-verify skips the check.
func TestPushSignInstallVerify(t *testing.T) {
	e := newEnv(t, testregistry.Options{})
	dir := t.TempDir()
	priv, pub, err := cryptoutils.GeneratePEMEncodedECDSAKeyPair(elliptic.P256(), cryptoutils.StaticPasswordFunc([]byte("pw")))
	if err != nil {
		t.Fatal(err)
	}
	keyFile := writeFile(t, dir, "cosign.key", string(priv))
	pubFile := writeFile(t, dir, "cosign.pub", string(pub))
	rules := writeFile(t, dir, "rules.yaml", rulesYAML)
	repo := e.reg.Host + "/rules/signed"
	install := func(tag string, extra ...string) error {
		return e.run(append([]string{"artifact", "install", repo + ":" + tag, "--plain-http", "--rulesfiles-dir", t.TempDir(),
			"--state-dir", t.TempDir(), "--resolve-deps=false"}, extra...)...)
	}

	if err := e.run("registry", "push", repo+":1", rules, "--type", "rulesfile", "--version", "1.0.0", "--plain-http", "--sign-key", keyFile); err == nil ||
		!strings.Contains(err.Error(), "COSIGN_PASSWORD") {
		t.Fatalf("push with an encrypted key and no password: %v", err)
	}
	e.vars["COSIGN_PASSWORD"] = "pw"
	e.must("registry", "push", repo+":1", rules, "--type", "rulesfile", "--version", "1.0.0", "--plain-http", "--sign-key", keyFile)
	if !strings.Contains(e.lastErrs, "artifact signed") {
		t.Fatalf("push log: %s", e.lastErrs)
	}
	if err := install("1", "--verify-key", pubFile); err != nil {
		t.Fatalf("signed: %v\n%s", err, e.lastErrs)
	}
	e.must("registry", "push", repo+":2", rules, "--type", "rulesfile", "--version", "2.0.0", "--plain-http")
	if err := install("2", "--verify-key", pubFile); err == nil || !strings.Contains(err.Error(), "no cosign signature") {
		t.Fatalf("unsigned: %v", err)
	}
	if err := install("2", "--verify-key", pubFile, "--no-verify"); err != nil {
		t.Fatalf("--no-verify: %v", err)
	}
	if err := install("1", "--certificate-identity", "x"); err == nil || !strings.Contains(err.Error(), "--trusted-root, --certificate-identity and --certificate-oidc-issuer together") {
		t.Fatalf("incomplete keyless flags: %v", err)
	}
	// cosign v3's format: a bundle referrer, no signature tag; the same key verifies it.
	e.must("registry", "push", repo+":3", rules, "--type", "rulesfile", "--version", "3.0.0", "--plain-http", "--sign-key", keyFile, "--new-bundle-format")
	if err := install("3", "--verify-key", pubFile); err != nil {
		t.Fatalf("signed as a bundle: %v\n%s", err, e.lastErrs)
	}
	if err := e.run("registry", "push", repo+":4", rules, "--type", "rulesfile", "--version", "4.0.0", "--plain-http", "--new-bundle-format"); err == nil ||
		!strings.Contains(err.Error(), "set --sign-key too") {
		t.Fatalf("--new-bundle-format without a key: %v", err)
	}
}

// TestInstallIndexKeylessSignature: a falcoctl index entry's signature.cosign identity and
// issuer are verified offline with --trusted-root for the references resolved through it.
func TestInstallIndexKeylessSignature(t *testing.T) {
	const identity = "https://github.com/acme/rules/.github/workflows/release.yaml@refs/heads/main"
	const issuer = "https://token.actions.githubusercontent.com"
	e := newEnv(t, testregistry.Options{})
	dir := t.TempDir()
	vs := signaturetest.NewSigstore(t)
	rootFile := writeFile(t, dir, "trusted_root.json", string(signaturetest.TrustedRootJSON(t, vs)))
	ix := writeFile(t, dir, "index.yaml", fmt.Sprintf(`- name: acme-rules
  type: rulesfile
  registry: %s
  repository: rules/acme
  signature:
    cosign:
      certificate-identity: %s
      certificate-oidc-issuer: %s
`, e.reg.Host, identity, issuer))
	e.must("index", "add", "local", "file://"+ix)
	rules := writeFile(t, dir, "rules.yaml", rulesYAML)
	repo := e.reg.Host + "/rules/acme"
	c, err := oci.NewClient(oci.Options{PlainHTTP: true})
	if err != nil {
		t.Fatal(err)
	}
	pushSigned := func(tag, id string) {
		e.must("registry", "push", repo+":"+tag, rules, "--type", "rulesfile", "--version", tag+".0.0", "--plain-http")
		r, _ := ref.Parse(repo + ":" + tag)
		d, err := c.Resolve(context.Background(), r)
		if err != nil {
			t.Fatal(err)
		}
		signaturetest.AttachBundle(t, c, r, d.Digest.String(), signaturetest.KeylessBundle(t, vs, id, issuer, repo, d.Digest.String()))
	}
	install := func(tag string, extra ...string) error {
		return e.run(append([]string{"artifact", "install", "acme-rules:" + tag, "--plain-http", "--rulesfiles-dir", t.TempDir(),
			"--state-dir", t.TempDir(), "--resolve-deps=false"}, extra...)...)
	}
	pushSigned("1", identity)
	if err := install("1", "--trusted-root", rootFile); err != nil {
		t.Fatalf("signed by the index's identity: %v\n%s", err, e.lastErrs)
	}
	pushSigned("2", "https://github.com/evil/fork/.github/workflows/x.yaml@refs/heads/main")
	if err := install("2", "--trusted-root", rootFile); err == nil || !strings.Contains(err.Error(), "expected SAN value") {
		t.Fatalf("signed by another identity: %v", err)
	}
	// Without a trusted root the entry's identity cannot be checked offline: a warning.
	if err := install("2"); err != nil || !strings.Contains(e.lastErrs, "pass --trusted-root") {
		t.Fatalf("no trusted root: %v\n%s", err, e.lastErrs)
	}
}
