// Package auth resolves registry credentials the way falcoctl users expect:
// FALCOCTL_REGISTRY_AUTH_BASIC and registry.auth.basic entries, the docker
// config.json credential store (read only: unlike falcoctl we never write
// plaintext passwords as a side effect), and OAuth2 client credentials
// (registry.auth.oauth, FALCOCTL_REGISTRY_AUTH_OAUTH and
// ~/.config/falcoctl/clientcredentials.json).
//
// Errors never contain passwords or secrets: parse errors name the entry by
// position and field count only.
package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
	orasauth "oras.land/oras-go/v2/registry/remote/auth"
	"oras.land/oras-go/v2/registry/remote/credentials"

	"github.com/falco-k8s/falco-k8s/artifact/ref"
	"github.com/falco-k8s/falco-k8s/internal/atomicfile"
)

// Basic is a registry user/password pair.
type Basic struct {
	Registry string `yaml:"registry" json:"registry"`
	User     string `yaml:"user" json:"user"`
	Password string `yaml:"password" json:"password"`
}

// OAuth is an OAuth2 client-credentials configuration for a registry.
type OAuth struct {
	Registry     string   `yaml:"registry" json:"registry"`
	ClientID     string   `yaml:"clientid" json:"clientID"`
	ClientSecret string   `yaml:"clientsecret" json:"clientSecret"`
	TokenURL     string   `yaml:"tokenurl" json:"tokenURL"`
	Scopes       []string `yaml:"scopes" json:"scopes,omitempty"`
}

const jsonHint = `; values containing ',' or ';' can use the JSON form, e.g. [{"registry":"ghcr.io","user":"u","password":"p"}]`

// splitItems applies falcoctl's outer grammar: one or more non-empty items
// separated by ';', no trailing separator.
func splitItems(env, s string) ([]string, error) {
	if s == "" {
		return nil, nil
	}
	items := strings.Split(s, ";")
	for i, it := range items {
		if it == "" {
			if i == len(items)-1 {
				return nil, fmt.Errorf("%s: trailing ';' is not allowed", env)
			}
			return nil, fmt.Errorf("%s: entry %d is empty (two ';' in a row)", env, i+1)
		}
	}
	return items, nil
}

// ParseBasicEnv parses FALCOCTL_REGISTRY_AUTH_BASIC: "registry,user,password"
// entries separated by ';', exactly three non-empty fields each, no escaping,
// no trimming (falcoctl's format). A value starting with "[{" is read as a
// JSON list of {registry,user,password}, which allows any character. A path
// after the registry ("ghcr.io/org") is dropped as in falcoctl.
func ParseBasicEnv(s string) ([]Basic, error) {
	const env = "FALCOCTL_REGISTRY_AUTH_BASIC"
	if strings.HasPrefix(s, "[{") {
		var out []Basic
		if err := json.Unmarshal([]byte(s), &out); err != nil {
			return nil, fmt.Errorf("%s: invalid JSON list (expected [{\"registry\",\"user\",\"password\"}]): %s", env, jsonErr(err))
		}
		for i := range out {
			// The host is checked, not the raw value: "/org" has an empty host.
			out[i].Registry = ref.Host(out[i].Registry)
			if out[i].Registry == "" || out[i].User == "" || out[i].Password == "" {
				return nil, fmt.Errorf("%s: JSON entry %d needs non-empty registry, user and password", env, i+1)
			}
		}
		return out, nil
	}
	items, err := splitItems(env, s)
	if err != nil {
		return nil, err
	}
	out := make([]Basic, 0, len(items))
	for i, it := range items {
		f := strings.Split(it, ",")
		if len(f) != 3 {
			return nil, fmt.Errorf("%s: entry %d has %d comma-separated fields, expected exactly 3 (registry,user,password)%s", env, i+1, len(f), jsonHint)
		}
		f[0] = ref.Host(f[0]) // "/org" has an empty host
		for j, name := range []string{"registry", "user", "password"} {
			if f[j] == "" {
				return nil, fmt.Errorf("%s: entry %d has an empty %s", env, i+1, name)
			}
		}
		out = append(out, Basic{Registry: f[0], User: f[1], Password: f[2]})
	}
	return out, nil
}

// jsonErr keeps only the error class: json syntax errors can quote input.
func jsonErr(err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("syntax error at byte %d", se.Offset)
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Sprintf("wrong type for field %q", te.Field)
	}
	return "malformed JSON"
}

// ParseOAuthEnv parses FALCOCTL_REGISTRY_AUTH_OAUTH:
// "registry,clientID,clientSecret,tokenURL;..." with exactly 4 fields.
func ParseOAuthEnv(s string) ([]OAuth, error) {
	const env = "FALCOCTL_REGISTRY_AUTH_OAUTH"
	items, err := splitItems(env, s)
	if err != nil {
		return nil, err
	}
	var out []OAuth
	for i, it := range items {
		f := strings.Split(it, ",")
		if len(f) != 4 {
			return nil, fmt.Errorf("%s: entry %d has %d comma-separated fields, expected exactly 4 (registry,clientID,clientSecret,tokenURL)", env, i+1, len(f))
		}
		f[0] = ref.Host(f[0]) // "/org" has an empty host
		for j, name := range []string{"registry", "clientID", "clientSecret", "tokenURL"} {
			if f[j] == "" {
				return nil, fmt.Errorf("%s: entry %d has an empty %s", env, i+1, name)
			}
		}
		out = append(out, OAuth{Registry: f[0], ClientID: f[1], ClientSecret: f[2], TokenURL: f[3]})
	}
	return out, nil
}

