package oci

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/falco-k8s/falco-k8s/artifact/ref"
)

// Layer is one file to push: a tar.gz as given, or a raw file that Push
// wraps in <name-before-first-dot>.tar.gz like falcoctl.
type Layer struct {
	Path     string
	Platform string // os/arch, plugins only
}

// PushOptions describe one artifact to push.
type PushOptions struct {
	Type             ArtifactType
	Layers           []Layer
	Config           ArtifactConfig
	Tags             []string // all tags to point at the root; first one is pushed first
	AnnotationSource string
	// Created is stamped into org.opencontainers.image.created; zero means now.
	Created time.Time
}

// PushResult reports what was pushed.
type PushResult struct {
	Root ocispec.Descriptor
	Tags []string
}

// IsTarGz reports whether b starts a gzip stream holding a tar archive;
// falcoctl wraps anything else.
func IsTarGz(b []byte) bool {
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return false
	}
	_, err = tar.NewReader(zr).Next()
	return err == nil || errors.Is(err, io.EOF)
}

// LayerBytes returns the layer blob and its title for a file to push.
func LayerBytes(path string) ([]byte, string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, "", fmt.Errorf("read %s: %w", path, err)
	}
	base := filepath.Base(path)
	if IsTarGz(b) {
		return b, base, nil
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, "", err
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	hdr := &tar.Header{Name: base, Mode: int64(fi.Mode().Perm()), Size: int64(len(b)), ModTime: fi.ModTime(), Typeflag: tar.TypeReg, Format: tar.FormatPAX}
	if err := tw.WriteHeader(hdr); err != nil {
		return nil, "", err
	}
	if _, err := tw.Write(b); err != nil {
		return nil, "", err
	}
	if err := tw.Close(); err != nil {
		return nil, "", err
	}
	if err := zw.Close(); err != nil {
		return nil, "", err
	}
	name, _, _ := strings.Cut(base, ".")
	return buf.Bytes(), name + ".tar.gz", nil
}

// Push uploads config, layers and manifest(s) and points every tag at the
// root. Plugins always become an image index, even with one platform, as in
// falcoctl.
func (c *Client) Push(ctx context.Context, r ref.Reference, o PushOptions) (*PushResult, error) {
	res, err := c.push(ctx, r, o)
	if err != nil {
		return nil, Explain("push", r, err)
	}
	return res, nil
}

func (c *Client) push(ctx context.Context, r ref.Reference, o PushOptions) (*PushResult, error) {
	if o.Type.LayerMediaType() == "" {
		return nil, fmt.Errorf("unknown artifact type %q", o.Type)
	}
	if len(o.Layers) == 0 {
		return nil, errors.New("nothing to push: give at least one file")
	}
	if o.Type != Plugin && len(o.Layers) != 1 {
		return nil, fmt.Errorf("a %s takes exactly one file, got %d", o.Type, len(o.Layers))
	}
	if o.Type == Plugin {
		for _, l := range o.Layers {
			if l.Platform == "" {
				return nil, errors.New("plugins need one --platform os/arch per file, in the same order")
			}
		}
	}
	if len(o.Tags) == 0 {
		o.Tags = []string{r.Object()}
	}
	repo, err := c.Repository(r)
	if err != nil {
		return nil, err
	}
	created := o.Created
	if created.IsZero() {
		created = time.Now()
	}
	annotations := map[string]string{AnnotationCreated: created.UTC().Format(time.RFC3339)}
	if o.AnnotationSource != "" {
		annotations[AnnotationSource] = o.AnnotationSource
	}
	cfgBytes, err := o.Config.Marshal()
	if err != nil {
		return nil, err
	}
	cfgDesc, err := pushBlob(ctx, repo, o.Type.ConfigMediaType(), cfgBytes)
	if err != nil {
		return nil, fmt.Errorf("push config: %w", err)
	}
	// ECR rejects config descriptors with annotations (falcoctl #302).
	cfgDesc = ocispec.Descriptor{MediaType: cfgDesc.MediaType, Digest: cfgDesc.Digest, Size: cfgDesc.Size}

	var manifests []ocispec.Descriptor
	var rootBytes []byte
	for _, l := range o.Layers {
		blob, title, err := LayerBytes(l.Path)
		if err != nil {
			return nil, err
		}
		ld, err := pushBlob(ctx, repo, o.Type.LayerMediaType(), blob)
		if err != nil {
			return nil, fmt.Errorf("push layer %s: %w", title, err)
		}
		ld.Annotations = map[string]string{AnnotationTitle: title}
		m := ocispec.Manifest{
			MediaType:   ManifestMediaType,
			Config:      cfgDesc,
			Layers:      []ocispec.Descriptor{ld},
			Annotations: annotations,
		}
		m.SchemaVersion = 2
		mb, err := json.Marshal(m)
		if err != nil {
			return nil, err
		}
		if o.Type != Plugin {
			// The single manifest is the root: it is uploaded once per tag
			// below, with no extra untagged upload.
			rootBytes = mb
			break
		}
		md, err := pushBlobAsManifest(ctx, repo, mb, ManifestMediaType, "")
		if err != nil {
			return nil, err
		}
		{
			os, arch, err := ParsePlatform(l.Platform)
			if err != nil {
				return nil, err
			}
			md.Platform = &ocispec.Platform{OS: os, Architecture: arch}
			md.ArtifactType = o.Type.ConfigMediaType()
			md.Annotations = annotations
		}
		manifests = append(manifests, md)
	}
	rootType := ManifestMediaType
	if o.Type == Plugin {
		idx := ocispec.Index{MediaType: IndexMediaType, Manifests: manifests}
		idx.SchemaVersion = 2
		if o.AnnotationSource != "" {
			idx.Annotations = map[string]string{AnnotationSource: o.AnnotationSource}
		}
		if rootBytes, err = json.Marshal(idx); err != nil {
			return nil, err
		}
		rootType = IndexMediaType
	}
	var root ocispec.Descriptor
	for i, tag := range o.Tags {
		d, err := pushBlobAsManifest(ctx, repo, rootBytes, rootType, tag)
		if err != nil {
			return nil, fmt.Errorf("tag %s: %w", tag, err)
		}
		if i == 0 {
			root = d
		}
	}
	return &PushResult{Root: root, Tags: o.Tags}, nil
}
