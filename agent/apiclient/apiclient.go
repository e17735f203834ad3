// Package apiclient is the one client of the agent's HTTP API (agent/status holds the route
// table and the documents): GET /status, /rules and /alerts, POST /sync and /reload. The charm's
// hooks and actions reach the agent's local observability listener with it, and the CLI's
// `alerts review|tune --url` the agent's (TLS, bearer-token guarded) port. Every non-2xx answer
// becomes an error carrying the agent's {"error": ...} message.
package apiclient

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/falco-k8s/falco-k8s/agent/status"
	"github.com/falco-k8s/falco-k8s/alerts"
	"github.com/falco-k8s/falco-k8s/internal/redact"
)

// Client talks to one agent. It is safe for concurrent use.
type Client struct {
	// Base is the agent's URL, e.g. http://127.0.0.1:9766.
	Base string
	HTTP *http.Client
}

// New returns a client for the agent at base; a nil hc is a client with a 60-second timeout.
func New(base string, hc *http.Client) *Client {
	if hc == nil {
		hc = &http.Client{Timeout: 60 * time.Second}
	}
	return &Client{Base: strings.TrimRight(base, "/"), HTTP: hc}
}

// Local returns a client for the agent's observability listener on 127.0.0.1:port (reachable
// from the charm container because both containers share the pod's network).
func Local(port int) *Client {
	return New(fmt.Sprintf("http://127.0.0.1:%d", port), &http.Client{Timeout: 10 * time.Second})
}

// NewHTTPClient is the HTTP client for an agent's TLS port: caFile (PEM) verifies the agent's
// certificate when given, and the bearer token in tokenFile is sent with every request when
// given (the agent guards /alerts with the webhook's credentials on a shared port). The token
// never appears in an error.
func NewHTTPClient(caFile, tokenFile string) (*http.Client, error) {
	var o RemoteOptions
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("--ca-file: %w", err)
		}
		o.CAPEM = pem
	}
	if tokenFile != "" {
		tok, err := os.ReadFile(tokenFile)
		if err != nil {
			return nil, fmt.Errorf("--token-file: %w", err)
		}
		o.Token = strings.TrimSpace(string(tok))
	}
	hc, err := remoteHTTP(o)
	if err != nil && caFile != "" {
		return nil, fmt.Errorf("--ca-file %s: %w", caFile, err)
	}
	return hc, err
}

// RemoteOptions are how a client reaches another agent (a peer unit's peer.listen, or an
// agent's TLS port).
type RemoteOptions struct {
	// Token is sent as `Authorization: Bearer <Token>` when set; it never appears in errors.
	Token string
	// CAPEM verifies the agent's certificate over https (in addition to the system roots when
	// empty: only the system roots).
	CAPEM []byte
	// Timeout bounds each request (default 60s).
	Timeout time.Duration
}

// NewRemote returns a client for a remote agent at base (http(s)://host:port): the peer API of
// another unit (GET /alerts, GET /status with the application's peer token), or an agent's
// guarded port.
func NewRemote(base string, o RemoteOptions) (*Client, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("invalid agent URL %q: want http(s)://host:port", redact.URL(base))
	}
	hc, err := remoteHTTP(o)
	if err != nil {
		return nil, err
	}
	return New(base, hc), nil
}

func remoteHTTP(o RemoteOptions) (*http.Client, error) {
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if len(o.CAPEM) > 0 {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(o.CAPEM) {
			return nil, errors.New("no PEM certificate found in the CA bundle")
		}
		tlsCfg.RootCAs = pool
	}
	var rt http.RoundTripper = &http.Transport{TLSClientConfig: tlsCfg, Proxy: http.ProxyFromEnvironment}
	if o.Token != "" {
		rt = Bearer{Token: o.Token, Next: rt}
	}
	if o.Timeout <= 0 {
		o.Timeout = 60 * time.Second
	}
	return &http.Client{Timeout: o.Timeout, Transport: rt}, nil
}

// Bearer adds Authorization: Bearer Token to every request.
type Bearer struct {
	Token string
	Next  http.RoundTripper
}

// RoundTrip implements http.RoundTripper on a copy of the request.
func (b Bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.Token)
	return b.Next.RoundTrip(r)
}

