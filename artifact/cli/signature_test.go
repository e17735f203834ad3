package cli

import (
	"crypto/elliptic"
	"strings"
	"testing"

	"github.com/sigstore/sigstore/pkg/cryptoutils"

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
	if err := install("1", "--trusted-root", pubFile); err == nil || !strings.Contains(err.Error(), "--certificate-identity") {
		t.Fatalf("incomplete keyless flags: %v", err)
	}
}
