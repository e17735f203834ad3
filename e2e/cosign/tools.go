//go:build tools

// Package tools records the cosign dependency so `go mod tidy` keeps go.sum complete for
// `go build github.com/sigstore/cosign/v2/cmd/cosign` (a main package cannot be imported, its
// cli package can).
package tools

import _ "github.com/sigstore/cosign/v2/cmd/cosign/cli"
