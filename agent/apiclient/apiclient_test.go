package apiclient

import (
	"context"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/falco-k8s/falco-k8s/agent/status"
	"github.com/falco-k8s/falco-k8s/alerts"
)

// Errors carry the agent's {"error"} message (status.WriteError, the server side), or the
// status and text of any other answer.
func TestErrorBody(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+status.PathReload, func(w http.ResponseWriter, _ *http.Request) {
		status.WriteError(w, http.StatusUnprocessableEntity, "rules.yaml:3:1: error: bad")
	})
	mux.HandleFunc(status.PathStatus, func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "bad gateway", http.StatusBadGateway)
	})
	mux.HandleFunc("POST "+status.PathSync, func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte(`{"results":[{"ref":"r:1","result":"accepted","digest":"sha256:ab"}]}`)) //nolint:errcheck
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	c := New(srv.URL+"/", nil)
	ctx := context.Background()

	err := c.Reload(ctx)
	var he *HTTPError
	if !errors.As(err, &he) || he.Code != 422 || !he.FromAgent || err.Error() != "agent /reload: rules.yaml:3:1: error: bad" {
		t.Fatalf("reload: %v", err)
	}
	if _, err := c.Status(ctx); !errors.As(err, &he) || he.FromAgent || err.Error() != "agent /status: HTTP 502: bad gateway" {
		t.Fatalf("status: %v", err)
	}
	rs, err := c.Sync(ctx, true)
	if err != nil || len(rs) != 1 || rs[0].Result != "accepted" {
		t.Fatalf("sync: %+v %v", rs, err)
	}
}

// The CLI's client verifies the agent with --ca-file and sends the bearer token, which never
// shows up in an error.
func TestNewHTTPClient(t *testing.T) {
	const token = "s3cret-token"
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+token {
			status.WriteError(w, http.StatusUnauthorized, "unauthorized")
			return
		}
		w.Header().Set(alerts.TruncatedHeader, "true")
		w.Write([]byte(`{"time":"2024-01-02T03:04:05.000000000Z","rule":"r","priority":"Warning","source":"k8s_audit","output":"o","output_fields":{}}` + "\n")) //nolint:errcheck
	}))
	defer srv.Close()
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	tok := filepath.Join(dir, "token")
	if err := os.WriteFile(tok, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, ca, token, wantErr string
	}{
		{name: "CA and token", ca: ca, token: tok},
		{name: "no token", ca: ca, wantErr: "401 Unauthorized: unauthorized"},
		{name: "unknown CA", token: tok, wantErr: "certificate"},
		{name: "missing CA file", ca: filepath.Join(dir, "nope.pem"), wantErr: "--ca-file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hc, err := NewHTTPClient(tc.ca, tc.token)
			if err == nil {
				l, trunc, ferr := New(srv.URL, hc).Alerts(context.Background(), alerts.Filter{})
				err = ferr
				if ferr == nil && (len(l) != 1 || !trunc) {
					t.Fatalf("alerts %d truncated %v", len(l), trunc)
				}
			}
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("err = %v, want %q", err, tc.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), token) {
				t.Fatalf("the token leaked into an error: %v", err)
			}
		})
	}
}
