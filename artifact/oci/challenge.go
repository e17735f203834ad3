package oci

// Remembered auth challenges: a token-protected registry answers the first
// request of every process with 401 + "WWW-Authenticate: Bearer realm=..,
// service=..", and only then can the client fetch a token. The challenge is
// the same from one run to the next, so we keep it (realm and service only:
// never tokens, credentials or scopes) in a small per-user file and, on the
// next run, fetch the token before the first registry request. An install
// then costs token + manifest + config + layer = 4 requests instead of 5.
//
// The file is a hint, never an authority:
//   - a realm is only used when it is on the registry's own origin (same
//     host:port) and on https (http only for a registry configured as plain
//     HTTP), so a tampered file cannot make us send credentials to another
//     host or in clear text; a registry whose realm is elsewhere (Docker
//     Hub's auth.docker.io) is simply not pre-authenticated;
//   - any 401 from the registry replaces the entry with what the registry
//     says now, and if a pre-fetch fails or a pre-fetched token is refused
//     the host goes back to oras' normal challenge flow for the rest of the
//     process;
//   - a missing, unreadable, corrupt, oversized or group/world-writable file
//     is treated as empty.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/falco-k8s/falco-k8s/internal/atomicfile"
	"oras.land/oras-go/v2/errdef"
	orasauth "oras.land/oras-go/v2/registry/remote/auth"
)

// DefaultChallengeCacheFile is where the CLI keeps remembered challenges:
// $XDG_CACHE_HOME/falco-k8s/registry-challenges.json (os.UserCacheDir), or
// "" (no cache) when the user has no cache directory.
func DefaultChallengeCacheFile() string {
	d, err := os.UserCacheDir()
	if err != nil || d == "" {
		return ""
	}
	return filepath.Join(d, "falco-k8s", "registry-challenges.json")
}

// challenge is what a registry's Bearer challenge told us. It holds no
// secret: the registry sends it to anyone.
type challenge struct {
	Realm   string `json:"realm"`
	Service string `json:"service,omitempty"`
}

type challengeFile struct {
	Version    int                  `json:"version"`
	Registries map[string]challenge `json:"registries"`
}

const (
	challengeFileVersion = 1
	// A few hundred bytes per registry; anything much larger is not ours.
	maxChallengeFileBytes = 256 << 10
	// Same bound oras uses for token responses (two 16 KiB tokens + JSON).
	maxTokenResponseBytes = 128 << 10
	// oras' client id for OAuth2 refresh-token grants; using the same one
	// keeps pre-fetched and oras-fetched tokens indistinguishable.
	orasClientID = "oras-go"
)

// challengeStore is the file plus an in-memory copy. Writes re-read the file
// first so that concurrent processes lose at most each other's latest entry
// (it is a cache: the next 401 restores it).
type challengeStore struct {
	path string

	mu     sync.Mutex
	loaded bool
	m      map[string]challenge
}

func (s *challengeStore) readFile() map[string]challenge {
	m := map[string]challenge{}
	f, err := os.Open(s.path)
	if err != nil {
		return m
	}
	defer f.Close()
	fi, err := f.Stat()
	// Someone else could have written a group/world-writable file: ignore it
	// rather than trust it (the realm checks would still apply).
	if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm()&0o022 != 0 || fi.Size() > maxChallengeFileBytes {
		return m
	}
	b, err := io.ReadAll(io.LimitReader(f, maxChallengeFileBytes))
	if err != nil {
		return m
	}
	var cf challengeFile
	if json.Unmarshal(b, &cf) != nil || cf.Version != challengeFileVersion {
		return m
	}
	for h, ch := range cf.Registries {
		if h != "" && ch.Realm != "" {
			m[h] = ch
		}
	}
	return m
}

func (s *challengeStore) get(host string) (challenge, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.loaded {
		s.m, s.loaded = s.readFile(), true
	}
	ch, ok := s.m[host]
	return ch, ok
}

// update records ch for host, or forgets host when ch is nil, writing the
// file only when something changed. Write errors are dropped on purpose: a
// read-only or full cache dir must not fail an install, it only costs the
// 401 round trip next time.
func (s *challengeStore) update(host string, ch *challenge) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.loaded {
		s.m, s.loaded = s.readFile(), true
	}
	old, had := s.m[host]
	if (ch == nil && !had) || (ch != nil && had && old == *ch) {
		return
	}
	m := s.readFile()
	if ch == nil {
		delete(m, host)
	} else {
		m[host] = *ch
	}
	s.m = m
	_ = writeJSONFile(s.path, challengeFile{Version: challengeFileVersion, Registries: m})
}

// writeJSONFile writes v as JSON with mode 0600 (directory 0700) atomically
// (internal/atomicfile), so readers see the old or the new file, never a torn one.
func writeJSONFile(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", path, err)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	return atomicfile.WriteFile(path, append(b, '\n'), 0o600)
}

