package oci

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/errdef"
	orasreg "oras.land/oras-go/v2/registry"
	"oras.land/oras-go/v2/registry/remote"
	orasauth "oras.land/oras-go/v2/registry/remote/auth"
	"oras.land/oras-go/v2/registry/remote/errcode"

	"github.com/falco-k8s/falco-k8s/artifact/ref"
)

// TLSOptions are the per-registry transport settings falcoctl lacks (#135).
type TLSOptions struct {
	PlainHTTP          bool
	InsecureSkipVerify bool
	CAFile             string
}

// Options configure a Client.
type Options struct {
	// TLS maps a registry host[:port] to its settings; hosts not listed use
	// HTTPS with the system trust store.
	TLS map[string]TLSOptions
	// PlainHTTP forces plain HTTP for every registry (the --plain-http flag).
	PlainHTTP bool
	// Credential returns the credential for a registry host; nil means
	// anonymous.
	Credential orasauth.CredentialFunc
	// UserAgent defaults to "falcoctl" so registry-side rules keyed on it
	// keep working.
	UserAgent string
	// WrapTransport, when set, wraps every transport the client builds. Tests
	// and benchmarks use it to count requests.
	WrapTransport func(http.RoundTripper) http.RoundTripper
	// MaxManifestBytes and MaxConfigBytes bound metadata reads; zero means 4
	// MiB and 1 MiB.
	MaxManifestBytes int64
	MaxConfigBytes   int64
	// ChallengeCacheFile, when set, remembers each registry's Bearer
	// challenge (realm and service, no secrets) across processes so that
	// the next process fetches its token before the first request instead
	// of after a 401: see challenge.go. DefaultChallengeCacheFile is the
	// CLI's location; empty disables it (long-running processes gain
	// little, and tests should not write to the user's cache).
	ChallengeCacheFile string
}

// Client is the shared registry client; see the package documentation.
type Client struct {
	opts       Options
	cache      orasauth.Cache
	challenges *authCache // nil without Options.ChallengeCacheFile

	mu      sync.Mutex
	clients map[string]*orasauth.Client // keyed by registry host
}

// NewClient validates the TLS settings (CA files are read now so that a typo
// fails at startup, not at the first tick) and builds a client.
func NewClient(opts Options) (*Client, error) {
	if opts.UserAgent == "" {
		opts.UserAgent = "falcoctl"
	}
	if opts.MaxManifestBytes == 0 {
		opts.MaxManifestBytes = 4 << 20
	}
	if opts.MaxConfigBytes == 0 {
		opts.MaxConfigBytes = 1 << 20
	}
	c := &Client{opts: opts, cache: orasauth.NewCache(), clients: map[string]*orasauth.Client{}}
	if opts.ChallengeCacheFile != "" {
		c.challenges = &authCache{Cache: c.cache, c: c, store: &challengeStore{path: opts.ChallengeCacheFile}}
		c.cache = c.challenges
	}
	for host, t := range opts.TLS {
		if _, err := c.httpClientFor(host, t); err != nil {
			return nil, err
		}
	}
	return c, nil
}

func baseTransport() *http.Transport {
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   8,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		ResponseHeaderTimeout: 60 * time.Second,
	}
}

func (c *Client) httpClientFor(host string, t TLSOptions) (*http.Client, error) {
	tr := baseTransport()
	if t.CAFile != "" || t.InsecureSkipVerify {
		cfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: t.InsecureSkipVerify} //nolint:gosec // explicit per-registry opt-in
		if t.CAFile != "" {
			pem, err := os.ReadFile(t.CAFile)
			if err != nil {
				return nil, fmt.Errorf("registry %s: read CA file: %w", host, err)
			}
			pool, err := x509.SystemCertPool()
			if err != nil || pool == nil {
				pool = x509.NewCertPool()
			}
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("registry %s: CA file %s contains no PEM certificate", host, t.CAFile)
			}
			cfg.RootCAs = pool
		}
		tr.TLSClientConfig = cfg
	}
	var rt http.RoundTripper = tr
	if c.opts.WrapTransport != nil {
		rt = c.opts.WrapTransport(rt)
	}
	return &http.Client{Transport: rt}, nil
}

func (c *Client) authClient(host string) (*orasauth.Client, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ac, ok := c.clients[host]; ok {
		return ac, nil
	}
	hc, err := c.httpClientFor(host, c.opts.TLS[host])
	if err != nil {
		return nil, err
	}
	if c.challenges != nil {
		// Outermost, so it sees exactly what oras sees from the registry.
		hc.Transport = &challengeObserver{next: hc.Transport, host: host, cache: c.challenges}
	}
	cred := c.opts.Credential
	if cred == nil {
		cred = func(context.Context, string) (orasauth.Credential, error) { return orasauth.EmptyCredential, nil }
	}
	ac := &orasauth.Client{
		Client:     hc,
		Cache:      c.cache,
		Credential: cred,
		Header:     http.Header{"User-Agent": []string{c.opts.UserAgent}},
	}
	c.clients[host] = ac
	return ac, nil
}

