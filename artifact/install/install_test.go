package install

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/rs/zerolog"

	"github.com/falco-k8s/falco-k8s/artifact/oci"
	"github.com/falco-k8s/falco-k8s/artifact/ref"
	"github.com/falco-k8s/falco-k8s/internal/testregistry"
)

func rulesTarGz(t testing.TB, name, body string) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	_ = tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg})
	_, _ = tw.Write([]byte(body))
	tw.Close()
	zw.Close()
	return buf.Bytes()
}

// pushRaw uploads a hand-made manifest so tests can build artifacts the
// push command refuses to produce.
func pushRaw(t testing.TB, c *oci.Client, r ref.Reference, layerMT string, layer []byte, uploadLayer bool) {
	t.Helper()
	ctx := context.Background()
	repo, err := c.Repository(r)
	if err != nil {
		t.Fatal(err)
	}
	cfg := []byte(`{"name":"x","version":"1.0.0"}`)
	cd := ocispec.Descriptor{MediaType: oci.RulesfileConfigMediaType, Digest: digest.FromBytes(cfg), Size: int64(len(cfg))}
	if err := repo.Push(ctx, cd, bytes.NewReader(cfg)); err != nil {
		t.Fatal(err)
	}
	ld := ocispec.Descriptor{MediaType: layerMT, Digest: digest.FromBytes(layer), Size: int64(len(layer)), Annotations: map[string]string{oci.AnnotationTitle: "x.tar.gz"}}
	if err := repo.Push(ctx, ld, bytes.NewReader(layer)); err != nil {
		t.Fatal(err)
	}
	m := ocispec.Manifest{MediaType: oci.ManifestMediaType, Config: cd, Layers: []ocispec.Descriptor{ld}}
	m.SchemaVersion = 2
	mb, _ := json.Marshal(m)
	md := ocispec.Descriptor{MediaType: oci.ManifestMediaType, Digest: digest.FromBytes(mb), Size: int64(len(mb))}
	if err := repo.PushReference(ctx, md, bytes.NewReader(mb), r.Tag); err != nil {
		t.Fatal(err)
	}
	if !uploadLayer {
		// The registry refuses manifests with unknown blobs, so the
		// "missing layer" case deletes it afterwards.
		if err := repo.Blobs().Delete(ctx, ld); err != nil {
			t.Fatal(err)
		}
	}
}

// corrupt flips bytes of blob responses whose path contains target.
type corrupt struct {
	next   http.RoundTripper
	target string
}

func (c *corrupt) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := c.next.RoundTrip(req)
	if err != nil || req.Method != http.MethodGet || !strings.Contains(req.URL.Path, c.target) {
		return resp, err
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if len(b) > 20 {
		b[len(b)-12] ^= 0xff
	}
	resp.Body = io.NopCloser(bytes.NewReader(b))
	return resp, nil
}

func TestMalformedArtifacts(t *testing.T) {
	reg := testregistry.New(t, testregistry.Options{})
	plain, err := oci.NewClient(oci.Options{PlainHTTP: true})
	if err != nil {
		t.Fatal(err)
	}
	good := rulesTarGz(t, "r.yaml", strings.Repeat("- rule: a\n", 50))
	mk := func(name string) ref.Reference {
		r, err := ref.Parse(reg.Host + "/bad/" + name + ":1")
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	pushRaw(t, plain, mk("wrongtype"), "application/vnd.oci.image.layer.v1.tar+gzip", good, true)
	pushRaw(t, plain, mk("missing"), oci.RulesfileLayerMediaType, rulesTarGz(t, "m.yaml", "- rule: m\n"), false)
	pushRaw(t, plain, mk("mismatch"), oci.RulesfileLayerMediaType, good, true)
	pushRaw(t, plain, mk("notgzip"), oci.RulesfileLayerMediaType, []byte("plain text, not an archive"), true)
	tampering, err := oci.NewClient(oci.Options{PlainHTTP: true, WrapTransport: func(rt http.RoundTripper) http.RoundTripper {
		return &corrupt{next: rt, target: digest.FromBytes(good).Encoded()}
	}})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		client *oci.Client
		max    int64
		want   string
	}{
		{"wrongtype", plain, 0, "is not a Falco artifact"},
		{"missing", plain, 0, "not found"},
		{"mismatch", tampering, 0, "digest mismatch"},
		{"notgzip", plain, 0, "not gzip"},
		{"mismatch", plain, 64, "size limit"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dest, sd := t.TempDir(), t.TempDir()
			if err := os.WriteFile(filepath.Join(dest, "keep.yaml"), []byte("keep"), 0o644); err != nil {
				t.Fatal(err)
			}
			in := &Installer{Client: tc.client, StateDir: sd, Log: zerolog.Nop(),
				Dirs:    map[oci.ArtifactType]string{oci.Rulesfile: dest},
				Stage:   StageOptions{MaxLayerBytes: tc.max},
				Resolve: func(_ context.Context, s string) (ref.Reference, error) { return ref.Parse(s) }}
			_, err := in.Install(context.Background(), []string{mk(tc.name).String()})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("want error containing %q, got %v", tc.want, err)
			}
			if tc.want == "digest mismatch" && !errors.Is(err, oci.ErrDigestMismatch) {
				t.Fatalf("%v is not oci.ErrDigestMismatch", err)
			}
			entries, _ := os.ReadDir(dest)
			if len(entries) != 1 || entries[0].Name() != "keep.yaml" {
				t.Fatalf("destination changed: %v", entries)
			}
			parent, _ := os.ReadDir(filepath.Dir(dest))
			for _, p := range parent {
				if strings.Contains(p.Name(), "staging") {
					t.Fatalf("staging left: %s", p.Name())
				}
			}
		})
	}
}