// usableRealm parses realm and accepts it only on the registry's own origin
// and an allowed scheme: https, or http when the registry itself is reached
// over plain HTTP (credentials would travel in clear to it anyway).
func usableRealm(host, realm string, plainHTTP bool) (*url.URL, bool) {
	u, err := url.Parse(realm)
	if err != nil || u.Opaque != "" || u.User != nil || u.Fragment != "" || !strings.EqualFold(u.Host, host) {
		return nil, false
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !plainHTTP {
			return nil, false
		}
	default:
		return nil, false
	}
	return u, true
}

// authCache is the oras auth.Cache of a Client with a challenge file: tokens
// stay in oras' in-memory cache; on a miss for a Bearer scope set it fetches
// the token itself from the remembered realm, so oras' first request already
// carries it.
type authCache struct {
	orasauth.Cache // in memory, per process; tokens are never persisted

	c     *Client
	store *challengeStore
	// distrust holds hosts whose remembered challenge failed in this
	// process (pre-fetch error, or a token refused with 401): they use oras'
	// normal flow until the process ends.
	distrust sync.Map
}

// remembered returns the host's challenge if it may be used now.
func (a *authCache) remembered(host string) (challenge, *url.URL, bool) {
	if _, bad := a.distrust.Load(host); bad {
		return challenge{}, nil, false
	}
	ch, ok := a.store.get(host)
	if !ok {
		return challenge{}, nil, false
	}
	u, ok := usableRealm(host, ch.Realm, a.c.PlainHTTP(host))
	return ch, u, ok
}

// GetScheme reports Bearer for a host with a usable remembered challenge so
// that oras asks GetToken before its first request.
func (a *authCache) GetScheme(ctx context.Context, host string) (orasauth.Scheme, error) {
	if s, err := a.Cache.GetScheme(ctx, host); err == nil {
		return s, nil
	}
	if _, _, ok := a.remembered(host); ok {
		return orasauth.SchemeBearer, nil
	}
	return orasauth.SchemeUnknown, errdef.ErrNotFound
}

// GetToken returns the cached token or, for a Bearer scope set on a host
// with a usable remembered challenge, fetches one. An error makes oras send
// the request unauthenticated and follow the registry's real challenge, so a
// stale entry costs one failed token request, never a failed operation.
func (a *authCache) GetToken(ctx context.Context, host string, scheme orasauth.Scheme, key string) (string, error) {
	tok, err := a.Cache.GetToken(ctx, host, scheme, key)
	// An empty key means no scope hint (the /v2/ ping): that request is how
	// "registry auth" checks credentials, so leave it to the real 401.
	if err == nil || scheme != orasauth.SchemeBearer || key == "" {
		return tok, err
	}
	ch, realm, ok := a.remembered(host)
	if !ok {
		return "", err
	}
	// Set merges concurrent fetches for the same scopes and caches success.
	return a.Cache.Set(ctx, host, orasauth.SchemeBearer, key, func(ctx context.Context) (string, error) {
		tok, err := a.c.fetchToken(ctx, host, realm, ch.Service, strings.Split(key, " "))
		if err != nil {
			a.distrust.Store(host, true)
			return "", fmt.Errorf("pre-fetch token for %s: %w", host, err)
		}
		return tok, nil
	})
}

// observe learns from the registry's own answers (see challengeObserver).
func (a *authCache) observe(host string, req *http.Request, resp *http.Response) {
	if !strings.EqualFold(req.URL.Host, host) || !strings.HasPrefix(req.URL.Path, "/v2/") {
		return
	}
	// Token requests (a realm may live under /v2/, e.g. quay's /v2/auth)
	// carry service/scope or go to the remembered realm path: not registry
	// API answers.
	if q := req.URL.Query(); q.Has("service") || q.Has("scope") {
		return
	}
	if ch, ok := a.store.get(host); ok {
		if u, err := url.Parse(ch.Realm); err == nil && u.Path == req.URL.Path {
			return
		}
	}
	switch {
	case resp.StatusCode == http.StatusUnauthorized:
		if req.Header.Get("Authorization") != "" {
			// A token we (or oras) sent was refused: stop pre-fetching for
			// this host in this process; oras re-authenticates from this
			// 401, whose challenge we record below.
			a.distrust.Store(host, true)
		}
		scheme, params := parseBearerChallenge(resp.Header.Get("Www-Authenticate"))
		if !strings.EqualFold(scheme, "bearer") {
			a.store.update(host, nil) // Basic or unknown: nothing to pre-fetch
			return
		}
		if u, ok := usableRealm(host, params["realm"], a.c.PlainHTTP(host)); ok && u.Path != req.URL.Path {
			a.store.update(host, &challenge{Realm: params["realm"], Service: params["service"]})
		} else {
			a.store.update(host, nil) // realm elsewhere: never pre-authenticate
		}
	case resp.StatusCode >= 200 && resp.StatusCode < 300 && req.Header.Get("Authorization") == "":
		// The registry answered without credentials: it no longer needs
		// tokens, so stop fetching them.
		a.store.update(host, nil)
	}
}

