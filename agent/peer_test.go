package agent

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/falco-k8s/falco-k8s/agent/apiclient"
	"github.com/falco-k8s/falco-k8s/agent/config"
	"github.com/falco-k8s/falco-k8s/alerts"
	"github.com/falco-k8s/falco-k8s/internal/atomicfile"
)

const peerToken = "peer-s3cret-0123456789"

// peerAgent starts an agent with the peer listener and returns it with the peer API's URL.
func peerAgent(t *testing.T, token string) (*testAgent, string, string) {
	t.Helper()
	tokFile := filepath.Join(t.TempDir(), "peer-token")
	if err := os.WriteFile(tokFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ta := startAgent(t, []string{"peer.listen=127.0.0.1:0", "peer.token_file=" + tokFile}, Options{})
	return ta, "http://" + ta.PeerAddr().String(), tokFile
}

func TestPeerListenerAuth(t *testing.T) {
	ta, base, tokFile := peerAgent(t, peerToken)
	postRetrying(t, ta.url, batch("p", 0, 3))
	waitFor(t, func() bool { return ta.Metrics().Snapshot().Alerts == 3 })
	if err := ta.Journal().Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, method, path, auth string
		want                     int
		body                     string // substring
	}{
		{"status without token", "GET", "/status", "", 401, "bearer token required"},
		{"alerts without token", "GET", "/alerts", "", 401, "bearer token required"},
		{"alerts wrong token", "GET", "/alerts", "Bearer wrong", 401, "invalid bearer token"},
		{"alerts basic auth", "GET", "/alerts", "Basic " + peerToken, 401, "bearer token required"},
		{"unknown path without token", "GET", "/rules", "", 401, "bearer token required"},
		{"status", "GET", "/status", "Bearer " + peerToken, 200, `"ruleset"`},
		{"alerts", "GET", "/alerts", "Bearer " + peerToken, 200, `"rule":"Every event"`},
		{"rules is not served", "GET", "/rules", "Bearer " + peerToken, 404, "only GET /alerts and GET /status"},
		{"metrics is not served", "GET", "/metrics", "Bearer " + peerToken, 404, ""},
		{"sync is not served", "POST", "/sync", "Bearer " + peerToken, 404, ""},
		{"reload is not served", "POST", "/reload", "Bearer " + peerToken, 404, ""},
		{"webhook is not served", "POST", "/k8s-audit", "Bearer " + peerToken, 404, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, base+tc.path, nil)
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.want || !strings.Contains(string(b), tc.body) {
				t.Fatalf("%s %s: %d %s, want %d with %q", tc.method, tc.path, resp.StatusCode, b, tc.want, tc.body)
			}
			if strings.Contains(string(b), peerToken) && tc.path != "/alerts" {
				t.Fatal("answer shows the token")
			}
		})
	}

	// The token file is replaced (a rotated Juju secret): the new token applies at once.
	if err := atomicfile.WriteFile(tokFile, []byte("rotated-token"), 0o600); err != nil {
		t.Fatal(err)
	}
	old, _ := apiclient.NewRemote(base, apiclient.RemoteOptions{Token: peerToken})
	if _, err := old.Status(context.Background()); err == nil || !strings.Contains(err.Error(), "invalid bearer token") {
		t.Fatalf("old token after rotation: %v", err)
	}
	rotated, _ := apiclient.NewRemote(base, apiclient.RemoteOptions{Token: "rotated-token"})
	if _, err := rotated.Status(context.Background()); err != nil {
		t.Fatalf("rotated token: %v", err)
	}
	// A broken replacement (empty) keeps the previous token.
	if err := atomicfile.WriteFile(tokFile, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := rotated.Status(context.Background()); err != nil {
		t.Fatalf("after an empty token file: %v", err)
	}
}

// The agent refuses to start with peer.listen but no usable token file, and says why without
// the token.
func TestPeerListenerRefusesToStartWithoutToken(t *testing.T) {
	dir := t.TempDir()
	open := filepath.Join(dir, "open")
	os.WriteFile(open, []byte(peerToken), 0o644) //nolint:errcheck
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, []byte("\n"), 0o600) //nolint:errcheck
	tests := []struct {
		name, tokenFile, want string
	}{
		{"no token file", "", "config key peer.token_file: required when peer.listen is set"},
		{"missing file", filepath.Join(dir, "missing"), "peer.token_file: stat "},
		{"readable by others", open, "is accessible to group or others (mode 0644)"},
		{"empty", empty, "is empty"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := config.Parse(nil, []string{"peer.listen=127.0.0.1:0", "peer.token_file=" + tc.tokenFile,
				"rules.state_dir=" + t.TempDir(), "outputs.stdout.enabled=false"})
			if err != nil {
				t.Fatal(err)
			}
			_, err = New(context.Background(), cfg, Options{})
			if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), peerToken) {
				t.Fatalf("New = %v, want an error containing %q and not the token", err, tc.want)
			}
		})
	}
}

