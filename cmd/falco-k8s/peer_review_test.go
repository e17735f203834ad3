package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/falco-k8s/falco-k8s/agent"
	"github.com/falco-k8s/falco-k8s/agent/config"
)

// TestAlertsReviewPeers runs `alerts review --peer` against a real agent's peer API and an
// address where nothing listens: one review of the unit that answered, and the other named.
func TestAlertsReviewPeers(t *testing.T) {
	dir := t.TempDir()
	tok := filepath.Join(dir, "peer-token")
	if err := os.WriteFile(tok, []byte("peer-token-value\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse(nil, []string{"webhook.listen=127.0.0.1:0", "peer.listen=127.0.0.1:0", "peer.token_file=" + tok,
		"rules.state_dir=" + dir, "outputs.stdout.enabled=false"})
	if err != nil {
		t.Fatal(err)
	}
	a, err := agent.New(context.Background(), cfg, agent.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() { cancel(); <-done }()
	examples, err := os.ReadFile(filepath.Join("..", "..", "examples", "audit-events.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(examples)), "\n")
	for _, l := range lines {
		resp, err := http.Post("http://"+a.WebhookAddr().String()+"/k8s-audit", "application/json", strings.NewReader(l))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	deadline := time.Now().Add(20 * time.Second)
	// Every posted event evaluated (and its alerts journaled) before the review is compared
	// with the alert count.
	for a.Metrics().Snapshot().Evaluated < uint64(len(lines)) || a.Journal().Flush(context.Background()) != nil || a.Metrics().Snapshot().Alerts == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no alerts")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := a.Journal().Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	n := a.Metrics().Snapshot().Alerts
	peer := "falco-k8s/0=http://" + a.PeerAddr().String()
	out, stderr, code := runCLI(t, "", "alerts", "review", "--peer", peer, "--peer", "falco-k8s/1=http://127.0.0.1:1", "--token-file", tok)
	if code != 0 || !strings.Contains(out, fmt.Sprintf("Units:      1 answered (falco-k8s/0 %d)", n)) ||
		!strings.Contains(out, "No answer:  falco-k8s/1: ") || !strings.Contains(out, fmt.Sprintf("Alerts:     %d", n)) {
		t.Fatalf("exit %d\n%s\n%s", code, out, stderr)
	}
	if strings.Contains(out+stderr, "peer-token-value") {
		t.Fatal("the token is shown")
	}
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--peer", peer, "--url", "http://a"}, 2, "not both"},
		{[]string{"--peer", "nounit"}, 2, "want unit=URL"},
		{[]string{"--peer", "u=ftp://x"}, 2, "invalid agent URL"},
		{[]string{"--peer", peer}, 1, "no unit answered"}, // no token: 401
	} {
		out, stderr, code := runCLI(t, "", append([]string{"alerts", "review"}, tc.args...)...)
		if code != tc.code || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: exit %d (want %d), stderr %q, out %q", tc.args, code, tc.code, stderr, out)
		}
	}
}
