// Package index handles falcoctl artifact indexes: the index YAML format, the
// local cache (~/.config/falcoctl/indexes.yaml and indexes/<name>.yaml),
// fetching over http(s) and file://, the merged view used to resolve index
// names, and search.
//
// Unlike falcoctl, the merged view includes indexes that exist only in the
// cache or only in the config file, and indexes are fetched lazily: commands
// that only use full references never touch the network for indexes.
package index

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/falco-k8s/falco-k8s/internal/atomicfile"
	"gopkg.in/yaml.v3"
)

// Entry is one artifact of an index. Field names are falcoctl's.
type Entry struct {
	Name        string       `yaml:"name"`
	Type        string       `yaml:"type"`
	Registry    string       `yaml:"registry"`
	Repository  string       `yaml:"repository"`
	Description string       `yaml:"description,omitempty"`
	Home        string       `yaml:"home,omitempty"`
	Keywords    []string     `yaml:"keywords,omitempty"`
	License     string       `yaml:"license,omitempty"`
	Maintainers []Maintainer `yaml:"maintainers,omitempty"`
	Sources     []string     `yaml:"sources,omitempty"`
	Signature   *Signature   `yaml:"signature,omitempty"`
}

// Maintainer of an entry.
type Maintainer struct {
	Email string `yaml:"email,omitempty"`
	Name  string `yaml:"name,omitempty"`
}

// Signature is kept so round-tripped indexes lose nothing.
type Signature struct {
	Cosign *Cosign `yaml:"cosign,omitempty"`
}

// Cosign verification policy of an entry.
type Cosign struct {
	CertificateOIDCIssuer       string `yaml:"certificate-oidc-issuer,omitempty"`
	CertificateOIDCIssuerRegexp string `yaml:"certificate-oidc-issuer-regexp,omitempty"`
	CertificateIdentity         string `yaml:"certificate-identity,omitempty"`
	CertificateIdentityRegexp   string `yaml:"certificate-identity-regexp,omitempty"`
	CertificateGithubWorkflow   string `yaml:"certificate-github-workflow,omitempty"`
	Key                         string `yaml:"key,omitempty"`
	IgnoreTlog                  bool   `yaml:"ignore-tlog,omitempty"`
}

// Index is a named list of entries.
type Index struct {
	Name    string
	Entries []Entry
}

// Parse decodes and validates an index: required fields present, names
// unique. Entries are returned sorted by name (falcoctl's normalised form).
func Parse(b []byte) ([]Entry, error) {
	var entries []Entry
	if err := yaml.Unmarshal(b, &entries); err != nil {
		return nil, fmt.Errorf("index is not a YAML list of artifacts: %w", err)
	}
	seen := map[string]bool{}
	for i, e := range entries {
		var missing []string
		for _, f := range []struct{ n, v string }{{"name", e.Name}, {"type", e.Type}, {"registry", e.Registry}, {"repository", e.Repository}} {
			if strings.TrimSpace(f.v) == "" {
				missing = append(missing, f.n)
			}
		}
		if len(missing) > 0 {
			return nil, fmt.Errorf("index entry %d (%q): missing %s", i+1, e.Name, strings.Join(missing, ", "))
		}
		if strings.ContainsAny(e.Name, "/:@ ") {
			return nil, fmt.Errorf("index entry %d: invalid name %q (no '/', ':', '@' or spaces)", i+1, e.Name)
		}
		if seen[e.Name] {
			return nil, fmt.Errorf("index has a duplicate entry %q", e.Name)
		}
		seen[e.Name] = true
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Name < entries[j].Name })
	return entries, nil
}

// Marshal writes entries in falcoctl's normalised form.
func Marshal(entries []Entry) ([]byte, error) {
	e := append([]Entry(nil), entries...)
	sort.Slice(e, func(i, j int) bool { return e[i].Name < e[j].Name })
	return yaml.Marshal(e)
}

// MaxIndexBytes bounds a fetched index; the real falcosecurity index is ~20 KiB.
const MaxIndexBytes = 16 << 20