// ClientCredentialsPath is falcoctl's OAuth credentials file.
func ClientCredentialsPath() string {
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".config", "falcoctl", "clientcredentials.json")
}

// ReadClientCredentials reads the registry -> clientcredentials.Config map
// (Go field names as JSON keys, as falcoctl writes it). A missing file is an
// empty map.
func ReadClientCredentials(path string) (map[string]clientcredentials.Config, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return map[string]clientcredentials.Config{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	m := map[string]clientcredentials.Config{}
	if len(strings.TrimSpace(string(b))) == 0 {
		return m, nil
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%s is not a valid client credentials file (%s); fix or delete it", path, jsonErr(err))
	}
	return m, nil
}

// WriteClientCredentials upserts one registry's config, with mode 0600 and
// the directory 0700.
func WriteClientCredentials(path, registry string, cfg clientcredentials.Config) error {
	m, err := ReadClientCredentials(path)
	if err != nil {
		return err
	}
	m[registry] = cfg
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return atomicfile.WriteFile(path, b, 0o600)
}

// DefaultDockerConfig is $DOCKER_CONFIG/config.json or ~/.docker/config.json.
func DefaultDockerConfig() string {
	if d := os.Getenv("DOCKER_CONFIG"); d != "" {
		return filepath.Join(d, "config.json")
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".docker", "config.json")
}

// Sources are the credential inputs, highest priority first within each
// kind: basic entries (env before config), docker store, OAuth.
type Sources struct {
	Basic            []Basic
	OAuth            []OAuth
	DockerConfig     string // path; empty disables
	ClientCredsFile  string // path; empty disables
	DisableDockerCfg bool
}

// Resolver is a concurrency-safe credential function with one token source
// per OAuth registry (the oauth2 library caches and refreshes the token).
type Resolver struct {
	basic map[string]Basic
	oauth map[string]oauth2.TokenSource
	store credentials.Store

	mu sync.Mutex
}

// NewResolver validates the sources. It does not contact any server.
func NewResolver(ctx context.Context, s Sources) (*Resolver, error) {
	r := &Resolver{basic: map[string]Basic{}, oauth: map[string]oauth2.TokenSource{}}
	// First entry for a registry wins, so env (listed first) beats config.
	for _, b := range s.Basic {
		h := ref.Host(b.Registry)
		if _, dup := r.basic[h]; !dup {
			r.basic[h] = b
		}
	}
	add := func(reg string, cfg clientcredentials.Config) {
		h := ref.Host(reg)
		if _, dup := r.oauth[h]; !dup {
			r.oauth[h] = cfg.TokenSource(context.WithoutCancel(ctx))
		}
	}
	for _, o := range s.OAuth {
		add(o.Registry, clientcredentials.Config{ClientID: o.ClientID, ClientSecret: o.ClientSecret, TokenURL: o.TokenURL, Scopes: o.Scopes})
	}
	if s.ClientCredsFile != "" {
		m, err := ReadClientCredentials(s.ClientCredsFile)
		if err != nil {
			return nil, err
		}
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			add(k, m[k])
		}
	}
	if s.DockerConfig != "" && !s.DisableDockerCfg {
		st, err := credentials.NewStore(s.DockerConfig, credentials.StoreOptions{})
		if err != nil {
			return nil, fmt.Errorf("docker credential store %s: %w", s.DockerConfig, err)
		}
		r.store = st
	}
	return r, nil
}

// Credential implements oras' auth.CredentialFunc.
func (r *Resolver) Credential(ctx context.Context, host string) (orasauth.Credential, error) {
	if b, ok := r.basic[host]; ok {
		return orasauth.Credential{Username: b.User, Password: b.Password}, nil
	}
	if r.store != nil {
		c, err := r.store.Get(ctx, host)
		if err != nil {
			return orasauth.EmptyCredential, fmt.Errorf("docker credential store for %s: %w", host, err)
		}
		if c != orasauth.EmptyCredential {
			return c, nil
		}
	}
	if ts, ok := r.oauth[host]; ok {
		r.mu.Lock()
		tok, err := ts.Token()
		r.mu.Unlock()
		if err != nil {
			return orasauth.EmptyCredential, fmt.Errorf("oauth2 token for %s: %s", host, redactOAuth(err))
		}
		return orasauth.Credential{AccessToken: tok.AccessToken}, nil
	}
	return orasauth.EmptyCredential, nil
}

// redactOAuth keeps the OAuth error code but drops response bodies, which
// some servers fill with request echoes.
func redactOAuth(err error) string {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		if re.ErrorCode != "" {
			return fmt.Sprintf("token endpoint refused the client credentials (%s)", re.ErrorCode)
		}
		if re.Response != nil {
			return fmt.Sprintf("token endpoint answered HTTP %d", re.Response.StatusCode)
		}
	}
	return err.Error()
}

// HasCredential reports whether any source knows host; used to skip the
// unauthenticated ping probe.
func (r *Resolver) HasCredential(host string) bool {
	_, b := r.basic[host]
	_, o := r.oauth[host]
	return b || o
}

// TestOAuth fetches one token to validate client credentials.
func TestOAuth(ctx context.Context, cfg clientcredentials.Config) error {
	if _, err := cfg.Token(ctx); err != nil {
		return errors.New(redactOAuth(err))
	}
	return nil
}
