package charm

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/canonical/pebble/client"
	"gopkg.in/yaml.v3"

	"github.com/falco-k8s/falco-k8s/agent/status"
)

// falcoLogTail is how many of Falco's last log lines are searched for the reason it stopped.
const falcoLogTail = 40

// engineStatus is the unit status once the agent is ready. With engine=falco, Falco's state
// comes first: a Falco that crashed (Pebble restarting it) or cannot start (a plugin that does
// not load, the webhook port taken) is the unit's problem, named with the reason from Falco's
// own log; a running Falco prefixes the agent's summary with its name and version.
func (c *Context) engineStatus(ctx context.Context, w Workload, s *Settings, st *status.Status) (string, string, error) {
	msg := StatusMessage(st, c.Now(), c.Redact)
	if s.Engine != EngineFalco {
		return Active, msg, nil
	}
	name := EngineFalco
	if st.Engine.Version != "" {
		name += " " + st.Engine.Version
	}
	if st, msg, down, err := c.falcoDown(ctx, w); err != nil || down {
		return st, msg, err
	}
	if r := st.Engine.LastRefusal; r != nil && (st.LastAccepted == nil || r.Time.After(st.LastAccepted.Time)) {
		what := "falco refused the new rules"
		if r.RolledBack {
			what += " (rolled back)"
		}
		msg += "; " + what + ": " + r.Reason
	}
	return Active, truncate(oneLine(c.Redact(name+": "+msg)), maxMessage), nil
}

// falcoStopped is the status message for a Falco that is not running: what happened and the
// last error Falco logged, if any.
func (c *Context) falcoStopped(ctx context.Context, w Workload, what string) string {
	lines, err := w.ServiceLogs(ctx, FalcoServiceName, falcoLogTail)
	if err != nil {
		c.Log.Warn().Err(err).Msg("reading falco's log")
	}
	if r := FalcoFailureReason(lines); r != "" {
		what += ": " + r
	}
	return truncate(oneLine(c.Redact(what)), maxMessage)
}

// falcoTimestamp is the time Falco puts before each log line (ctime or ISO 8601 form).
var falcoTimestamp = regexp.MustCompile(`^(\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4}|\d{4}-\d\d-\d\dT[\d:.]+[+-]\d{4}|\d{4}/\d\d/\d\d \d\d:\d\d:\d\d):? `)

// FalcoFailureReason is the last line of Falco's log that reports an error (Falco's
// "Runtime error: ..." and "Error: ...", a plugin's "[k8saudit] ... error"), without its
// timestamp; "" when there is none. Falco's log is text meant for people, so this is only ever
// shown, never used to decide anything.
func FalcoFailureReason(lines []string) string {
	for i := len(lines) - 1; i >= 0; i-- {
		l := strings.TrimSpace(falcoTimestamp.ReplaceAllString(strings.TrimSpace(lines[i]), ""))
		if strings.Contains(strings.ToLower(l), "error") {
			return strings.TrimSuffix(strings.TrimSuffix(l, " Exiting."), ".")
		}
	}
	return ""
}

func truncate(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

// ServiceLogs implements Workload.
func (p *Pebble) ServiceLogs(ctx context.Context, service string, n int) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var lines []string
	err := p.c.Logs(&client.LogsOptions{Services: []string{service}, N: n, WriteLog: func(e client.LogEntry) error {
		lines = append(lines, e.Message)
		return nil
	}})
	if err != nil {
		return nil, pebbleErr("logs "+service, err)
	}
	return lines, nil
}

// reloadFalcoTLS makes a running Falco read a renewed webhook certificate: k8saudit reads its
// sslCertificate when it opens, which Falco's SIGHUP restart does (watch_config_files only
// follows the configuration and rules files).
func (c *Context) reloadFalcoTLS(ctx context.Context, w Workload, s *Settings, out *Outcome) error {
	if s.Engine != EngineFalco || out.Replanned || !slices.Contains(out.Pushed, FalcoTLSPath) {
		return nil
	}
	if svc, err := w.ServiceStatus(ctx, FalcoServiceName); err != nil || svc != "active" {
		return err
	}
	if err := w.Signal(ctx, FalcoServiceName, "SIGHUP"); err != nil {
		return err
	}
	out.Reloaded = true
	c.Log.Info().Msg("webhook certificate renewed; Falco reloaded it")
	return nil
}

// Stop implements Workload. It does not wait for the change: the service's port is free once
// the process is gone, which the next replan or hook does not depend on.
func (p *Pebble) Stop(ctx context.Context, service string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if _, err := p.c.Stop(&client.ServiceOptions{Names: []string{service}}); err != nil {
		return pebbleErr("stop "+service, err)
	}
	return nil
}

// retireFalco handles a switch from engine=falco back to falco-k8s. Pebble cannot remove a
// service from a plan, and a replan restarts a service whose definition changed whatever its
// startup, so the falco service is redefined disabled and never restarted on failure (d.Layer),
// and stopped after the replan (the caller, when retiring is true) so the agent gets the
// webhook port. Later replans leave the unchanged, disabled service alone.
func (c *Context) retireFalco(ctx context.Context, w Workload, s *Settings, d *Desired) (retiring bool, err error) {
	if s.Engine == EngineFalco {
		return false, nil
	}
	svc, err := w.ServiceStatus(ctx, FalcoServiceName)
	if err != nil || svc == "" {
		return false, err
	}
	var layer map[string]any
	if err := yaml.Unmarshal(d.Layer, &layer); err != nil {
		return false, fmt.Errorf("pebble layer: %w", err)
	}
	services, _ := layer["services"].(map[string]any)
	if services == nil {
		return false, fmt.Errorf("pebble layer has no services")
	}
	services[FalcoServiceName] = map[string]any{
		"override": "replace", "summary": "Falco (engine=falco-k8s: not used)",
		"command": strings.Join(append([]string{c.Env.falcoBinary()}, FalcoArgs(c.Env.WorkloadRoot+FalcoConfigPath)...), " "),
		"startup": "disabled", "on-success": "ignore", "on-failure": "ignore",
	}
	if d.Layer, err = yaml.Marshal(layer); err != nil {
		return false, fmt.Errorf("render pebble layer: %w", err)
	}
	return svc == "active" || svc == "backoff" || svc == "error", nil
}

// falcoDown reports a Falco service that is not running, with the status to show: crashed and
// being restarted by Pebble (maintenance), or not running at all (blocked).
func (c *Context) falcoDown(ctx context.Context, w Workload) (st, msg string, down bool, err error) {
	svc, err := w.ServiceStatus(ctx, FalcoServiceName)
	if err != nil {
		return "", "", false, err
	}
	switch svc {
	case "active":
		return "", "", false, nil
	case "backoff":
		return Maintenance, c.falcoStopped(ctx, w, "falco crashed; Pebble is restarting it"), true, nil
	}
	return Blocked, c.falcoStopped(ctx, w, fmt.Sprintf("falco is not running (service %s)", svc)), true, nil
}
