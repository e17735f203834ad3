package agent

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"os"
	"sync"

	"github.com/rs/zerolog"

	"github.com/falco-k8s/falco-k8s/agent/status"
	"github.com/falco-k8s/falco-k8s/agent/webhook"
)

// The peer listener (peer.listen) serves the other units of the application: GET /alerts and
// GET /status, the local API's own handlers, and nothing else, each request with the bearer
// token of peer.token_file. The application-wide review (`alerts review --peer`, the charm's
// review-alerts action) reads every unit's journal through it.

// peerAuth holds the peer token. It is read at start (a missing, empty or group/other-readable
// file refuses to start), on SIGHUP, and whenever the file changes (checked on each request: a
// stat, as rare as peer requests), so a rotated Juju secret applies without a restart.
type peerAuth struct {
	path string
	log  zerolog.Logger

	mu    sync.Mutex
	token []byte
	fi    os.FileInfo // the file the token was read from
}

// load reads the token file; on error the previous token (if any) stays in use. Errors name
// the file, never its content.
func (p *peerAuth) load() error {
	fi, err := os.Stat(p.path)
	if err != nil {
		return fmt.Errorf("peer.token_file: %w", err)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("peer.token_file %s is accessible to group or others (mode %04o); it holds the peer API's bearer token: chmod 600 it", p.path, perm)
	}
	b, err := os.ReadFile(p.path)
	if err != nil {
		return fmt.Errorf("peer.token_file: %w", err)
	}
	tok := bytes.TrimSpace(b)
	if len(tok) == 0 {
		// An empty token would let anyone in.
		return fmt.Errorf("peer.token_file %s is empty", p.path)
	}
	p.mu.Lock()
	p.token, p.fi = tok, fi
	p.mu.Unlock()
	return nil
}

// current is the token to check against, re-read first when the file changed.
func (p *peerAuth) current() []byte {
	p.mu.Lock()
	prev := p.fi
	p.mu.Unlock()
	if fi, err := os.Stat(p.path); err == nil && (prev == nil || !os.SameFile(fi, prev) || fi.ModTime() != prev.ModTime() || fi.Size() != prev.Size()) {
		if err := p.load(); err != nil {
			p.log.Warn().Err(err).Msg("peer token file changed but cannot be used; keeping the previous token")
		} else {
			p.log.Info().Str("file", p.path).Msg("peer token re-read")
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.token
}

// guard answers 401 ({"error": ...}) unless the request carries the peer token.
func (p *peerAuth) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if why := webhook.CheckBearer(r, p.current()); why != "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="falco-k8s-peer"`)
			status.WriteError(w, http.StatusUnauthorized, why+": send the application's peer token (peer.token_file)")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// peerHandler serves the peer listener: authentication first, so nothing (not even which
// paths exist) is revealed without the token; then GET /alerts and GET /status, 404 elsewhere.
func (a *Agent) peerHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+status.PathStatus, a.serveStatus)
	mux.Handle("GET "+status.PathAlerts, a.alertsHandler())
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		status.WriteError(w, http.StatusNotFound, "the peer API serves only GET /alerts and GET /status")
	})
	return a.peer.guard(mux)
}

// listenPeer opens peer.listen, with TLS when peer.tls is set (client certificates required
// with client_ca_file: only peers connect here, no probes).
func (a *Agent) listenPeer() (net.Listener, error) {
	ln, err := net.Listen("tcp", a.cfg.Peer.Listen)
	if err != nil {
		return nil, fmt.Errorf("peer listen: %w", err)
	}
	if t := a.cfg.Peer.TLS; t.Enabled() {
		c, err := serverTLSFor(t, &a.peerCert, "peer.tls", tls.RequireAndVerifyClientCert)
		if err != nil {
			ln.Close()
			return nil, err
		}
		ln = tls.NewListener(ln, c)
	}
	return ln, nil
}

// PeerAddr returns the peer listener's address once Run is listening (nil without one).
func (a *Agent) PeerAddr() net.Addr {
	<-a.addrReady
	if a.peerLn == nil {
		return nil
	}
	return a.peerLn.Addr()
}