// PlainHTTP reports whether host is reached over plain HTTP.
func (c *Client) PlainHTTP(host string) bool {
	return c.opts.PlainHTTP || c.opts.TLS[host].PlainHTTP
}

// Repository returns an oras repository bound to the shared client.
func (c *Client) Repository(r ref.Reference) (*remote.Repository, error) {
	ac, err := c.authClient(r.Registry)
	if err != nil {
		return nil, err
	}
	return &remote.Repository{
		Client:           ac,
		Reference:        orasreg.Reference{Registry: r.Registry, Repository: r.Repository, Reference: r.Object()},
		PlainHTTP:        c.PlainHTTP(r.Registry),
		MaxMetadataBytes: c.opts.MaxManifestBytes,
		// Only the two media types falcoctl produces; asking for docker
		// schema2 would let a registry convert and change the digest.
		ManifestMediaTypes: []string{ManifestMediaType, IndexMediaType},
	}, nil
}

// Explain turns transport and registry errors into messages that say what to
// do. It never includes credentials: oras errors carry only method and URL.
func Explain(op string, r fmt.Stringer, err error) error {
	if err == nil {
		return nil
	}
	hint := ""
	var er *errcode.ErrorResponse
	var certErr *tls.CertificateVerificationError
	var unknownAuth x509.UnknownAuthorityError
	switch {
	case errors.Is(err, errdef.ErrNotFound):
		hint = " (not found: check the repository and tag, e.g. with 'artifact info')"
	case errors.As(err, &er) && er.StatusCode == http.StatusUnauthorized, errors.Is(err, orasauth.ErrBasicCredentialNotFound):
		hint = " (authentication failed: run 'registry auth basic HOST' or set FALCOCTL_REGISTRY_AUTH_BASIC)"
	case errors.As(err, &er) && er.StatusCode == http.StatusForbidden:
		hint = " (access denied: the credentials lack permission for this repository)"
	case errors.As(err, &er) && er.StatusCode == http.StatusTooManyRequests:
		hint = " (rate limited by the registry: retry later)"
	case errors.As(err, &certErr), errors.As(err, &unknownAuth):
		hint = " (TLS verification failed: set registry.tls caFile for this registry, or FALCOCTL_REGISTRY_TLS=\"host,cafile=/path/ca.pem\")"
	case strings.Contains(err.Error(), "server gave HTTP response to HTTPS client"):
		hint = " (the registry speaks plain HTTP: use --plain-http or FALCOCTL_REGISTRY_TLS=\"host,plainhttp\")"
	}
	return fmt.Errorf("%s %s: %w%s", op, r, err, hint)
}

// Resolve returns the descriptor the reference points at with a single HEAD
// request (body closed), for cheap change detection.
func (c *Client) Resolve(ctx context.Context, r ref.Reference) (ocispec.Descriptor, error) {
	repo, err := c.Repository(r)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	d, err := repo.Resolve(ctx, r.Object())
	if err != nil {
		return ocispec.Descriptor{}, Explain("resolve", r, err)
	}
	return d, nil
}

// Artifact is what Describe learned about a reference: enough to decide
// whether to install it and to fetch its single layer.
type Artifact struct {
	Ref          ref.Reference
	Root         ocispec.Descriptor // what Ref points at (image index for plugins)
	ManifestDesc ocispec.Descriptor
	Manifest     ocispec.Manifest
	ManifestRaw  []byte
	Type         ArtifactType
	Layer        ocispec.Descriptor
	Filename     string // title annotation of the layer
	Config       ArtifactConfig
	ConfigRaw    []byte
}

// CurrentPlatform is the runtime platform in falcoctl's os/arch form.
func CurrentPlatform() string { return runtime.GOOS + "/" + runtime.GOARCH }

func readVerified(rc io.ReadCloser, want digest.Digest, max int64) ([]byte, error) {
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("larger than the %d-byte limit", max)
	}
	if want != "" {
		if err := want.Validate(); err != nil {
			return nil, fmt.Errorf("invalid digest %q: %w", want, err)
		}
		if got := want.Algorithm().FromBytes(b); got != want {
			return nil, fmt.Errorf("%w: registry sent %s, expected %s", ErrDigestMismatch, got, want)
		}
	}
	return b, nil
}

