package charm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/falco-k8s/falco-k8s/internal/kube"
)

// Context is one hook or action invocation: Juju's environment, the hook tools, and lazily
// opened clients for the workload's Pebble and the Kubernetes API.
type Context struct {
	Env     Env
	Tools   Tools
	Log     zerolog.Logger
	Version string
	// Exe is the charm's own executable, pushed into the workload as the agent.
	Exe string
	Now func() time.Time

	// NewWorkload and NewKube open the clients; tests replace them.
	NewWorkload func() (Workload, error)
	NewKube     func() (Kube, error)

	mu      sync.Mutex
	secrets []string
	kube    Kube
	kubeErr error
	// relIDs is the hook's relation-ids for every endpoint (relationIDs).
	relIDs *relIDsBatch
	// certRel is the certificates relation (ID "" for none) once known (certificatesRelation).
	certRel *relation
	// jujuRec is what Juju already holds for the unit (jujurecord.go), read on first use.
	jujuRec jujuRecord
	logw    *jujuLogWriter
	// prefetched is a relation hook's own remote data (prefetchRelationData).
	prefetched *prefetch
}

// NewContext returns the Context of the running process.
func NewContext(env Env, tools Tools, version string, stdout io.Writer) *Context {
	c := &Context{Env: env, Tools: tools, Version: version, Now: time.Now}
	c.Exe, _ = os.Executable()
	w := &jujuLogWriter{c: c, stdout: stdout, minJujuLog: zerolog.InfoLevel}
	if env.Kind == "actions" {
		// An action's stdout is returned to the user as its "stdout" result: keep it clean.
		w.stdout = nil
	}
	c.logw = w
	c.Log = zerolog.New(w).Level(zerolog.InfoLevel).With().Timestamp().
		Str("unit", env.Unit).Str(env.Kind, env.Name).Logger()
	c.NewWorkload = func() (Workload, error) { return NewPebble(env.PebbleSocket) }
	c.NewKube = func() (Kube, error) { return newKubeClient(env.Kubeconfig) }
	return c
}

// AddSecret registers a credential value: it is replaced by *** in everything Redact sees.
func (c *Context) AddSecret(v ...string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range v {
		if len(s) >= 3 { // shorter values would redact ordinary words
			c.secrets = append(c.secrets, s)
		}
	}
}

// Redact removes every registered credential from s.
func (c *Context) Redact(s string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, v := range c.secrets {
		s = strings.ReplaceAll(s, v, "***")
	}
	return s
}

// SetStatus is status-set with the message redacted. A status Juju already holds from an earlier
// hook (jujuRecord) is not set again: status-set is a process and a controller round trip, and
// most hooks leave the status as it was.
func (c *Context) SetStatus(ctx context.Context, st, msg string) error {
	msg = c.Redact(msg)
	// Debug: the status is visible in juju status; INFO lines cost a juju-log call each.
	c.Log.Debug().Str("status", st).Str("message", msg).Msg("status")
	rec := c.juju()
	if rec.Status == st && rec.Message == msg {
		return nil
	}
	if err := rec.forget(); err != nil {
		return err
	}
	if err := c.Tools.StatusSet(ctx, st, msg); err != nil {
		return fmt.Errorf("set status: %w", err)
	}
	rec.Status, rec.Message = st, msg
	return nil
}

// Kube returns the Kubernetes client, opened on first use.
func (c *Context) Kube() (Kube, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.kube == nil && c.kubeErr == nil {
		c.kube, c.kubeErr = c.NewKube()
	}
	return c.kube, c.kubeErr
}

// jujuLogWriter routes the charm's logs the way Juju expects: INFO and up go through juju-log so
// they show at their level in `juju debug-log`; in hooks every line also goes to stdout, which
// Juju records at DEBUG; in actions nothing goes to stdout (it is the action's "stdout"
// result). Steady-state hooks log nothing at INFO, so they make no juju-log call. Every line is
// redacted first.
type jujuLogWriter struct {
	c          *Context
	stdout     io.Writer
	minJujuLog zerolog.Level

	// queue, once asyncJujuLog has started it, takes the juju-log calls to one goroutine that
	// makes them in order while the hook goes on; done is closed when it has made the last.
	mu    sync.Mutex
	queue chan [2]string
	done  chan struct{}
}

// asyncJujuLog makes juju-log calls in the background, in order: each is a process and a
// round trip to the controller (5-10 ms), which a hook need not wait for. The returned flush
// waits for every queued line; Main calls it before the hook exits, so all of them are in
// `juju debug-log` when Juju sees the hook end. Lines logged after flush are sent at once.
func (c *Context) asyncJujuLog() (flush func()) {
	w := c.logw
	if w == nil {
		return func() {}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.queue != nil {
		return func() {}
	}
	q, done := make(chan [2]string, 64), make(chan struct{})
	w.queue, w.done = q, done
	go func() {
		defer close(done)
		for m := range q {
			w.jujuLog(m[0], m[1])
		}
	}()
	return func() {
		w.mu.Lock()
		if w.queue == q {
			close(q)
			w.queue = nil
		}
		w.mu.Unlock()
		<-done
	}
}

func (w *jujuLogWriter) jujuLog(level, line string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	w.c.Tools.JujuLog(ctx, level, line) //nolint:errcheck // best effort
}

func (w *jujuLogWriter) Write(p []byte) (int, error) {
	return w.WriteLevel(zerolog.NoLevel, p)
}

func (w *jujuLogWriter) WriteLevel(l zerolog.Level, p []byte) (int, error) {
	line := w.c.Redact(string(p))
	if w.stdout != nil {
		io.WriteString(w.stdout, line) //nolint:errcheck // logging must not fail a hook
	}
	if l >= w.minJujuLog && l <= zerolog.FatalLevel && w.c.Tools != nil {
		level := "INFO"
		switch {
		case l >= zerolog.ErrorLevel:
			level = "ERROR"
		case l >= zerolog.WarnLevel:
			level = "WARNING"
		}
		w.mu.Lock()
		if w.queue != nil {
			w.queue <- [2]string{level, strings.TrimSpace(line)} // under mu: flush cannot close it meanwhile
			w.mu.Unlock()
			return len(p), nil
		}
		w.mu.Unlock()
		w.jujuLog(level, strings.TrimSpace(line))
	}
	return len(p), nil
}

// kubeAdapter maps internal/kube's typed errors onto the charm's.
type kubeAdapter struct{ c *kube.Client }

func newKubeClient(kubeconfig string) (Kube, error) {
	if kubeconfig == "" && !kube.InCluster() {
		return nil, ErrNoCluster
	}
	c, err := kube.NewFor(kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNoCluster, err)
	}
	return kubeAdapter{c}, nil
}

func (k kubeAdapter) SecretKey(ctx context.Context, ns, name, key string) ([]byte, error) {
	v, err := k.c.GetSecretKey(ctx, ns, name, key)
	var nf *kube.SecretNotFoundError
	var ke *kube.SecretKeyError
	switch {
	case err == nil:
		return v, nil
	case errors.As(err, &nf):
		return nil, fmt.Errorf("%w: %v", ErrSecretNotFound, err)
	case errors.As(err, &ke):
		return nil, fmt.Errorf("%w: %v", ErrSecretKeyMissing, err)
	}
	return nil, err
}

func (k kubeAdapter) ServiceClusterIP(ctx context.Context, ns, name string) (string, error) {
	return k.c.ServiceClusterIP(ctx, ns, name)
}
