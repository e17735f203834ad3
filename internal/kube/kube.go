// Package kube is the small Kubernetes client that the charm and the agent share, over
// k8s.io/client-go: reading one key of a Secret, looking up a Service's ClusterIP and ports, and
// recording core/v1 Events on a Pod (the agent's "ArtifactsAccepted" / "ArtifactsIgnored").
//
// Errors that users act on are typed (SecretNotFoundError, SecretKeyError, ServiceNotFoundError)
// and their messages are the ones the charm shows in its status, e.g. "secret NAME is expected in
// namespace NS". Secret values never appear in errors or logs.
package kube

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Component is the event source and user agent this package reports as.
const Component = "falco-k8s"

// Event types (core/v1 accepts only these two).
const (
	EventNormal  = corev1.EventTypeNormal
	EventWarning = corev1.EventTypeWarning
)

// maxMessage is the longest event message kept: the apiserver rejects events.k8s.io notes over
// 1 KiB, and a reason with a whole list of load errors is not useful in `kubectl describe` anyway.
const maxMessage = 1024

// requestTimeout bounds every call when the caller's context has no deadline: a hook or the
// agent must never hang on an unreachable apiserver.
const requestTimeout = 15 * time.Second

// Client is a Kubernetes client. It is safe for concurrent use.
type Client struct {
	cs kubernetes.Interface

	mu      sync.Mutex
	podUIDs map[string]types.UID // ns/name -> uid, so repeated events cost one request
}

// InCluster reports whether the process runs in a pod with Kubernetes' service environment
// (the variables kubelet injects and rest.InClusterConfig needs).
func InCluster() bool {
	return os.Getenv("KUBERNETES_SERVICE_HOST") != "" && os.Getenv("KUBERNETES_SERVICE_PORT") != ""
}

// NewInCluster returns a client using the pod's service account.
func NewInCluster() (*Client, error) {
	cfg, err := rest.InClusterConfig()
	if err != nil {
		return nil, fmt.Errorf("kubernetes in-cluster config: %w", err)
	}
	return New(cfg)
}

// NewFromKubeconfig returns a client using a kubeconfig file's current context (tests, and
// running outside a cluster).
func NewFromKubeconfig(path string) (*Client, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		return nil, fmt.Errorf("kubernetes config from %s: %w", path, err)
	}
	return New(cfg)
}

// NewFor returns an in-cluster client, or one from kubeconfig when it is not empty.
func NewFor(kubeconfig string) (*Client, error) {
	if kubeconfig != "" {
		return NewFromKubeconfig(kubeconfig)
	}
	return NewInCluster()
}

// New returns a client for cfg.
func New(cfg *rest.Config) (*Client, error) {
	cfg = rest.CopyConfig(cfg)
	if cfg.UserAgent == "" {
		cfg.UserAgent = rest.DefaultKubernetesUserAgent() + " " + Component
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	return NewForClientset(cs), nil
}

// NewForClientset wraps an existing clientset.
func NewForClientset(cs kubernetes.Interface) *Client {
	return &Client{cs: cs, podUIDs: map[string]types.UID{}}
}

// Clientset returns the underlying clientset for calls this package does not wrap.
func (c *Client) Clientset() kubernetes.Interface { return c.cs }

func withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, requestTimeout)
}

// SecretNotFoundError is returned when the Secret does not exist.
type SecretNotFoundError struct{ Namespace, Name string }

func (e *SecretNotFoundError) Error() string {
	return fmt.Sprintf("secret %s is expected in namespace %s", e.Name, e.Namespace)
}

// SecretKeyError is returned when the Secret exists but has no such key (or it is empty).
type SecretKeyError struct{ Namespace, Name, Key string }

func (e *SecretKeyError) Error() string {
	return fmt.Sprintf("secret %s has no key %s", e.Name, e.Key)
}

// GetSecretKey returns the value of key in Secret ns/name. A missing Secret is a
// *SecretNotFoundError, a missing or empty key a *SecretKeyError; other failures (RBAC,
// connectivity) are wrapped apiserver errors. Errors never contain secret data.
func (c *Client) GetSecretKey(ctx context.Context, ns, name, key string) ([]byte, error) {
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	s, err := c.cs.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, &SecretNotFoundError{Namespace: ns, Name: name}
	}
	if err != nil {
		return nil, fmt.Errorf("read secret %s in namespace %s: %w", name, ns, err)
	}
	if v, ok := s.Data[key]; ok && len(v) > 0 {
		return v, nil
	}
	// StringData is write-only and never returned by the apiserver, so Data is the only place.
	return nil, &SecretKeyError{Namespace: ns, Name: name, Key: key}
}

// ServiceNotFoundError is returned when the Service does not exist.
type ServiceNotFoundError struct{ Namespace, Name string }

