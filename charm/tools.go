package charm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"regexp"
	"sort"
	"strings"
)

// Tools are the Juju hook tools the charm uses, with the exact invocations of spec/juju.md
// §1.5 (always --format=json, free text after --).
type Tools interface {
	// ConfigGet returns every option that has a value (config-get --format=json).
	ConfigGet(ctx context.Context) (map[string]any, error)
	StatusSet(ctx context.Context, status, message string) error
	// SecretGet returns a secret's content; refresh moves to the latest revision
	// (secret-changed). A secret that is not granted is ErrSecretNotGranted.
	SecretGet(ctx context.Context, uri string, refresh bool) (map[string]string, error)
	OpenedPorts(ctx context.Context) ([]string, error)
	OpenPort(ctx context.Context, port string) error
	ClosePort(ctx context.Context, port string) error
	ApplicationVersionSet(ctx context.Context, version string) error
	// JujuLog sends a line to `juju debug-log` at level TRACE|DEBUG|INFO|WARNING|ERROR.
	JujuLog(ctx context.Context, level, msg string) error
	ActionGet(ctx context.Context) (map[string]any, error)
	// ActionSet sets results; keys are dotted paths, already flattened (FlattenResults).
	ActionSet(ctx context.Context, results map[string]string) error
	ActionFail(ctx context.Context, msg string) error
	ActionLog(ctx context.Context, msg string) error
}

// ErrSecretNotGranted is secret-get's "permission denied" / "not found": the user has to run
// juju grant-secret.
var ErrSecretNotGranted = errors.New("secret not granted to the application")

// ExecTools runs the hook tools Juju puts first on PATH.
type ExecTools struct{}

var _ Tools = ExecTools{}

// ToolError is a hook tool that exited non-zero.
type ToolError struct {
	Tool   string
	Code   int
	Stderr string
}

func (e *ToolError) Error() string {
	return fmt.Sprintf("%s exited %d: %s", e.Tool, e.Code, strings.TrimSpace(e.Stderr))
}

func run(ctx context.Context, tool string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, tool, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return nil, &ToolError{Tool: tool, Code: ee.ExitCode(), Stderr: stderr.String()}
		}
		return nil, fmt.Errorf("run %s: %w", tool, err)
	}
	return stdout.Bytes(), nil
}

func runJSON(ctx context.Context, v any, tool string, args ...string) error {
	out, err := run(ctx, tool, args...)
	if err != nil {
		return err
	}
	d := json.NewDecoder(bytes.NewReader(out))
	d.UseNumber() // ints stay exact (webhook-port)
	if err := d.Decode(v); err != nil {
		return fmt.Errorf("%s: decode output: %w", tool, err)
	}
	return nil
}

// ConfigGet implements Tools.
func (ExecTools) ConfigGet(ctx context.Context) (map[string]any, error) {
	m := map[string]any{}
	if err := runJSON(ctx, &m, "config-get", "--format=json"); err != nil {
		return nil, err
	}
	return m, nil
}

// StatusSet implements Tools.
func (ExecTools) StatusSet(ctx context.Context, status, message string) error {
	_, err := run(ctx, "status-set", status, "--", message)
	return err
}

// SecretGet implements Tools.
func (ExecTools) SecretGet(ctx context.Context, uri string, refresh bool) (map[string]string, error) {
	args := []string{"--format=json", uri}
	if refresh {
		args = append(args, "--refresh")
	}
	m := map[string]string{}
	if err := runJSON(ctx, &m, "secret-get", args...); err != nil {
		var te *ToolError
		if errors.As(err, &te) && (strings.Contains(te.Stderr, "permission denied") || strings.Contains(te.Stderr, "not found")) {
			return nil, fmt.Errorf("%s: %w", uri, ErrSecretNotGranted)
		}
		return nil, err
	}
	return m, nil
}

// OpenedPorts implements Tools.
func (ExecTools) OpenedPorts(ctx context.Context) ([]string, error) {
	var ports []string
	if err := runJSON(ctx, &ports, "opened-ports", "--format=json"); err != nil {
		return nil, err
	}
	return ports, nil
}