// TestReviewPeers reviews three units, one of them stopped: the alerts of the two that answer
// are merged into one review whose counts sum to what was posted to them, and the stopped one
// is named with the reason.
func TestReviewPeers(t *testing.T) {
	type unit struct {
		ta   *testAgent
		base string
		n    int
	}
	units := make([]unit, 3)
	for i := range units {
		ta, base, _ := peerAgent(t, peerToken)
		units[i] = unit{ta: ta, base: base, n: 2 + i}
		postRetrying(t, ta.url, batch(fmt.Sprintf("u%d", i), 0, units[i].n))
		waitFor(t, func() bool { return ta.Metrics().Snapshot().Alerts == uint64(units[i].n) })
		if err := ta.Journal().Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	units[2].ta.stop(t)
	var peers []apiclient.Peer
	for i, u := range units {
		c, err := apiclient.NewRemote(u.base, apiclient.RemoteOptions{Token: peerToken})
		if err != nil {
			t.Fatal(err)
		}
		peers = append(peers, apiclient.Peer{Unit: fmt.Sprintf("falco-k8s/%d", i), Client: c})
	}
	r := apiclient.ReviewPeers(context.Background(), peers, alerts.Filter{}, 5*time.Second)
	if r.Alerts != units[0].n+units[1].n || len(r.Units) != 2 || r.Units[0].Alerts != 2 || r.Units[1].Alerts != 3 {
		t.Fatalf("review: %d alerts, units %+v", r.Alerts, r.Units)
	}
	if len(r.NotAnswered) != 1 || r.NotAnswered[0].Unit != "falco-k8s/2" || !strings.Contains(r.NotAnswered[0].Reason, "connection refused") {
		t.Fatalf("not answered %+v", r.NotAnswered)
	}
	if len(r.Groups) != 1 || r.Groups[0].Count != 5 {
		t.Fatalf("groups %+v", r.Groups)
	}
	var out strings.Builder
	if err := r.WriteTable(&out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Units:      2 answered (falco-k8s/0 2, falco-k8s/1 3)", "No answer:  falco-k8s/2: ", "Alerts:     5"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("table lacks %q:\n%s", want, out.String())
		}
	}
	// A wrong token is a unit that did not answer, with the agent's reason.
	bad, _ := apiclient.NewRemote(units[0].base, apiclient.RemoteOptions{Token: "wrong"})
	r = apiclient.ReviewPeers(context.Background(), []apiclient.Peer{{Unit: "falco-k8s/0", Client: bad}}, alerts.Filter{}, 0)
	if r.Alerts != 0 || len(r.NotAnswered) != 1 || !strings.Contains(r.NotAnswered[0].Reason, "401") || strings.Contains(r.NotAnswered[0].Reason, "wrong") {
		t.Fatalf("wrong token: %+v", r.NotAnswered)
	}
}

// The peer listener over TLS (peer.tls): a client with the CA and the token gets in; one that
// does not trust the certificate does not.
func TestPeerListenerTLS(t *testing.T) {
	dir := t.TempDir()
	cert, key, caPEM := tlsFiles(t, dir)
	tokFile := filepath.Join(dir, "peer-token")
	if err := os.WriteFile(tokFile, []byte(peerToken), 0o600); err != nil {
		t.Fatal(err)
	}
	ta := startAgent(t, []string{"peer.listen=127.0.0.1:0", "peer.token_file=" + tokFile, "peer.tls.cert_file=" + cert, "peer.tls.key_file=" + key}, Options{})
	base := "https://" + ta.PeerAddr().String()
	c, err := apiclient.NewRemote(base, apiclient.RemoteOptions{Token: peerToken, CAPEM: caPEM})
	if err != nil {
		t.Fatal(err)
	}
	if st, err := c.Status(context.Background()); err != nil || !st.Ready {
		t.Fatalf("status over TLS: %+v, %v", st, err)
	}
	untrusted, _ := apiclient.NewRemote(base, apiclient.RemoteOptions{Token: peerToken})
	if _, err := untrusted.Status(context.Background()); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("untrusted certificate: %v", err)
	}
	if _, err := apiclient.NewRemote(base, apiclient.RemoteOptions{CAPEM: []byte("not pem")}); err == nil {
		t.Fatal("a CA bundle without certificates was accepted")
	}
}
