package charm

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/falco-k8s/falco-k8s/agent/status"
)

// AgentClient talks to the agent's local observability listener (127.0.0.1:webhook-port+1,
// reachable from the charm container because both containers share the pod's network).
type AgentClient struct {
	Base string
	HTTP *http.Client
}

// NewAgentClient returns a client for the agent serving its status on port.
func NewAgentClient(port int) *AgentClient {
	return &AgentClient{Base: fmt.Sprintf("http://127.0.0.1:%d", port), HTTP: &http.Client{Timeout: 10 * time.Second}}
}

// SyncResult is one reference's outcome of POST /sync (the agent's status.SyncResult).
type SyncResult struct {
	Ref    string `json:"ref"`
	Result string `json:"result"` // unchanged, accepted, ignored, error
	Digest string `json:"digest,omitempty"`
	Reason string `json:"reason,omitempty"`
	// Diff is the candidate's diff against the running ruleset, when one was compiled.
	Diff *status.RulesetDiff `json:"diff,omitempty"`
	// Signer is who signed the candidate, when its signature was verified.
	Signer string `json:"signer,omitempty"`
}

func (c *AgentClient) do(ctx context.Context, method, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, method, c.Base+path, nil)
	if err != nil {
		return fmt.Errorf("agent %s: %w", path, err)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("agent %s: %w", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		return fmt.Errorf("agent %s: %w", path, err)
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			return fmt.Errorf("agent %s: %s", path, e.Error)
		}
		return fmt.Errorf("agent %s: HTTP %d: %s", path, resp.StatusCode, strings.TrimSpace(string(body)))
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("agent %s: decode: %w", path, err)
	}
	return nil
}

// Status is GET /status.
func (c *AgentClient) Status(ctx context.Context) (*status.Status, error) {
	var s status.Status
	if err := c.do(ctx, http.MethodGet, "/status", &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// Rules is GET /rules.
func (c *AgentClient) Rules(ctx context.Context, condition bool) (*status.Rules, error) {
	var r status.Rules
	if err := c.do(ctx, http.MethodGet, fmt.Sprintf("/rules?condition=%t", condition), &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// Sync is POST /sync[?dry_run=true].
func (c *AgentClient) Sync(ctx context.Context, dryRun bool) ([]SyncResult, error) {
	var out struct {
		Results []SyncResult `json:"results"`
	}
	path := "/sync"
	if dryRun {
		path += "?dry_run=true"
	}
	if err := c.do(ctx, http.MethodPost, path, &out); err != nil {
		return nil, err
	}
	return out.Results, nil
}
