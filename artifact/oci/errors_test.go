package oci

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"oras.land/oras-go/v2/errdef"
	orasauth "oras.land/oras-go/v2/registry/remote/auth"
	"oras.land/oras-go/v2/registry/remote/errcode"
)

// TestClassify: every kind is decided by the error's type, however deeply it is wrapped, and a
// truncated archive (io.ErrUnexpectedEOF inside bad content) is never a connection failure.
func TestClassify(t *testing.T) {
	resp := func(code int) error {
		return fmt.Errorf("head: %w", &errcode.ErrorResponse{Method: "HEAD", StatusCode: code})
	}
	// A real refused connection: listen, close, dial.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, refused := http.Get("http://" + addr + "/v2/")
	deadline, cancel := context.WithTimeout(context.Background(), time.Nanosecond)
	defer cancel()
	<-deadline.Done()
	tests := []struct {
		name string
		err  error
		want Kind
	}{
		{"nil", nil, KindOther},
		{"refused", refused, KindConnection},
		{"reset mid-body", fmt.Errorf("fetch: %w", &ConnectionError{Err: io.ErrUnexpectedEOF}), KindConnection},
		{"bare unexpected EOF", io.ErrUnexpectedEOF, KindConnection},
		{"deadline", fmt.Errorf("resolve: %w", deadline.Err()), KindTimeout},
		{"401", resp(401), KindAuth},
		{"no credential", fmt.Errorf("x: %w", orasauth.ErrBasicCredentialNotFound), KindAuth},
		{"403", resp(403), KindDenied},
		{"404", resp(404), KindNotFound},
		{"errdef not found", fmt.Errorf("%s: %w", "sha256:00", errdef.ErrNotFound), KindNotFound},
		{"429", resp(429), KindRateLimited},
		{"503", resp(503), KindUnavailable},
		{"400", resp(400), KindOther},
		{"unknown CA", fmt.Errorf("get: %w", x509.UnknownAuthorityError{}), KindTLS},
		{"plain http", fmt.Errorf("get: %w", http.ErrSchemeMismatch), KindPlainHTTP},
		{"digest mismatch", BadContent(fmt.Errorf("%w: x", ErrDigestMismatch)), KindBadContent},
		{"size mismatch", fmt.Errorf("fetch: %w", BadContent(fmt.Errorf("%w: x", ErrSizeMismatch))), KindBadContent},
		{"truncated archive", BadContent(fmt.Errorf("extract: %w", io.ErrUnexpectedEOF)), KindBadContent},
		{"local", errors.New("disk full"), KindOther},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Classify(tc.err); got != tc.want {
				t.Fatalf("Classify(%v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
	if !errors.Is(BadContent(ErrDigestMismatch), ErrDigestMismatch) || !errors.Is(BadContent(ErrSizeMismatch), ErrBadContent) {
		t.Fatal("ContentError does not unwrap")
	}
	if KindBadContent.Transient() || KindAuth.Transient() || !KindConnection.Transient() || !KindRateLimited.Transient() {
		t.Fatal("Transient")
	}
}
