package charm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"github.com/canonical/pebble/client"
	"gopkg.in/yaml.v3"
)

// Workload is the workload container as the charm uses it, through its Pebble.
type Workload interface {
	// Ping fails with ErrPebbleNotReady while the container's Pebble cannot be reached.
	Ping(ctx context.Context) error
	// Pull returns a file's content; a missing file is os.ErrNotExist.
	Pull(ctx context.Context, path string) ([]byte, error)
	Push(ctx context.Context, path string, content io.Reader, perm os.FileMode) error
	// Remove deletes a file; a missing one is not an error.
	Remove(ctx context.Context, path string) error
	// ServiceEnv returns the environment of a service in the current plan (nil when absent).
	ServiceEnv(ctx context.Context, service string) (map[string]string, error)
	AddLayer(ctx context.Context, label string, layer []byte) error
	// Replan starts the change that applies the plan; it does not wait for it, because Pebble
	// holds a start change for a fixed second to see the service stay up.
	Replan(ctx context.Context) error
	// ServiceStatus is "active", "inactive", "backoff", "error" or "" when unknown.
	ServiceStatus(ctx context.Context, service string) (string, error)
	// Signal sends a signal (e.g. "SIGHUP") to a running service.
	Signal(ctx context.Context, service, signal string) error
	// Stop stops a service (it stays in the plan).
	Stop(ctx context.Context, service string) error
	// ServiceLogs returns a service's last n log lines (Pebble's ring buffer).
	ServiceLogs(ctx context.Context, service string, n int) ([]string, error)
}

// ErrPebbleNotReady means the workload container (or its Pebble) is not up yet.
var ErrPebbleNotReady = errors.New("workload container not reachable (Pebble not ready)")

// Pebble is the Workload implementation over the Pebble socket.
type Pebble struct {
	c      *client.Client
	socket string
}

// NewPebble returns a client for the Pebble listening on socket. Nothing is contacted yet.
func NewPebble(socket string) (*Pebble, error) {
	c, err := client.New(&client.Config{Socket: socket})
	if err != nil {
		return nil, fmt.Errorf("pebble client: %w", err)
	}
	return &Pebble{c: c, socket: socket}, nil
}

func pebbleErr(op string, err error) error {
	var ce client.ConnectionError
	if errors.As(err, &ce) {
		return fmt.Errorf("%s: %w: %v", op, ErrPebbleNotReady, err)
	}
	return fmt.Errorf("pebble %s: %w", op, err)
}

// Ping implements Workload.
func (p *Pebble) Ping(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	// The client retries GETs on connection errors for seconds; a socket that does not accept
	// connections right now means "not ready", so a quick dial answers first.
	d := net.Dialer{Timeout: time.Second}
	conn, err := d.DialContext(ctx, "unix", p.socket)
	if err != nil {
		return fmt.Errorf("ping: %w: %v", ErrPebbleNotReady, err)
	}
	conn.Close()
	if _, err := p.c.SysInfo(); err != nil {
		return pebbleErr("ping", err)
	}
	return nil
}

// Pull implements Workload.
func (p *Pebble) Pull(ctx context.Context, path string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := p.c.Pull(&client.PullOptions{Path: path, Target: &buf}); err != nil {
		var pe *client.Error
		if errors.As(err, &pe) && (pe.Kind == "not-found" || strings.Contains(pe.Message, "no such file")) {
			return nil, fmt.Errorf("pull %s: %w", path, os.ErrNotExist)
		}
		return nil, pebbleErr("pull "+path, err)
	}
	return buf.Bytes(), nil
}

// Push implements Workload.
func (p *Pebble) Push(ctx context.Context, path string, content io.Reader, perm os.FileMode) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := p.c.Push(&client.PushOptions{Source: content, Path: path, MakeDirs: true, Permissions: perm}); err != nil {
		return pebbleErr("push "+path, err)
	}
	return nil
}

// Remove implements Workload.
func (p *Pebble) Remove(ctx context.Context, path string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := p.c.RemovePath(&client.RemovePathOptions{Path: path}); err != nil {
		var pe *client.Error
		if errors.As(err, &pe) && (pe.Kind == "not-found" || strings.Contains(pe.Message, "no such file")) {
			return nil
		}
		return pebbleErr("remove "+path, err)
	}
	return nil
}

// ServiceEnv implements Workload.
func (p *Pebble) ServiceEnv(ctx context.Context, service string) (map[string]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	b, err := p.c.PlanBytes(nil)
	if err != nil {
		return nil, pebbleErr("plan", err)
	}
	var plan struct {
		Services map[string]struct {
			Environment map[string]string `yaml:"environment"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(b, &plan); err != nil {
		return nil, fmt.Errorf("pebble plan: %w", err)
	}
	svc, ok := plan.Services[service]
	if !ok {
		return nil, nil
	}
	if svc.Environment == nil {
		return map[string]string{}, nil
	}
	return svc.Environment, nil
}

// AddLayer implements Workload. Combine replaces the layer with the same label, so repeated
// hooks never stack layers.
func (p *Pebble) AddLayer(ctx context.Context, label string, layer []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := p.c.AddLayer(&client.AddLayerOptions{Combine: true, Label: label, LayerData: layer}); err != nil {
		return pebbleErr("add layer", err)
	}
	return nil
}

// Replan implements Workload. A change still running for the service (Pebble's one-second
// start check of a previous replan) conflicts; it is waited for and the replan retried.
func (p *Pebble) Replan(ctx context.Context) error {
	for attempt := 0; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		_, err := p.c.Replan(&client.ServiceOptions{})
		if err == nil {
			return nil
		}
		if attempt < 3 && strings.Contains(err.Error(), "in progress") {
			p.waitPendingChanges(ctx)
			continue
		}
		return pebbleErr("replan", err)
	}
}

func (p *Pebble) waitPendingChanges(ctx context.Context) {
	chs, err := p.c.Changes(&client.ChangesOptions{Selector: client.ChangesInProgress})
	if err != nil {
		return
	}
	for _, ch := range chs {
		if ctx.Err() != nil {
			return
		}
		p.c.WaitChange(ch.ID, &client.WaitChangeOptions{Timeout: 5 * time.Second}) //nolint:errcheck // retried by the caller
	}
}

// ServiceStatus implements Workload.
func (p *Pebble) ServiceStatus(ctx context.Context, service string) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	svcs, err := p.c.Services(&client.ServicesOptions{Names: []string{service}})
	if err != nil {
		return "", pebbleErr("services", err)
	}
	for _, s := range svcs {
		if s.Name == service {
			return string(s.Current), nil
		}
	}
	return "", nil
}

// Signal implements Workload.
func (p *Pebble) Signal(ctx context.Context, service, signal string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := p.c.SendSignal(&client.SendSignalOptions{Signal: signal, Services: []string{service}}); err != nil {
		return pebbleErr("signal "+service, err)
	}
	return nil
}
