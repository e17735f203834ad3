package follower

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"oras.land/oras-go/v2/registry/remote/errcode"

	"github.com/falco-k8s/falco-k8s/agent/config"
	"github.com/falco-k8s/falco-k8s/artifact/oci"
)

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 8, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"", 0, false},
		{"5", 5 * time.Second, true},
		{" 120 ", 2 * time.Minute, true},
		{"-1", 0, false},
		{"soon", 0, false},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second, true},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0, true},
		{"9999999", maxRetryAfter, true},
	}
	for _, tc := range tests {
		got, ok := parseRetryAfter(tc.in, now)
		if got != tc.want || ok != tc.ok {
			t.Errorf("parseRetryAfter(%q) = %v, %v; want %v, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestReadAuthFile(t *testing.T) {
	tests := []struct {
		name    string
		content string
		mode    os.FileMode
		want    string // registry/user of the first entry
		wantErr string
	}{
		{name: "falcoctl format", content: "ghcr.io,bob,s3cret;reg.local:5000,al,pw\n", mode: 0o600, want: "ghcr.io/bob"},
		{name: "json form", content: `[{"registry":"ghcr.io/org","user":"bob","password":"a,b;c"}]`, mode: 0o400, want: "ghcr.io/bob"},
		{name: "group readable", content: "ghcr.io,bob,s3cret", mode: 0o640, wantErr: "chmod 600"},
		{name: "world readable", content: "ghcr.io,bob,s3cret", mode: 0o644, wantErr: "accessible to group or others (mode 0644)"},
		{name: "bad entry", content: "ghcr.io,bob", mode: 0o600, wantErr: "entry 1 has 2 comma-separated fields"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "auth")
			if err := os.WriteFile(p, []byte(tc.content), tc.mode); err != nil {
				t.Fatal(err)
			}
			os.Chmod(p, tc.mode) //nolint:errcheck // umask
			got, err := ReadAuthFile(p)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || strings.Contains(err.Error(), "s3cret") {
					t.Fatalf("err = %v, want %q without the password", err, tc.wantErr)
				}
				return
			}
			if err != nil || len(got) == 0 || got[0].Registry+"/"+got[0].User != tc.want {
				t.Fatalf("got %+v, %v", got, err)
			}
		})
	}
}

func TestExplainRegistry(t *testing.T) {
	resp := func(code int) error {
		return fmt.Errorf("wrapped: %w", &errcode.ErrorResponse{Method: "HEAD", StatusCode: code})
	}
	tests := []struct {
		name      string
		err       error
		hasCred   bool
		want      string
		transient bool
	}{
		{"401 with credentials", resp(401), true, "registry ghcr.io refused the credentials (401): check the user and password for ghcr.io", false},
		{"401 anonymous", resp(401), false, "registry ghcr.io requires authentication (401): add credentials", false},
		{"403", resp(403), true, "registry ghcr.io denied access to ghcr.io/x/y:1 (403)", false},
		{"404", resp(404), false, "ghcr.io/x/y:1 not found on registry ghcr.io (404)", false},
		{"429", resp(429), false, "registry ghcr.io is rate limiting requests (429)", true},
		{"502", resp(502), false, "registry ghcr.io answered 502 Bad Gateway", true},
		{"plain http", &url.Error{Op: "Head", URL: "https://ghcr.io/v2/", Err: http.ErrSchemeMismatch}, false, "registry ghcr.io speaks plain HTTP: add it to follow.plain_http", false},
		{"refused", &url.Error{Op: "Head", URL: "https://ghcr.io/v2/", Err: &net.OpError{Op: "dial", Net: "tcp",
			Err: &os.SyscallError{Syscall: "connect", Err: syscall.ECONNREFUSED}}}, false, "registry ghcr.io is unreachable: connection refused", true},
		{"reset mid-layer", fmt.Errorf("fetch layer of x: %w", &oci.ConnectionError{Err: io.ErrUnexpectedEOF}), false, "registry ghcr.io is unreachable", true},
		{"digest mismatch", fmt.Errorf("fetch layer of x: %w", oci.BadContent(fmt.Errorf("%w: content does not match sha256:00", oci.ErrDigestMismatch))), false,
			"bad content from ghcr.io: ghcr.io/x/y:1: digest mismatch: content does not match sha256:00", false},
		{"truncated layer", oci.BadContent(fmt.Errorf("extract x: %w", io.ErrUnexpectedEOF)), false, "bad content from ghcr.io: ghcr.io/x/y:1: extract x: unexpected EOF", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := explainRegistry("ghcr.io", "ghcr.io/x/y:1", tc.hasCred, tc.err)
			var re *registryError
			if !errors.As(err, &re) || !strings.HasPrefix(err.Error(), tc.want) || re.transient != tc.transient {
				t.Fatalf("got %q (transient %v), want prefix %q (transient %v)", err, re != nil && re.transient, tc.want, tc.transient)
			}
		})
	}
}

func TestNewFromConfig(t *testing.T) {
	dir := t.TempDir()
	authFile := filepath.Join(dir, "auth")
	if err := os.WriteFile(authFile, []byte("file.example,u,p\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chmod(authFile, 0o644) //nolint:errcheck // umask
	t.Setenv(AuthEnv, "env.example,u,p")
	cfg, err := config.Parse(nil, []string{"follow.refs=[env.example/rules/k8s:1]", "follow.rule_files=[k8s.yaml]",
		"rules.state_dir=" + dir, "follow.registry_auth_file=" + authFile, "follow.plain_http=[env.example]"})
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if _, err := NewFromConfig(cfg, zerolog.Nop()); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("world-readable auth file accepted: %v", err)
	}
	os.Chmod(authFile, 0o600) //nolint:errcheck
	f, err := NewFromConfig(cfg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	if !f.creds.HasCredential("env.example") || !f.creds.HasCredential("file.example") || !f.client.PlainHTTP("env.example") {
		t.Fatal("credentials or plain_http not applied")
	}
	if f.o.Interval != 6*time.Hour || f.o.Jitter != 0.1 || f.o.MaxArtifactSize != 16<<20 {
		t.Fatalf("defaults not applied: %+v", f.o)
	}
}