// Describe fetches the root manifest (and, for an image index, the manifest
// matching platform) and the config blob: 2 requests for a rulesfile, 3 for a
// plugin. Every byte is verified against its digest. An empty platform means
// the runtime platform.
func (c *Client) Describe(ctx context.Context, r ref.Reference, platform string) (*Artifact, error) {
	a, err := c.describe(ctx, r, platform)
	if err != nil {
		return nil, Explain("describe", r, err)
	}
	return a, nil
}

func (c *Client) describe(ctx context.Context, r ref.Reference, platform string) (*Artifact, error) {
	repo, err := c.Repository(r)
	if err != nil {
		return nil, err
	}
	root, rc, err := repo.FetchReference(ctx, r.Object())
	if err != nil {
		return nil, err
	}
	want := root.Digest
	if r.Digest != "" {
		want = digest.Digest(r.Digest)
	}
	raw, err := readVerified(rc, want, c.opts.MaxManifestBytes)
	if err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	a := &Artifact{Ref: r, Root: root, ManifestDesc: root}
	if root.MediaType == IndexMediaType {
		md, err := selectPlatform(raw, platform)
		if err != nil {
			return nil, err
		}
		rc, err := repo.Fetch(ctx, md)
		if err != nil {
			return nil, fmt.Errorf("fetch %s manifest: %w", platform, err)
		}
		if raw, err = readVerified(rc, md.Digest, c.opts.MaxManifestBytes); err != nil {
			return nil, fmt.Errorf("manifest %s: %w", md.Digest, err)
		}
		a.ManifestDesc = md
	} else if root.MediaType != ManifestMediaType {
		return nil, fmt.Errorf("unsupported manifest media type %q: expected %s or %s", root.MediaType, ManifestMediaType, IndexMediaType)
	}
	a.ManifestRaw = raw
	if err := json.Unmarshal(raw, &a.Manifest); err != nil {
		return nil, fmt.Errorf("decode manifest: %w", err)
	}
	if len(a.Manifest.Layers) == 0 {
		return nil, errors.New("manifest has no layers: not a Falco artifact")
	}
	// falcoctl only ever looks at the first layer; so do we, but refuse
	// anything whose layer is not one of the Falco media types instead of
	// writing arbitrary blobs into rules directories.
	a.Layer = a.Manifest.Layers[0]
	t, ok := TypeFromLayer(a.Layer.MediaType)
	if !ok {
		return nil, fmt.Errorf("layer media type %q is not a Falco artifact (expected one of %s, %s, %s)", a.Layer.MediaType, RulesfileLayerMediaType, PluginLayerMediaType, AssetLayerMediaType)
	}
	a.Type = t
	a.Filename = a.Layer.Annotations[AnnotationTitle]
	if cd := a.Manifest.Config; cd.Digest != "" && cd.Size > 0 {
		if cd.Size > c.opts.MaxConfigBytes {
			return nil, fmt.Errorf("config blob of %d bytes exceeds the %d-byte limit", cd.Size, c.opts.MaxConfigBytes)
		}
		rc, err := repo.Fetch(ctx, cd)
		if err != nil {
			return nil, fmt.Errorf("fetch config: %w", err)
		}
		if a.ConfigRaw, err = readVerified(rc, cd.Digest, c.opts.MaxConfigBytes); err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
		if err := json.Unmarshal(a.ConfigRaw, &a.Config); err != nil {
			return nil, fmt.Errorf("decode config: %w", err)
		}
	}
	return a, nil
}

func selectPlatform(raw []byte, platform string) (ocispec.Descriptor, error) {
	if platform == "" {
		platform = CurrentPlatform()
	}
	os, arch, _ := strings.Cut(platform, "/")
	var idx ocispec.Index
	if err := json.Unmarshal(raw, &idx); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("decode image index: %w", err)
	}
	var have []string
	for _, m := range idx.Manifests {
		if m.Platform == nil {
			continue
		}
		if m.Platform.OS == os && m.Platform.Architecture == arch {
			return m, nil
		}
		have = append(have, m.Platform.OS+"/"+m.Platform.Architecture)
	}
	return ocispec.Descriptor{}, fmt.Errorf("unable to find a manifest matching the given platform %s (available: %s); use --platform", platform, strings.Join(have, ", "))
}

// ErrLayerTooLarge reports a layer over the configured limit.
var ErrLayerTooLarge = errors.New("layer exceeds the size limit")

// ErrDigestMismatch and ErrSizeMismatch are what a registry (or something between it and us)
// sent when its content is not what the descriptor promised: every pull, install and follower
// check refuses it and keeps what it had. Test with errors.Is.
var (
	ErrDigestMismatch = errors.New("digest mismatch")
	ErrSizeMismatch   = errors.New("size mismatch")
)

