// Package testregistry runs the reference OCI registry
// (github.com/distribution/distribution/v3) in-process for tests and
// benchmarks: in-memory storage, deletes enabled, optional htpasswd (bcrypt)
// or bearer-token auth, optional TLS, a request counter, and failure
// injection (Fail/Recover) for outage and rate-limit tests. It lives under
// the module's internal/ so that both the artifact and the agent tests can
// use it.
package testregistry

import (
	"bytes"
	"context"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/distribution/distribution/v3/configuration"
	_ "github.com/distribution/distribution/v3/registry/auth/htpasswd" // auth: htpasswd
	"github.com/distribution/distribution/v3/registry/handlers"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/inmemory"
	"github.com/sirupsen/logrus"
	"golang.org/x/crypto/bcrypt"
)

// Options select the registry's security.
type Options struct {
	User, Password string // htpasswd basic auth when set (without Token)
	// Token serves bearer tokens from <url>/token: anonymously, or, when
	// User is set, only to requests carrying User/Password as basic
	// credentials (the ghcr.io shape: the registry never sees passwords).
	Token bool
	TLS   bool
}

// Registry is a running test registry.
type Registry struct {
	URL    string // http(s)://127.0.0.1:port
	Host   string // 127.0.0.1:port
	CAFile string // PEM of the server certificate when TLS
	reqs   atomic.Int64
	mu     sync.Mutex
	log    []string
	fail   *failure // guarded by mu
	realm  string   // token endpoint path, guarded by mu
}

// failure is an injected outage.
type failure struct {
	status     int // 0: drop the connection without answering
	retryAfter string
}

var silence sync.Once

// New starts a registry that stops at test cleanup.
func New(tb testing.TB, o Options) *Registry {
	tb.Helper()
	silence.Do(func() { logrus.SetOutput(io.Discard); logrus.SetLevel(logrus.PanicLevel) })
	dir := tb.TempDir()
	cfg := &configuration.Configuration{}
	cfg.Storage = configuration.Storage{"inmemory": configuration.Parameters{}, "delete": configuration.Parameters{"enabled": true}}
	cfg.Log.Level = "panic"
	cfg.Log.AccessLog.Disabled = true
	if o.User != "" && !o.Token {
		hash, err := bcrypt.GenerateFromPassword([]byte(o.Password), bcrypt.MinCost)
		if err != nil {
			tb.Fatal(err)
		}
		p := filepath.Join(dir, "htpasswd")
		if err := os.WriteFile(p, []byte(o.User+":"+string(hash)+"\n"), 0o600); err != nil {
			tb.Fatal(err)
		}
		cfg.Auth = configuration.Auth{"htpasswd": configuration.Parameters{"realm": "test", "path": p}}
	}
	app := handlers.NewApp(context.Background(), cfg)
	r := &Registry{realm: "/token"}
	var h http.Handler = app
	if o.Token {
		h = r.tokenAuth(app, o.User, o.Password)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.reqs.Add(1)
		r.mu.Lock()
		r.log = append(r.log, req.Method+" "+req.URL.Path)
		f := r.fail
		r.mu.Unlock()
		if f != nil {
			r.failRequest(w, f)
			return
		}
		h.ServeHTTP(w, req)
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	if o.TLS {
		srv.StartTLS()
		p := filepath.Join(dir, "ca.pem")
		b := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
		if err := os.WriteFile(p, b, 0o644); err != nil {
			tb.Fatal(err)
		}
		r.CAFile = p
	} else {
		srv.Start()
	}
	tb.Cleanup(srv.Close)
	r.URL = srv.URL
	r.Host = strings.TrimPrefix(strings.TrimPrefix(srv.URL, "https://"), "http://")
	return r
}

const token = "test-token"

// tokenAuth mimics a token-protected registry (ghcr.io style): 401 with a
// Bearer challenge, a token endpoint on the same host (at the path SetRealm
// chose), then the token. With user set, the token endpoint wants basic
// credentials and answers 401 otherwise.
func (r *Registry) tokenAuth(next http.Handler, user, password string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		realm := r.realm
		r.mu.Unlock()
		if req.URL.Path == realm {
			if u, p, ok := req.BasicAuth(); user != "" && (!ok || u != user || p != password) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusUnauthorized)
				fmt.Fprint(w, `{"errors":[{"code":"UNAUTHORIZED","message":"bad credentials"}]}`)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"token":%q}`, token)
			return
		}
		if req.Header.Get("Authorization") != "Bearer "+token {
			scheme := "http"
			if req.TLS != nil {
				scheme = "https"
			}
			w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="%s://%s%s",service="test"`, scheme, req.Host, realm))
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, req)
	})
}

// Token is the bearer token the token endpoint issues (tests check it never
// lands on disk).
const Token = token

// SetRealm moves the token endpoint to path (the old one then fails, as
// after a registry reconfiguration) and advertises it in new challenges.
func (r *Registry) SetRealm(path string) {
	r.mu.Lock()
	r.realm = path
	r.mu.Unlock()
}

// Requests returns the number of requests served so far.
func (r *Registry) Requests() int64 { return r.reqs.Load() }

// Reset zeroes the counter and the log.
func (r *Registry) Reset() {
	r.reqs.Store(0)
	r.mu.Lock()
	r.log = nil
	r.mu.Unlock()
}

// Log returns "METHOD path" for every request since the last Reset.
func (r *Registry) Log() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.log...)
}

// Fail makes every request fail until Recover: with status (and a
// Retry-After header when retryAfter is not empty), or, with status 0, by
// closing the connection without an answer, as a registry that is down.
func (r *Registry) Fail(status int, retryAfter string) {
	r.mu.Lock()
	r.fail = &failure{status: status, retryAfter: retryAfter}
	r.mu.Unlock()
}

// Recover ends an outage started by Fail.
func (r *Registry) Recover() {
	r.mu.Lock()
	r.fail = nil
	r.mu.Unlock()
}

func (r *Registry) failRequest(w http.ResponseWriter, f *failure) {
	if f.status == 0 {
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				conn.Close()
				return
			}
		}
		f = &failure{status: http.StatusBadGateway}
	}
	if f.retryAfter != "" {
		w.Header().Set("Retry-After", f.retryAfter)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(f.status)
	fmt.Fprintf(w, `{"errors":[{"code":"UNAVAILABLE","message":"injected failure %d"}]}`, f.status)
}

// Tamper is a client-side RoundTripper that damages content in transit: it flips one byte of
// every GET response (manifest or blob) whose URL path contains Target, so that a client sees
// a digest mismatch. An empty Target tampers with nothing; set it before the requests.
type Tamper struct {
	Next   http.RoundTripper
	Target string
}

// RoundTrip implements http.RoundTripper.
func (t *Tamper) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.Next.RoundTrip(req)
	if err != nil || req.Method != http.MethodGet || t.Target == "" || !strings.Contains(req.URL.Path, t.Target) {
		return resp, err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	if len(b) > 20 {
		b[len(b)-12] ^= 0xff
	}
	resp.Body = io.NopCloser(bytes.NewReader(b))
	return resp, nil
}
