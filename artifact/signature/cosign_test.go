package signature

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/falco-k8s/falco-k8s/artifact/ref"
)

// cosignBinary is the real cosign (scripts/build-cosign.sh): $FALCO_K8S_COSIGN, else the cached
// build. Missing, the test skips, or fails when CI=true.
func cosignBinary(t *testing.T) string {
	t.Helper()
	bin := os.Getenv("FALCO_K8S_COSIGN")
	if bin == "" {
		home, _ := os.UserHomeDir()
		cache := os.Getenv("XDG_CACHE_HOME")
		if cache == "" {
			cache = filepath.Join(home, ".cache")
		}
		matches, _ := filepath.Glob(filepath.Join(cache, "falco-k8s", "cosign-*", "cosign"))
		if len(matches) > 0 {
			bin = matches[len(matches)-1]
		}
	}
	if _, err := os.Stat(bin); bin == "" || err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("cosign not built: run scripts/build-cosign.sh and set FALCO_K8S_COSIGN (%q)", bin)
		}
		t.Skip("cosign not built: run scripts/build-cosign.sh (or set FALCO_K8S_COSIGN)")
	}
	return bin
}

// cosign runs the real cosign offline (no transparency log, no TUF) in dir.
func cosign(t *testing.T, bin, dir string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "COSIGN_PASSWORD=pw", "HOME="+dir, "TUF_ROOT="+filepath.Join(dir, "tuf"),
		"COSIGN_EXPERIMENTAL=0", "SIGSTORE_NO_CACHE=true")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestCosignInterop: signatures made by the real cosign verify here, and signatures made here
// verify with `cosign verify`, with cosign's own encrypted key files.
func TestCosignInterop(t *testing.T) {
	bin := cosignBinary(t)
	ctx := context.Background()
	f := newFixture(t)
	dir := t.TempDir()
	if out, err := cosign(t, bin, dir, "generate-key-pair"); err != nil {
		t.Fatalf("cosign generate-key-pair: %v\n%s", err, out)
	}
	otherDir := t.TempDir()
	if out, err := cosign(t, bin, otherDir, "generate-key-pair"); err != nil {
		t.Fatalf("cosign generate-key-pair: %v\n%s", err, out)
	}
	read := func(p string) []byte {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	v, err := NewVerifier(read(filepath.Join(dir, "cosign.pub")))
	if err != nil {
		t.Fatal(err)
	}
	signer, err := NewSigner(read(filepath.Join(dir, "cosign.key")), []byte("pw"))
	if err != nil {
		t.Fatalf("cosign.key: %v", err)
	}
	if signer.Key() != v.key {
		t.Fatalf("cosign.key and cosign.pub fingerprints differ: %s %s", signer.Key(), v.key)
	}
	cosignSign := func(keyDir, image string) {
		t.Helper()
		out, err := cosign(t, bin, keyDir, "sign", "--key", filepath.Join(keyDir, "cosign.key"), "--tlog-upload=false",
			"--allow-http-registry", "--yes", image)
		if err != nil {
			t.Fatalf("cosign sign %s: %v\n%s", image, err, out)
		}
	}

	// cosign signs; falco-k8s verifies.
	r1, d1 := f.push("rules/k8s:1", "a: 1\n")
	cosignSign(dir, f.reg.Host+"/rules/k8s@"+d1)
	f.reg.Reset()
	start := time.Now()
	got, err := v.Verify(ctx, f.c, r1, d1, Required)
	t.Logf("verified a cosign signature in %s with %d registry requests", time.Since(start), f.reg.Requests())
	if err != nil || got == nil || got.Key != v.key {
		t.Fatalf("cosign-signed: %+v %v", got, err)
	}

	// Refusals, each with its own reason.
	r2, d2 := f.push("rules/k8s:2", "a: 2\n")
	cosignSign(otherDir, f.reg.Host+"/rules/k8s@"+d2) // another key
	r3, d3 := f.push("rules/k8s:3", "a: 3\n")         // unsigned
	r4, d4 := f.push("rules/k8s:4", "a: 4\n")
	copySig(t, f, r1, d1, d4) // d1's signature presented for d4
	r5, d5 := f.push("rules/k8s:5", "a: 5\n")
	cosignSign(dir, f.reg.Host+"/rules/k8s@"+d5)
	tamper(t, f, r5, d5) // the signed payload's digest edited
	for _, tc := range []struct {
		name string
		r    ref.Reference
		d    string
		kind Kind
		msg  string
	}{
		{"another key", r2, d2, BadSignature, "does not verify with the configured key or identity: invalid signature"},
		{"unsigned", r3, d3, Unsigned, "no cosign signature for " + d3},
		{"signature for another digest", r4, d4, OtherDigest, "was made for " + d1},
		{"tampered digest", r5, d5, BadSignature, "does not verify"},
	} {
		_, err := v.Verify(ctx, f.c, tc.r, tc.d, Required)
		var se *Error
		if !errors.As(err, &se) || se.Kind != tc.kind || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: %v, want %s (%s)", tc.name, err, tc.kind, tc.msg)
		}
	}

	// falco-k8s signs with cosign.key; cosign verifies with cosign.pub.
	r6, d6 := f.push("rules/k8s:6", "a: 6\n")
	if _, err := signer.Sign(ctx, f.c, r6, d6); err != nil {
		t.Fatal(err)
	}
	out, err := cosign(t, bin, dir, "verify", "--key", filepath.Join(dir, "cosign.pub"), "--insecure-ignore-tlog=true",
		"--allow-http-registry", f.reg.Host+"/rules/k8s@"+d6)
	if err != nil {
		t.Fatalf("cosign verify of a falco-k8s signature: %v\n%s", err, out)
	}
	// And refuses it with another key.
	if out, err := cosign(t, bin, dir, "verify", "--key", filepath.Join(otherDir, "cosign.pub"), "--insecure-ignore-tlog=true",
		"--allow-http-registry", f.reg.Host+"/rules/k8s@"+d6); err == nil {
		t.Fatalf("cosign verify with another key passed:\n%s", out)
	}
}