// maxBody bounds a JSON answer (a /rules list with conditions is the largest).
const maxBody = 32 << 20

// HTTPError is a non-2xx answer: the status and the agent's message.
type HTTPError struct {
	Path    string
	Code    int
	Message string
	// FromAgent is true when Message is the agent's own {"error": ...} (it says what to do);
	// otherwise it is whatever text another server answered, shown with the status.
	FromAgent bool
}

func (e *HTTPError) Error() string {
	if e.FromAgent {
		return fmt.Sprintf("agent %s: %s", e.Path, e.Message)
	}
	return fmt.Sprintf("agent %s: HTTP %d: %s", e.Path, e.Code, e.Message)
}

// errorFrom reads an error answer: the API's {"error": ...} body, or its text when another
// server (a proxy) answered.
func errorFrom(path string, resp *http.Response) *HTTPError {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	var e status.ErrorBody
	if json.Unmarshal(body, &e) == nil && e.Error != "" {
		return &HTTPError{Path: path, Code: resp.StatusCode, Message: e.Error, FromAgent: true}
	}
	return &HTTPError{Path: path, Code: resp.StatusCode, Message: strings.TrimSpace(string(body))}
}

func (c *Client) do(ctx context.Context, method, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, method, c.Base+path, nil)
	if err != nil {
		return fmt.Errorf("agent %s: %w", path, err)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("agent %s: %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return errorFrom(path, resp)
	}
	if v == nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxBody))
		return nil
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return fmt.Errorf("agent %s: %w", path, err)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("agent %s: decode: %w", path, err)
	}
	return nil
}

// Status is GET /status.
func (c *Client) Status(ctx context.Context) (*status.Status, error) {
	var s status.Status
	if err := c.do(ctx, http.MethodGet, status.PathStatus, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// Rules is GET /rules; condition adds each rule's condition.
func (c *Client) Rules(ctx context.Context, condition bool) (*status.Rules, error) {
	var r status.Rules
	if err := c.do(ctx, http.MethodGet, fmt.Sprintf("%s?condition=%t", status.PathRules, condition), &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// Sync is POST /sync[?dry_run=true]: every followed reference checked now.
func (c *Client) Sync(ctx context.Context, dryRun bool) ([]status.SyncResult, error) {
	var out status.SyncResponse
	path := status.PathSync
	if dryRun {
		path += "?dry_run=true"
	}
	if err := c.do(ctx, http.MethodPost, path, &out); err != nil {
		return nil, err
	}
	return out.Results, nil
}

// Reload is POST /reload: the agent rebuilds its rules as on SIGHUP. An ignored candidate
// (422) comes back as an *HTTPError with the reason; the running rules are unchanged then.
func (c *Client) Reload(ctx context.Context) error {
	return c.do(ctx, http.MethodPost, status.PathReload, nil)
}

// Alerts is GET /alerts with f's query: the journal's alerts, oldest first. truncated reports
// that the agent had more matching alerts than the limit.
func (c *Client) Alerts(ctx context.Context, f alerts.Filter) (out []*alerts.Alert, truncated bool, err error) {
	u, err := url.Parse(c.Base + status.PathAlerts)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, false, fmt.Errorf("invalid agent URL %q: want http(s)://host:port", c.Base)
	}
	u.RawQuery = f.Query().Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, false, fmt.Errorf("fetch alerts: %w", err)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return nil, false, fmt.Errorf("fetch alerts from %s: %w", u.Redacted(), err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, false, fmt.Errorf("fetch alerts from %s: %s: %s", u.Redacted(), resp.Status, errorFrom(status.PathAlerts, resp).Message)
	}
	// The agent already filtered; filtering again costs little and protects against an agent
	// that ignores a parameter it does not know.
	out, skipped, err := alerts.ReadJSONL(ctx, resp.Body, f)
	if err != nil {
		return nil, false, fmt.Errorf("fetch alerts from %s: %w", u.Redacted(), err)
	}
	if skipped > 0 {
		return nil, false, fmt.Errorf("fetch alerts from %s: %d lines are not Falco JSON alerts", u.Redacted(), skipped)
	}
	return out, resp.Header.Get(alerts.TruncatedHeader) != "", nil
}
