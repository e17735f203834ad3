package follower

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/falco-k8s/falco-k8s/artifact/auth"
	"github.com/falco-k8s/falco-k8s/artifact/oci"
)

// AuthEnv is falcoctl's basic-credentials variable, honoured as well as follow.registry_auth_file.
const AuthEnv = "FALCOCTL_REGISTRY_AUTH_BASIC"

// ReadAuthFile reads a follow.registry_auth_file: FALCOCTL_REGISTRY_AUTH_BASIC's format
// ("registry,user,password;...", or its JSON list form). The file holds passwords, so one that
// group or others may read or write is refused rather than used. Errors never quote the
// content.
func ReadAuthFile(path string) ([]auth.Basic, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("follow.registry_auth_file: %w", err)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("follow.registry_auth_file %s is accessible to group or others (mode %04o); it holds registry passwords: chmod 600 it", path, perm)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("follow.registry_auth_file: %w", err)
	}
	entries, err := auth.ParseBasicEnv(strings.TrimSpace(string(b)))
	if err != nil {
		return nil, fmt.Errorf("follow.registry_auth_file %s (format of %s): %w", path, AuthEnv, err)
	}
	return entries, nil
}

// retryAfter remembers the latest Retry-After a registry sent with 429 or 503. oras turns
// responses into errors without their headers, so the transport records them on the way. They
// are keyed by the reference's registry name carried in the request's context, not by the URL
// host: docker.io is served from registry-1.docker.io and its tokens from auth.docker.io, and a
// 429 from either must delay the next check of that reference.
type retryAfter struct {
	mu sync.Mutex
	by map[string]time.Time // host -> time before which it asked not to be called
}

func (ra *retryAfter) wrap(next http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(req *http.Request) (*http.Response, error) {
		resp, err := next.RoundTrip(req)
		if err == nil && (resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable) {
			if d, ok := parseRetryAfter(resp.Header.Get("Retry-After"), time.Now()); ok {
				ra.mu.Lock()
				key := req.URL.Host
				if k, ok := req.Context().Value(retryKey{}).(string); ok {
					key = k
				}
				ra.by[key] = time.Now().Add(d)
				ra.mu.Unlock()
			}
		}
		return resp, err
	})
}

// take returns and forgets how long host asked to be left alone.
func (ra *retryAfter) take(host string) time.Duration {
	ra.mu.Lock()
	defer ra.mu.Unlock()
	until, ok := ra.by[host]
	delete(ra.by, host)
	if !ok {
		return 0
	}
	return max(0, time.Until(until))
}

// retryKey is the context key naming the registry a request is made for.
type retryKey struct{}

func withRetryKey(ctx context.Context, registry string) context.Context {
	return context.WithValue(ctx, retryKey{}, registry)
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// maxRetryAfter caps what a registry can ask for, so a bogus header cannot stop following.
const maxRetryAfter = 24 * time.Hour

// parseRetryAfter reads delay-seconds or an HTTP date (RFC 9110 section 10.2.3).
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if n, err := strconv.Atoi(v); err == nil && n >= 0 {
		// Cap before multiplying: a huge n would overflow into a negative duration.
		return min(time.Duration(min(n, int(maxRetryAfter/time.Second)))*time.Second, maxRetryAfter), true
	}
	if t, err := http.ParseTime(v); err == nil {
		return min(max(0, t.Sub(now)), maxRetryAfter), true
	}
	return 0, false
}

// registryError is a registry failure explained for people: what failed, on which registry,
// and what to do. It never includes credentials (oras errors carry only method and URL).
type registryError struct {
	host      string
	msg       string
	kind      oci.Kind
	transient bool // worth retrying soon: 429, 5xx, network; logged at warn
	err       error
}

func (e *registryError) Error() string { return e.msg }
func (e *registryError) Unwrap() error { return e.err }