// Fetch downloads an index. backend is "", "http", "https" or "file"; empty
// picks from the URL scheme. gs:// and s3:// are not supported.
func Fetch(ctx context.Context, hc *http.Client, rawURL, backend string) ([]Entry, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("index URL %q: %w", rawURL, err)
	}
	if backend == "" {
		backend = u.Scheme
	}
	var b []byte
	switch backend {
	case "http", "https":
		if hc == nil {
			hc = &http.Client{Timeout: 60 * time.Second}
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
		if err != nil {
			return nil, fmt.Errorf("index URL %q: %w", rawURL, err)
		}
		resp, err := hc.Do(req)
		if err != nil {
			return nil, fmt.Errorf("fetch index %s: %w", rawURL, err)
		}
		defer resp.Body.Close()
		if resp.StatusCode >= 400 {
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			return nil, fmt.Errorf("fetch index %s: HTTP %d", rawURL, resp.StatusCode)
		}
		if b, err = io.ReadAll(io.LimitReader(resp.Body, MaxIndexBytes+1)); err != nil {
			return nil, fmt.Errorf("fetch index %s: %w", rawURL, err)
		}
	case "file":
		p := u.Path
		if u.Scheme != "file" {
			p = rawURL
		}
		if b, err = readLimited(p); err != nil {
			return nil, fmt.Errorf("read index %s: %w", rawURL, err)
		}
	case "gs", "s3":
		return nil, fmt.Errorf("index %s: the %s backend is not supported; mirror the index over https or file://", rawURL, backend)
	default:
		return nil, fmt.Errorf("index %s: unknown backend %q (use http, https or file)", rawURL, backend)
	}
	if len(b) > MaxIndexBytes {
		return nil, fmt.Errorf("index %s is larger than %d bytes", rawURL, MaxIndexBytes)
	}
	entries, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("index %s: %w", rawURL, err)
	}
	return entries, nil
}

func readLimited(p string) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, MaxIndexBytes+1))
}

// CacheEntry is an item of indexes.yaml.
type CacheEntry struct {
	AddedTimestamp   string `yaml:"added_timestamp"`
	Name             string `yaml:"name"`
	UpdatedTimestamp string `yaml:"updated_timestamp"`
	URL              string `yaml:"url"`
	Backend          string `yaml:"backend"`
}

// TimeFormat is falcoctl's cache timestamp layout (local time).
const TimeFormat = "2006-01-02 15:04:05"

// Cache is the on-disk index cache rooted at Dir (~/.config/falcoctl).
type Cache struct {
	Dir     string
	Configs []CacheEntry
}

// DefaultCacheDir is ~/.config/falcoctl.
func DefaultCacheDir() string {
	home, err := os.UserHomeDir()
	if err != nil {
		return filepath.Join(os.TempDir(), "falcoctl")
	}
	return filepath.Join(home, ".config", "falcoctl")
}

// OpenCache reads indexes.yaml; a missing file is an empty cache.
func OpenCache(dir string) (*Cache, error) {
	c := &Cache{Dir: dir}
	b, err := os.ReadFile(filepath.Join(dir, "indexes.yaml"))
	if errors.Is(err, os.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read index cache: %w", err)
	}
	var f struct {
		Configs []CacheEntry `yaml:"configs"`
	}
	if err := yaml.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("%s is corrupt (%v); delete it and re-add your indexes", filepath.Join(dir, "indexes.yaml"), err)
	}
	c.Configs = f.Configs
	return c, nil
}

// Get returns the cache entry for name.
func (c *Cache) Get(name string) (CacheEntry, bool) {
	for _, e := range c.Configs {
		if e.Name == name {
			return e, true
		}
	}
	return CacheEntry{}, false
}

// EntriesPath is indexes/<name>.yaml.
func (c *Cache) EntriesPath(name string) string {
	return filepath.Join(c.Dir, "indexes", name+".yaml")
}

// Entries reads a cached index copy.
func (c *Cache) Entries(name string) ([]Entry, error) {
	b, err := os.ReadFile(c.EntriesPath(name))
	if err != nil {
		return nil, err
	}
	return Parse(b)
}

// Put stores entries for name and upserts its indexes.yaml item.
func (c *Cache) Put(name, rawURL, backend string, entries []Entry, now time.Time) error {
	if err := os.MkdirAll(filepath.Join(c.Dir, "indexes"), 0o755); err != nil {
		return fmt.Errorf("create index cache: %w", err)
	}
	b, err := Marshal(entries)
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(c.EntriesPath(name), b, 0o644); err != nil {
		return err
	}
	ts := now.Local().Format(TimeFormat)
	for i := range c.Configs {
		if c.Configs[i].Name == name {
			c.Configs[i].UpdatedTimestamp, c.Configs[i].URL, c.Configs[i].Backend = ts, rawURL, backend
			return c.save()
		}
	}
	c.Configs = append(c.Configs, CacheEntry{AddedTimestamp: ts, Name: name, UpdatedTimestamp: ts, URL: rawURL, Backend: backend})
	return c.save()
}

// Remove drops name from the cache and deletes its copy.
func (c *Cache) Remove(name string) error {
	out := c.Configs[:0]
	found := false
	for _, e := range c.Configs {
		if e.Name == name {
			found = true
			continue
		}
		out = append(out, e)
	}
	c.Configs = out
	if err := os.Remove(c.EntriesPath(name)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if !found {
		return nil
	}
	return c.save()
}

func (c *Cache) save() error {
	if err := os.MkdirAll(c.Dir, 0o755); err != nil {
		return err
	}
	b, err := yaml.Marshal(struct {
		Configs []CacheEntry `yaml:"configs"`
	}{c.Configs})
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(c.Dir, "indexes.yaml"), b, 0o644)
}
