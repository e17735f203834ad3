package oci

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"syscall"

	"oras.land/oras-go/v2/errdef"
	orasauth "oras.land/oras-go/v2/registry/remote/auth"
	"oras.land/oras-go/v2/registry/remote/errcode"
)

// Kind is what went wrong talking to a registry, as far as a caller's next move is concerned:
// the CLI turns it into a hint, the follower into a message, a log level and a retry policy.
// Classify is the one place that decides it, from error types only.
type Kind int

// The kinds of registry failure.
const (
	// KindOther is anything not listed below (a local I/O error, an unsupported artifact).
	KindOther Kind = iota
	// KindConnection: the registry could not be reached, or the connection broke mid-transfer.
	KindConnection
	// KindTimeout: the operation's deadline passed or it was cancelled.
	KindTimeout
	// KindTLS: the registry's certificate did not verify.
	KindTLS
	// KindPlainHTTP: the registry answered HTTPS with plain HTTP.
	KindPlainHTTP
	// KindAuth: the registry wants (other) credentials (401, or none configured).
	KindAuth
	// KindDenied: the credentials lack permission (403).
	KindDenied
	// KindNotFound: no such repository, tag, manifest or blob (404).
	KindNotFound
	// KindRateLimited: 429 Too Many Requests (Retry-After says when to come back).
	KindRateLimited
	// KindUnavailable: a 5xx answer.
	KindUnavailable
	// KindBadContent: the registry answered, but what it sent is not what was asked for or
	// cannot be used: digest or size mismatch, an undecodable manifest or config, a truncated
	// or corrupt layer. Fetching the same digest again at once is unlikely to help.
	KindBadContent
)

var kindNames = [...]string{"other", "connection", "timeout", "tls", "plain-http", "auth", "denied", "not-found",
	"rate-limited", "unavailable", "bad-content"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", int(k))
}

// Transient reports whether retrying the same request later, unchanged, may succeed: network
// trouble, timeouts, rate limiting and server errors. Configuration problems (TLS, plain
// HTTP, credentials, permissions, a wrong reference) need a person; bad content needs a new
// push (or, for corruption in transit, a slow retry).
func (k Kind) Transient() bool {
	switch k {
	case KindConnection, KindTimeout, KindRateLimited, KindUnavailable, KindOther:
		return true
	}
	return false
}

// ErrBadContent is matched (errors.Is) by every ContentError.
var ErrBadContent = errors.New("bad content")

// ErrDigestMismatch and ErrSizeMismatch are the two integrity failures of a download; both
// come wrapped in a ContentError.
var (
	ErrDigestMismatch = errors.New("digest mismatch")
	ErrSizeMismatch   = errors.New("size mismatch")
)

// ContentError is content from a registry that cannot be used: it failed verification or does
// not decode. It matches ErrBadContent and unwraps to the cause.
type ContentError struct {
	Err error
}

func (e *ContentError) Error() string        { return e.Err.Error() }
func (e *ContentError) Unwrap() error        { return e.Err }
func (e *ContentError) Is(target error) bool { return target == ErrBadContent }

// BadContent marks err as bad content from the registry (nil stays nil).
func BadContent(err error) error {
	if err == nil {
		return nil
	}
	var ce *ContentError
	if errors.As(err, &ce) {
		return err
	}
	return &ContentError{Err: err}
}

// Classify returns the kind of a registry failure. Only error types decide: oras' response
// errors, net/http's, the TLS and network errors, and this package's ContentError.
func Classify(err error) Kind {
	if err == nil {
		return KindOther
	}
	var er *errcode.ErrorResponse
	var certErr *tls.CertificateVerificationError
	var unknownAuth x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var netErr net.Error
	var urlErr *url.Error
	var connErr *ConnectionError
	switch {
	// Content first: a truncated layer surfaces as io.ErrUnexpectedEOF, which is a
	// connection failure only when the transport, not the decoder, returned it.
	case errors.Is(err, ErrBadContent):
		return KindBadContent
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return KindTimeout
	case errors.As(err, &connErr):
		return KindConnection
	case errors.Is(err, orasauth.ErrBasicCredentialNotFound):
		return KindAuth
	case errors.As(err, &er):
		return classifyStatus(er.StatusCode)
	case errors.Is(err, errdef.ErrNotFound):
		return KindNotFound
	case errors.As(err, &certErr), errors.As(err, &unknownAuth), errors.As(err, &hostErr):
		return KindTLS
	case errors.Is(err, http.ErrSchemeMismatch):
		return KindPlainHTTP
	case errors.As(err, &netErr), errors.As(err, &urlErr),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return KindConnection
	}
	return KindOther
}

func classifyStatus(code int) Kind {
	switch {
	case code == http.StatusUnauthorized:
		return KindAuth
	case code == http.StatusForbidden:
		return KindDenied
	case code == http.StatusNotFound:
		return KindNotFound
	case code == http.StatusTooManyRequests:
		return KindRateLimited
	case code >= 500:
		return KindUnavailable
	}
	return KindOther
}

// StatusCode returns the HTTP status of a registry error response, or 0.
func StatusCode(err error) int {
	var er *errcode.ErrorResponse
	if errors.As(err, &er) {
		return er.StatusCode
	}
	return 0
}

// connReader marks errors reading a response body as connection failures, so that a body cut
// short by the network is never taken for bad content by code reading further down.
type connReader struct{ r io.Reader }

// ConnectionError is a failure of the connection to the registry mid-transfer.
type ConnectionError struct{ Err error }

func (e *ConnectionError) Error() string {
	return "connection to the registry failed: " + e.Err.Error()
}
func (e *ConnectionError) Unwrap() error { return e.Err }

func (c connReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if err != nil && err != io.EOF {
		err = &ConnectionError{Err: err}
	}
	return n, err
}