func (e *ServiceNotFoundError) Error() string {
	return fmt.Sprintf("service %s is expected in namespace %s", e.Name, e.Namespace)
}

// ErrNoClusterIP is returned (wrapped) for a Service without a virtual IP (headless, or
// ExternalName).
var ErrNoClusterIP = errors.New("service has no cluster IP")

// ErrNoPort is returned (wrapped) when a Service has no port of the requested name.
var ErrNoPort = errors.New("service has no such port")

func (c *Client) service(ctx context.Context, ns, name string) (*corev1.Service, error) {
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	s, err := c.cs.CoreV1().Services(ns).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, &ServiceNotFoundError{Namespace: ns, Name: name}
	}
	if err != nil {
		return nil, fmt.Errorf("read service %s in namespace %s: %w", name, ns, err)
	}
	return s, nil
}

// ServiceClusterIP returns the ClusterIP of Service ns/name (what kube-apiserver's audit
// webhook kubeconfig points at).
func (c *Client) ServiceClusterIP(ctx context.Context, ns, name string) (string, error) {
	s, err := c.service(ctx, ns, name)
	if err != nil {
		return "", err
	}
	ip := s.Spec.ClusterIP
	if ip == "" || ip == corev1.ClusterIPNone {
		return "", fmt.Errorf("service %s in namespace %s (type %s): %w", name, ns, s.Spec.Type, ErrNoClusterIP)
	}
	return ip, nil
}

// ServicePort returns the port number of Service ns/name's port called portName. An empty
// portName selects the Service's only port.
func (c *Client) ServicePort(ctx context.Context, ns, name, portName string) (int32, error) {
	s, err := c.service(ctx, ns, name)
	if err != nil {
		return 0, err
	}
	if portName == "" && len(s.Spec.Ports) == 1 {
		return s.Spec.Ports[0].Port, nil
	}
	var names []string
	for _, p := range s.Spec.Ports {
		if p.Name == portName && portName != "" {
			return p.Port, nil
		}
		names = append(names, fmt.Sprintf("%s=%d", p.Name, p.Port))
	}
	return 0, fmt.Errorf("service %s in namespace %s: port %q not among [%s]: %w",
		name, ns, portName, strings.Join(names, ", "), ErrNoPort)
}

// RecordEvent creates a core/v1 Event about Pod ns/podName, as `kubectl describe pod` shows
// them. eventType is EventNormal or EventWarning; reason is a short CamelCase word such as
// "ArtifactsAccepted"; message is truncated to 1 KiB.
func (c *Client) RecordEvent(ctx context.Context, ns, podName, reason, message, eventType string) error {
	if eventType != EventNormal && eventType != EventWarning {
		return fmt.Errorf("record event %s: type %q is neither %s nor %s", reason, eventType, EventNormal, EventWarning)
	}
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	uid, err := c.podUID(ctx, ns, podName)
	if err != nil {
		return fmt.Errorf("record event %s: %w", reason, err)
	}
	now := metav1.NewTime(time.Now())
	host, _ := os.Hostname()
	ev := &corev1.Event{
		// The pod name plus a generated suffix, as client-go's recorder names them (it uses a
		// timestamp; a generated name cannot collide).
		ObjectMeta: metav1.ObjectMeta{GenerateName: podName + ".", Namespace: ns},
		InvolvedObject: corev1.ObjectReference{
			Kind: "Pod", APIVersion: "v1", Namespace: ns, Name: podName, UID: uid,
		},
		Reason:              reason,
		Message:             truncate(message, maxMessage),
		Type:                eventType,
		Source:              corev1.EventSource{Component: Component, Host: host},
		FirstTimestamp:      now,
		LastTimestamp:       now,
		Count:               1,
		ReportingController: Component,
		ReportingInstance:   podName,
	}
	if _, err := c.cs.CoreV1().Events(ns).Create(ctx, ev, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("record event %s on pod %s in namespace %s: %w", reason, podName, ns, err)
	}
	return nil
}

// podUID looks the pod's UID up once: an Event without it would also match a later pod of the
// same name (StatefulSet pods keep their names across restarts).
func (c *Client) podUID(ctx context.Context, ns, name string) (types.UID, error) {
	key := ns + "/" + name
	c.mu.Lock()
	uid, ok := c.podUIDs[key]
	c.mu.Unlock()
	if ok {
		return uid, nil
	}
	p, err := c.cs.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return "", fmt.Errorf("look up pod %s in namespace %s: %w", name, ns, err)
	}
	c.mu.Lock()
	c.podUIDs[key] = p.UID
	c.mu.Unlock()
	return p.UID, nil
}

// truncate cuts s to at most n bytes on a rune boundary, marking the cut.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	const mark = "..."
	cut := n - len(mark)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + mark
}
