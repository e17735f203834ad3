package charm

import (
	"context"
	"errors"
)

// Kube is the little of the Kubernetes API the charm needs. The production implementation is
// client-go (internal/kube); tests substitute it.
type Kube interface {
	// SecretKey returns one key of a Secret: ErrSecretNotFound, ErrSecretKeyMissing or another
	// error (forbidden: the application was deployed without --trust).
	SecretKey(ctx context.Context, namespace, name, key string) ([]byte, error)
	// ServiceClusterIP returns a Service's ClusterIP.
	ServiceClusterIP(ctx context.Context, namespace, name string) (string, error)
}

var (
	// ErrSecretNotFound: the named Secret does not exist in the namespace.
	ErrSecretNotFound = errors.New("secret not found")
	// ErrSecretKeyMissing: the Secret exists without the key.
	ErrSecretKeyMissing = errors.New("secret has no such key")
	// ErrNoCluster: no Kubernetes API is reachable (not in a pod, no kubeconfig).
	ErrNoCluster = errors.New("no Kubernetes API available (not running in a pod and no kubeconfig)")
)
