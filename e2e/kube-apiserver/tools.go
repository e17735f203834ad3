//go:build tools

// Package tools records the kube-apiserver dependency so `go mod tidy` keeps go.sum complete for
// `go build k8s.io/kubernetes/cmd/kube-apiserver` (a main package cannot be imported, its app
// package can).
package tools

import _ "k8s.io/kubernetes/cmd/kube-apiserver/app"