// explainRegistry explains err from talking to host about what, by its oci.Classify kind: the
// classification the CLI's hints use too.
func explainRegistry(host, what string, hasCred bool, err error) error {
	var re *registryError
	if errors.As(err, &re) {
		return err
	}
	k := oci.Classify(err)
	e := &registryError{host: host, kind: k, transient: k.Transient(), err: err}
	switch k {
	case oci.KindAuth:
		if hasCred {
			e.msg = fmt.Sprintf("registry %s refused the credentials (401): check the user and password for %s in follow.registry_auth_file or %s", host, host, AuthEnv)
		} else {
			e.msg = fmt.Sprintf("registry %s requires authentication (401): add credentials for %s to follow.registry_auth_file or %s", host, host, AuthEnv)
		}
	case oci.KindDenied:
		e.msg = fmt.Sprintf("registry %s denied access to %s (403): the credentials lack pull permission on this repository", host, what)
	case oci.KindNotFound:
		e.msg = fmt.Sprintf("%s not found on registry %s (404): check the repository and tag in follow.refs", what, host)
	case oci.KindRateLimited:
		e.msg = fmt.Sprintf("registry %s is rate limiting requests (429)", host)
	case oci.KindUnavailable:
		code := oci.StatusCode(err)
		e.msg = fmt.Sprintf("registry %s answered %d %s", host, code, http.StatusText(code))
	case oci.KindTLS:
		e.msg = fmt.Sprintf("registry %s: TLS certificate verification failed: add its CA bundle to follow.registry_ca (%s: /path/ca.pem)", host, host)
	case oci.KindPlainHTTP:
		e.msg = fmt.Sprintf("registry %s speaks plain HTTP: add it to follow.plain_http", host)
	case oci.KindBadContent:
		e.msg = fmt.Sprintf("bad content from %s: %s: %v", host, what, rootCause(err))
	case oci.KindConnection:
		e.msg = fmt.Sprintf("registry %s is unreachable: %v", host, rootCause(err))
	default:
		e.msg = fmt.Sprintf("registry %s: %s: %v", host, what, err)
	}
	return e
}

// rootCause drops the oras/url wrapping layers ("Head \"https://...\": dial tcp ...") down to
// the innermost error that still says something: a ContentError's own message is kept whole.
func rootCause(err error) error {
	for {
		if _, ok := err.(*oci.ContentError); ok { //nolint:errorlint // this layer, not the chain
			return err
		}
		u := errors.Unwrap(err)
		if u == nil {
			return err
		}
		err = u
	}
}

// RegistryOptions are the follower's registry settings (follow.* keys).
type RegistryOptions struct {
	// Basic credentials; the first entry for a registry wins.
	Basic []auth.Basic
	// PlainHTTP lists hosts reached over plain HTTP; CA maps hosts to CA bundle files.
	PlainHTTP []string
	CA        map[string]string
	// WrapTransport, when set, wraps the transport (tests count or corrupt requests with it).
	WrapTransport func(http.RoundTripper) http.RoundTripper
}

// newClient builds the shared registry client: one transport per host setting and one token
// cache, reused by every check so that token-protected registries see one token request, not
// one per check.
func newClient(ctx context.Context, o RegistryOptions, ra *retryAfter) (*oci.Client, *auth.Resolver, error) {
	res, err := auth.NewResolver(ctx, auth.Sources{Basic: o.Basic, DisableDockerCfg: true})
	if err != nil {
		return nil, nil, err
	}
	tlsOpts := map[string]oci.TLSOptions{}
	for _, h := range o.PlainHTTP {
		t := tlsOpts[h]
		t.PlainHTTP = true
		tlsOpts[h] = t
	}
	for h, ca := range o.CA {
		t := tlsOpts[h]
		t.CAFile = ca
		tlsOpts[h] = t
	}
	c, err := oci.NewClient(oci.Options{
		TLS:        tlsOpts,
		Credential: res.Credential,
		WrapTransport: func(rt http.RoundTripper) http.RoundTripper {
			if o.WrapTransport != nil {
				rt = o.WrapTransport(rt)
			}
			return ra.wrap(rt)
		},
	})
	if err != nil {
		return nil, nil, fmt.Errorf("follower registry client: %w", err)
	}
	return c, res, nil
}
