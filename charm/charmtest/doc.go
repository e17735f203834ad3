// Package charmtest holds the charm's process-level tests and hook-latency benchmarks: the real
// falco-k8s binary runs as the charm's dispatch against the fake Juju hook tools
// (internal/fakejuju), a real Pebble daemon (github.com/canonical/pebble, `go tool pebble`)
// whose `agent` service is the real agent, an in-process OCI registry (internal/testregistry)
// and a fake kube-apiserver for the few Kubernetes reads the charm makes (the client is the
// real client-go of internal/kube). It also validates the charm definition the way Juju does,
// with github.com/juju/charm/v12.
package charmtest