// OpenPort implements Tools.
func (ExecTools) OpenPort(ctx context.Context, port string) error {
	_, err := run(ctx, "open-port", port)
	return err
}

// ClosePort implements Tools.
func (ExecTools) ClosePort(ctx context.Context, port string) error {
	_, err := run(ctx, "close-port", port)
	return err
}

// ApplicationVersionSet implements Tools.
func (ExecTools) ApplicationVersionSet(ctx context.Context, version string) error {
	_, err := run(ctx, "application-version-set", "--", version)
	return err
}

// JujuLog implements Tools.
func (ExecTools) JujuLog(ctx context.Context, level, msg string) error {
	_, err := run(ctx, "juju-log", "--log-level", level, "--", msg)
	return err
}

// ActionGet implements Tools.
func (ExecTools) ActionGet(ctx context.Context) (map[string]any, error) {
	m := map[string]any{}
	if err := runJSON(ctx, &m, "action-get", "--format=json"); err != nil {
		return nil, err
	}
	return m, nil
}

// actionSetBatch bounds the arguments of one action-set exec: Linux limits a command line (all
// arguments and the environment) to about 2 MiB, so large results go over several calls.
const actionSetBatch = 512 << 10

// ActionSet implements Tools. Keys are sorted so results are set in a stable order, and split
// over several action-set calls when together they would not fit one command line.
func (ExecTools) ActionSet(ctx context.Context, results map[string]string) error {
	if len(results) == 0 {
		return nil
	}
	keys := make([]string, 0, len(results))
	for k := range results {
		if err := ValidResultKey(k); err != nil {
			return err
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, batch := range batchArgs(keys, results, actionSetBatch) {
		if _, err := run(ctx, "action-set", batch...); err != nil {
			return err
		}
	}
	return nil
}

// batchArgs groups key=value arguments so each group's total length stays under limit (a single
// larger argument gets a group of its own).
func batchArgs(keys []string, results map[string]string, limit int) [][]string {
	var out [][]string
	var cur []string
	size := 0
	for _, k := range keys {
		a := k + "=" + results[k]
		if len(cur) > 0 && size+len(a) > limit {
			out = append(out, cur)
			cur, size = nil, 0
		}
		cur = append(cur, a)
		size += len(a) + 1
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

// ActionFail implements Tools.
func (ExecTools) ActionFail(ctx context.Context, msg string) error {
	_, err := run(ctx, "action-fail", "--", msg)
	return err
}

// ActionLog implements Tools.
func (ExecTools) ActionLog(ctx context.Context, msg string) error {
	_, err := run(ctx, "action-log", "--", msg)
	return err
}

var resultKeySegment = regexp.MustCompile(`^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$`)

// ValidResultKey applies action-set's key rules: dot-separated segments of lowercase letters,
// digits and inner hyphens, none of them one of the keys Juju reserves for the task's own output.
func ValidResultKey(k string) error {
	for _, seg := range strings.Split(k, ".") {
		if !resultKeySegment.MatchString(seg) {
			return fmt.Errorf("invalid action result key %q: segments must match %s", k, resultKeySegment)
		}
		// Juju rejects a reserved name in any segment (jujuc action-set.go), not only the whole key.
		switch seg {
		case "stdout", "stdout-encoding", "stderr", "stderr-encoding":
			return fmt.Errorf("action result key %q is reserved by Juju", k)
		}
	}
	return nil
}

// FlattenResults turns nested maps into action-set's dotted keys (ops' format_result_dict);
// every leaf becomes a string, because Juju stores results as strings anyway.
func FlattenResults(in map[string]any) map[string]string {
	out := map[string]string{}
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		switch t := v.(type) {
		case map[string]any:
			for k, x := range t {
				walk(join(prefix, k), x)
			}
		case map[string]string:
			for k, x := range t {
				out[join(prefix, k)] = x
			}
		case string:
			out[prefix] = t
		case nil:
			out[prefix] = ""
		default:
			out[prefix] = fmt.Sprint(t)
		}
	}
	walk("", in)
	return out
}

func join(prefix, k string) string {
	if prefix == "" {
		return k
	}
	return prefix + "." + k
}