// FetchLayer streams the artifact's layer to w, failing if the size or digest
// does not match the manifest or the layer is larger than maxBytes. Callers
// must discard what was written when an error is returned.
func (c *Client) FetchLayer(ctx context.Context, a *Artifact, w io.Writer, maxBytes int64) error {
	if maxBytes > 0 && a.Layer.Size > maxBytes {
		return Explain("fetch layer of", a.Ref, fmt.Errorf("%w: manifest declares %d bytes, limit is %d (raise it with --max-layer-size)", ErrLayerTooLarge, a.Layer.Size, maxBytes))
	}
	if err := a.Layer.Digest.Validate(); err != nil {
		return Explain("fetch layer of", a.Ref, fmt.Errorf("invalid layer digest: %w", err))
	}
	repo, err := c.Repository(a.Ref)
	if err != nil {
		return err
	}
	rc, err := repo.Fetch(ctx, a.Layer)
	if err != nil {
		return Explain("fetch layer of", a.Ref, err)
	}
	defer rc.Close()
	v := a.Layer.Digest.Verifier()
	n, err := io.Copy(io.MultiWriter(w, v), io.LimitReader(rc, a.Layer.Size+1))
	if err != nil {
		return Explain("fetch layer of", a.Ref, err)
	}
	if n != a.Layer.Size {
		return Explain("fetch layer of", a.Ref, fmt.Errorf("%w: got %d bytes, manifest says %d", ErrSizeMismatch, n, a.Layer.Size))
	}
	if !v.Verified() {
		return Explain("fetch layer of", a.Ref, fmt.Errorf("%w: content does not match %s", ErrDigestMismatch, a.Layer.Digest))
	}
	return nil
}

// Tags lists all tags of the repository (paginated by the registry).
func (c *Client) Tags(ctx context.Context, r ref.Reference) ([]string, error) {
	repo, err := c.Repository(r)
	if err != nil {
		return nil, err
	}
	var out []string
	err = repo.Tags(ctx, "", func(t []string) error {
		out = append(out, t...)
		return nil
	})
	if err != nil {
		return nil, Explain("list tags of", stringer(r.Repo()), err)
	}
	sort.Strings(out)
	return out, nil
}

type stringer string

func (s stringer) String() string { return string(s) }

// Ping checks that host speaks the distribution API and, when credentials are
// configured, that they are accepted.
func (c *Client) Ping(ctx context.Context, host string) error {
	ac, err := c.authClient(host)
	if err != nil {
		return err
	}
	reg, err := remote.NewRegistry(host)
	if err != nil {
		return fmt.Errorf("registry %q: %w", host, err)
	}
	reg.Client = ac
	reg.PlainHTTP = c.PlainHTTP(host)
	if err := reg.Ping(ctx); err != nil {
		return Explain("ping", stringer(host), err)
	}
	return nil
}

// PingWithCredential checks cred against host without touching the shared
// token cache, so a failed login attempt cannot poison later requests.
func (c *Client) PingWithCredential(ctx context.Context, host string, cred orasauth.Credential) error {
	hc, err := c.httpClientFor(host, c.opts.TLS[host])
	if err != nil {
		return err
	}
	reg, err := remote.NewRegistry(host)
	if err != nil {
		return fmt.Errorf("registry %q: %w", host, err)
	}
	reg.Client = &orasauth.Client{Client: hc, Cache: orasauth.NewCache(), Credential: orasauth.StaticCredential(host, cred),
		Header: http.Header{"User-Agent": []string{c.opts.UserAgent}}}
	reg.PlainHTTP = c.PlainHTTP(host)
	if err := reg.Ping(ctx); err != nil {
		return Explain("login to", stringer(host), err)
	}
	return nil
}

// pushBlob uploads a blob unless the registry already has it: a HEAD is
// cheaper than re-uploading a plugin on every re-push.
func pushBlob(ctx context.Context, repo *remote.Repository, mediaType string, b []byte) (ocispec.Descriptor, error) {
	d := ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(b), Size: int64(len(b))}
	if ok, err := repo.Exists(ctx, d); err == nil && ok {
		return d, nil
	}
	if err := repo.Push(ctx, d, bytes.NewReader(b)); err != nil && !errors.Is(err, errdef.ErrAlreadyExists) {
		return ocispec.Descriptor{}, err
	}
	return d, nil
}

func pushBlobAsManifest(ctx context.Context, repo *remote.Repository, b []byte, mediaType, tag string) (ocispec.Descriptor, error) {
	d := ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(b), Size: int64(len(b))}
	var err error
	if tag == "" {
		err = repo.Manifests().Push(ctx, d, bytes.NewReader(b))
	} else {
		err = repo.PushReference(ctx, d, bytes.NewReader(b), tag)
	}
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("push manifest: %w", err)
	}
	return d, nil
}
