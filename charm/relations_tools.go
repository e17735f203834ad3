package charm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strings"
)

// RelationTools are the relation hook tools (spec/juju.md §1.5), kept apart from Tools so a
// Tools implementation without relations (unit-test fakes) still works: Context.Integrations
// then sees no relations.
type RelationTools interface {
	IsLeader(ctx context.Context) (bool, error)
	// RelationIDs lists an endpoint's relations ("logging:3").
	RelationIDs(ctx context.Context, endpoint string) ([]string, error)
	// RelationList lists the remote units in scope.
	RelationList(ctx context.Context, relID string) ([]string, error)
	// RelationApp is the remote application's name (relation-list --app).
	RelationApp(ctx context.Context, relID string) (string, error)
	// RelationGet reads every key of a unit's (app=false) or application's databag.
	RelationGet(ctx context.Context, relID, who string, app bool) (map[string]string, error)
	// RelationSet merges data into our unit's or (leader only) application's databag; an empty
	// value deletes the key.
	RelationSet(ctx context.Context, relID string, app bool, data map[string]string) error
	// IngressAddress is network-get's ingress address for an endpoint (the pod's address).
	IngressAddress(ctx context.Context, endpoint string) (string, error)
}

var _ RelationTools = ExecTools{}

// IsLeader implements RelationTools.
func (ExecTools) IsLeader(ctx context.Context) (bool, error) {
	var b bool
	err := runJSON(ctx, &b, "is-leader", "--format=json")
	return b, err
}

// RelationIDs implements RelationTools.
func (ExecTools) RelationIDs(ctx context.Context, endpoint string) ([]string, error) {
	var ids []string
	err := runJSON(ctx, &ids, "relation-ids", "--format=json", endpoint)
	return ids, err
}

// RelationList implements RelationTools.
func (ExecTools) RelationList(ctx context.Context, relID string) ([]string, error) {
	var units []string
	err := runJSON(ctx, &units, "relation-list", "--format=json", "-r", relID)
	return units, err
}

// RelationApp implements RelationTools.
func (ExecTools) RelationApp(ctx context.Context, relID string) (string, error) {
	var app string
	err := runJSON(ctx, &app, "relation-list", "--format=json", "--app", "-r", relID)
	return app, err
}

// RelationGet implements RelationTools.
func (ExecTools) RelationGet(ctx context.Context, relID, who string, app bool) (map[string]string, error) {
	args := []string{"--format=json", "-r", relID}
	if app {
		args = append(args, "--app")
	}
	args = append(args, "-", who)
	// Values are strings, but a remote charm's bag decodes into anything JSON can hold; decode
	// loosely and keep only strings so odd data is validated, not a hook failure.
	var raw map[string]any
	if err := runJSON(ctx, &raw, "relation-get", args...); err != nil {
		return nil, err
	}
	out := make(map[string]string, len(raw))
	for k, v := range raw {
		if s, ok := v.(string); ok {
			out[k] = s
		}
	}
	return out, nil
}

// RelationSet implements RelationTools. The data goes through stdin (--file -), so large values
// (a compressed dashboard) never hit the argument length limit.
func (ExecTools) RelationSet(ctx context.Context, relID string, app bool, data map[string]string) error {
	b, err := json.Marshal(data) // JSON is YAML: relation-set reads it as a map
	if err != nil {
		return err
	}
	args := []string{"-r", relID}
	if app {
		args = append(args, "--app")
	}
	args = append(args, "--file", "-")
	cmd := exec.CommandContext(ctx, "relation-set", args...)
	cmd.Stdin = bytes.NewReader(b)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return &ToolError{Tool: "relation-set", Code: ee.ExitCode(), Stderr: stderr.String()}
		}
		return fmt.Errorf("run relation-set: %w", err)
	}
	return nil
}

// IngressAddress implements RelationTools.
func (ExecTools) IngressAddress(ctx context.Context, endpoint string) (string, error) {
	var addr string
	if err := runJSON(ctx, &addr, "network-get", "--format=json", "--ingress-address", endpoint); err != nil {
		return "", err
	}
	return strings.TrimSpace(addr), nil
}
