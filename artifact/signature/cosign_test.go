package signature

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

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

// TestCosignBundleInterop: key-based cosign v3 signatures (`cosign sign --key
// --new-bundle-format`: a Sigstore bundle with a key hint, attached as an OCI 1.1 referrer; the
// reference registry has no referrers API, so cosign lists it in the referrers tag) made by the
// real cosign verify here with the key, and each refusal has its own reason: another key, no
// signature at all (neither scheme), a bundle made for another digest, a tampered bundle, and an
// attestation by the same key (not a signature).
func TestCosignBundleInterop(t *testing.T) {
	bin := cosignBinary(t)
	ctx := context.Background()
	f := newFixture(t)
	dir, otherDir := t.TempDir(), t.TempDir()
	for _, d := range []string{dir, otherDir} {
		if out, err := cosign(t, bin, d, "generate-key-pair"); err != nil {
			t.Fatalf("cosign generate-key-pair: %v\n%s", err, out)
		}
	}
	pub, err := os.ReadFile(filepath.Join(dir, "cosign.pub"))
	if err != nil {
		t.Fatal(err)
	}
	v, err := NewVerifier(pub)
	if err != nil {
		t.Fatal(err)
	}
	run := func(keyDir string, args ...string) {
		t.Helper()
		args = append(args, "--key", filepath.Join(keyDir, "cosign.key"), "--tlog-upload=false", "--new-bundle-format", "--allow-http-registry", "--yes")
		if out, err := cosign(t, bin, keyDir, args...); err != nil {
			t.Fatalf("cosign %v: %v\n%s", args, err, out)
		}
	}
	image := func(d string) string { return f.reg.Host + "/rules/k8s@" + d }

	r1, d1 := f.push("rules/k8s:1", "a: 1\n")
	run(dir, "sign", image(d1))
	f.reg.Reset()
	start := time.Now()
	got, err := v.Verify(ctx, f.c, r1, d1, Required)
	t.Logf("verified a cosign v3 key-based bundle in %s with %d registry requests: %v", time.Since(start), f.reg.Requests(), f.reg.Log())
	if err != nil || got == nil || got.Key != v.key {
		t.Fatalf("cosign v3 bundle: %+v %v", got, err)
	}

	r2, d2 := f.push("rules/k8s:2", "a: 2\n")
	run(otherDir, "sign", image(d2))
	r3, d3 := f.push("rules/k8s:3", "a: 3\n")
	r4, d4 := f.push("rules/k8s:4", "a: 4\n")
	copyBundle(t, f, r1, d1, d4, nil)
	r5, d5 := f.push("rules/k8s:5", "a: 5\n")
	copyBundle(t, f, r1, d1, d5, func(b []byte) []byte { // another subject in the signed statement
		return bytes.Replace(b, []byte(`"payload":"`), []byte(`"payload":"AAAA`), 1)
	})
	r6, d6 := f.push("rules/k8s:6", "a: 6\n")
	pred := filepath.Join(dir, "predicate.json")
	if err := os.WriteFile(pred, []byte(`{"reviewed": true}`), 0o644); err != nil {
		t.Fatal(err)
	}
	run(dir, "attest", "--predicate", pred, "--type", "https://example.com/review/v1", image(d6))
	for _, tc := range []struct {
		name string
		r    ref.Reference
		d    string
		kind Kind
		msg  string
	}{
		{"another key", r2, d2, BadSignature, "does not verify with the configured key or identity"},
		{"unsigned", r3, d3, Unsigned, "tag " + Tag(d3) + " not found, and no Sigstore bundle refers to it"},
		{"bundle for another digest", r4, d4, OtherDigest, "was made for " + d1},
		{"tampered bundle", r5, d5, BadSignature, "does not verify"},
		{"attestation", r6, d6, BadSignature, "not a cosign signature"},
	} {
		_, err := v.Verify(ctx, f.c, tc.r, tc.d, Required)
		t.Logf("%s: %v", tc.name, err)
		var se *Error
		if !errors.As(err, &se) || se.Kind != tc.kind || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: %v, want %s (%s)", tc.name, err, tc.kind, tc.msg)
		}
	}
	// falco-k8s signs a v3 bundle with cosign.key; cosign verifies it with cosign.pub (offline:
	// an empty trusted root, no log), and not with another key.
	signer, err := NewSigner(mustRead(t, filepath.Join(dir, "cosign.key")), []byte("pw"))
	if err != nil {
		t.Fatal(err)
	}
	r7, d7 := f.push("rules/k8s:7", "a: 7\n")
	if _, err := signer.SignBundle(ctx, f.c, r7, d7); err != nil {
		t.Fatal(err)
	}
	if got, err := v.Verify(ctx, f.c, r7, d7, Required); err != nil || got.Key != v.key {
		t.Fatalf("falco-k8s bundle: %+v %v", got, err)
	}
	emptyRoot := filepath.Join(dir, "trusted_root.json")
	if err := os.WriteFile(emptyRoot, []byte(`{"mediaType":"application/vnd.dev.sigstore.trustedroot+json;version=0.1"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	verifyArgs := func(keyDir string) []string {
		return []string{"verify", "--key", filepath.Join(keyDir, "cosign.pub"), "--new-bundle-format", "--trusted-root", emptyRoot,
			"--insecure-ignore-tlog=true", "--allow-http-registry", image(d7)}
	}
	if out, err := cosign(t, bin, dir, verifyArgs(dir)...); err != nil {
		t.Fatalf("cosign verify of a falco-k8s bundle: %v\n%s", err, out)
	}
	if out, err := cosign(t, bin, dir, verifyArgs(otherDir)...); err == nil {
		t.Fatalf("cosign verify with another key passed:\n%s", out)
	}
	if got, err := v.Verify(ctx, f.c, r3, d3, IfPresent); got != nil || err != nil {
		t.Errorf("if-present, unsigned: %+v %v", got, err)
	}
	if _, err := v.Verify(ctx, f.c, r2, d2, IfPresent); err == nil {
		t.Error("if-present accepted another key's bundle")
	}
}

// copyBundle attaches the bundle referring to d (edited by edit when set) to dst, as a referrer
// of dst.
func copyBundle(t *testing.T, f *fixture, r ref.Reference, d, dst string, edit func([]byte) []byte) {
	t.Helper()
	ctx := context.Background()
	repo, err := f.c.Repository(r)
	if err != nil {
		t.Fatal(err)
	}
	var desc ocispec.Descriptor
	err = repo.Referrers(ctx, ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.Digest(d)}, "", func(rs []ocispec.Descriptor) error {
		desc = rs[0]
		return nil
	})
	if err != nil || desc.Digest == "" {
		t.Fatalf("referrers of %s: %v", d, err)
	}
	read := func(d ocispec.Descriptor) []byte {
		rc, err := repo.Fetch(ctx, d)
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		b, _ := io.ReadAll(rc)
		return b
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(read(desc), &m); err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		b := edit(read(m.Layers[0]))
		m.Layers[0].Digest, m.Layers[0].Size = digest.FromBytes(b), int64(len(b))
		if err := repo.Push(ctx, m.Layers[0], bytes.NewReader(b)); err != nil {
			t.Fatal(err)
		}
	}
	subject, err := repo.Resolve(ctx, dst)
	if err != nil {
		t.Fatal(err)
	}
	m.Subject = &ocispec.Descriptor{MediaType: subject.MediaType, Digest: subject.Digest, Size: subject.Size}
	raw, _ := json.Marshal(m)
	md := ocispec.Descriptor{MediaType: m.MediaType, ArtifactType: m.ArtifactType, Digest: digest.FromBytes(raw), Size: int64(len(raw))}
	if err := repo.Push(ctx, md, bytes.NewReader(raw)); err != nil {
		t.Fatal(err)
	}
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