// challengeObserver is the transport hook that feeds authCache.observe.
type challengeObserver struct {
	next  http.RoundTripper
	host  string
	cache *authCache
}

func (o *challengeObserver) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := o.next.RoundTrip(req)
	if err == nil {
		o.cache.observe(o.host, req, resp)
	}
	return resp, err
}

// fetchToken gets a bearer token from realm for scopes, choosing the grant
// exactly as oras' auth.Client does for our credential kinds (we never set
// ForceAttemptOAuth2 or ClientID): an access token is used as is, a refresh
// token (docker "identitytoken") goes through an OAuth2 refresh-token POST,
// anything else (user/password or anonymous) through the distribution token
// GET. It uses the registry's own HTTP client, and thus its TLS settings.
func (c *Client) fetchToken(ctx context.Context, host string, realm *url.URL, service string, scopes []string) (string, error) {
	c.mu.Lock()
	ac := c.clients[host]
	c.mu.Unlock()
	if ac == nil {
		return "", errors.New("no client for registry")
	}
	cred, err := ac.Credential(ctx, host)
	if err != nil {
		return "", fmt.Errorf("resolve credential: %w", err)
	}
	if cred.AccessToken != "" {
		return cred.AccessToken, nil
	}
	var req *http.Request
	if cred.RefreshToken != "" {
		form := url.Values{}
		form.Set("grant_type", "refresh_token")
		form.Set("refresh_token", cred.RefreshToken)
		form.Set("service", service)
		form.Set("client_id", orasClientID)
		if len(scopes) != 0 {
			form.Set("scope", strings.Join(scopes, " "))
		}
		req, err = http.NewRequestWithContext(ctx, http.MethodPost, realm.String(), strings.NewReader(form.Encode()))
		if err != nil {
			return "", fmt.Errorf("token request: %w", err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	} else {
		u := *realm
		q := u.Query()
		if service != "" {
			q.Set("service", service)
		}
		for _, s := range scopes {
			q.Add("scope", s)
		}
		u.RawQuery = q.Encode()
		req, err = http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
		if err != nil {
			return "", fmt.Errorf("token request: %w", err)
		}
		if cred.Username != "" || cred.Password != "" {
			req.SetBasicAuth(cred.Username, cred.Password)
		}
	}
	for k, v := range ac.Header {
		req.Header[k] = append(req.Header[k], v...)
	}
	resp, err := ac.Client.Do(req)
	if err != nil {
		return "", fmt.Errorf("token request: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		// The body is not quoted: token endpoints may echo the request.
		return "", fmt.Errorf("token endpoint answered HTTP %d", resp.StatusCode)
	}
	var out struct {
		Token       string `json:"token"`
		AccessToken string `json:"access_token"`
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxTokenResponseBytes))
	if err != nil {
		return "", fmt.Errorf("read token response: %w", err)
	}
	if err := json.NewDecoder(bytes.NewReader(b)).Decode(&out); err != nil {
		return "", errors.New("token endpoint sent malformed JSON")
	}
	// Distribution allows either field (identical when both are present).
	if out.AccessToken != "" {
		return out.AccessToken, nil
	}
	if out.Token != "" {
		return out.Token, nil
	}
	return "", errors.New("token endpoint sent an empty token")
}

// parseBearerChallenge splits "Scheme k=v, k="v"" (RFC 7235 auth-params, as
// oras parses them) into the scheme and its parameters.
func parseBearerChallenge(h string) (string, map[string]string) {
	scheme, rest := splitToken(h)
	params := map[string]string{}
	for {
		rest = strings.TrimLeft(rest, " \t")
		var key string
		key, rest = splitToken(rest)
		if key == "" {
			return scheme, params
		}
		rest = strings.TrimLeft(rest, " \t")
		if rest == "" || rest[0] != '=' {
			return scheme, params
		}
		rest = strings.TrimLeft(rest[1:], " \t")
		var val string
		if strings.HasPrefix(rest, `"`) {
			var b strings.Builder
			i := 1
			for ; i < len(rest) && rest[i] != '"'; i++ {
				if rest[i] == '\\' && i+1 < len(rest) {
					i++
				}
				b.WriteByte(rest[i])
			}
			if i >= len(rest) {
				return scheme, params // unterminated quoted-string
			}
			val, rest = b.String(), rest[i+1:]
		} else if val, rest = splitToken(rest); val == "" {
			return scheme, params
		}
		params[strings.ToLower(key)] = val
		rest = strings.TrimLeft(rest, " \t")
		if rest == "" || rest[0] != ',' {
			return scheme, params
		}
		rest = rest[1:]
	}
}

// splitToken cuts the leading RFC 7230 token off s.
func splitToken(s string) (string, string) {
	i := strings.IndexFunc(s, func(r rune) bool {
		return (r < 'A' || r > 'Z') && (r < 'a' || r > 'z') && (r < '0' || r > '9') && !strings.ContainsRune("!#$%&'*+-.^_`|~", r)
	})
	if i < 0 {
		return s, ""
	}
	return s[:i], s[i:]
}
