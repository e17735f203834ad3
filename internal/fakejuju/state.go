// Package fakejuju is a fake Juju hook-tool environment for process-level tests of the real
// charm binary: one multi-call binary (cmd/fakejuju) symlinked as config-get, status-set,
// action-get, action-set, action-fail, action-log, juju-log, is-leader, open-port, close-port,
// opened-ports, application-version-set, secret-get, status-get, relation-ids, relation-list,
// relation-get, relation-set and network-get, recording the model's state as JSON in
// $FAKE_JUJU_STATE.
//
// The tools check their arguments the way Juju's do (spec/juju.md §1.5): only the four settable
// status values, --application only on the leader, action-set's key rules and reserved keys,
// action tools only inside an action, ports without ranges (Kubernetes), secrets only when
// granted, --format values, secret revisions pinned per unit (--refresh, --peek), relation
// application data written only by the leader and readable by the leader only on our side (on a
// peer relation, where it is the application's shared state, by every unit). The harness (Env) checks its inputs the way Juju does before a hook
// runs: config values against config.yaml (unknown keys and wrong types are errors) and action
// parameters against actions.yaml's JSON schema with defaults inserted, both through
// github.com/juju/charm/v12. As in Juju, open-port and close-port only take effect when the
// hook exits 0 (relation-set too: the harness restores our databags after a failed hook), and
// status-set applies immediately.
package fakejuju

import (
	"encoding/json"
	"fmt"
	"github.com/falco-k8s/falco-k8s/internal/atomicfile"
	"os"
)

// Status is a workload status.
type Status struct {
	Status  string `json:"status"`
	Message string `json:"message"`
}

// LogLine is one juju-log call.
type LogLine struct {
	Level   string `json:"level"`
	Message string `json:"message"`
}

// Action is the running (or last) action.
type Action struct {
	Name    string         `json:"name"`
	Params  map[string]any `json:"params"`
	Results map[string]any `json:"results"`
	Failed  bool           `json:"failed"`
	Message string         `json:"message"`
	Logs    []string       `json:"logs"`
}

// State is the fake model as seen by one unit.
type State struct {
	Unit   string `json:"unit"`
	Leader bool   `json:"leader"`
	// Config holds the values set with `juju config` (validated by Env.SetConfig);
	// ConfigDefaults the defaults from config.yaml.
	Config         map[string]any `json:"config"`
	ConfigDefaults map[string]any `json:"config-defaults"`
	// ConfigOptions lists every option of config.yaml (config-get --all shows nil ones).
	ConfigOptions []string `json:"config-options"`
	UnitStatus    Status   `json:"unit-status"`
	AppStatus     Status   `json:"app-status"`
	StatusHistory []Status `json:"status-history"`
	OpenedPorts   []string `json:"opened-ports"`
	// PendingPorts are open/close requests of the running hook, committed on exit 0.
	PendingPorts []string                     `json:"pending-ports"`
	AppVersion   string                       `json:"app-version"`
	Secrets      map[string]map[string]string `json:"secrets"` // secret ID → latest content
	Granted      map[string]bool              `json:"granted"`
	// SecretRevisions holds every revision of a secret (index = revision-1; a secret only in
	// Secrets has one revision). Tracked is the revision this unit is pinned to: the first
	// secret-get pins the latest, --refresh moves to the latest, --peek reads it without moving.
	SecretRevisions map[string][]map[string]string `json:"secret-revisions,omitempty"`
	Tracked         map[string]int                 `json:"tracked,omitempty"`
	// Owned marks the secrets the charm created (secret-add): ID → owner ("application" or
	// "unit"); SecretLabels maps the owner's labels to IDs (secret-get --label).
	Owned        map[string]string `json:"owned,omitempty"`
	SecretLabels map[string]string `json:"secret-labels,omitempty"`
	// Relations are the application's relations; Endpoints every relation endpoint in
	// metadata.yaml (relation-ids and network-get check names against it); Address the pod's
	// address network-get reports.
	Relations      []*Relation `json:"relations,omitempty"`
	Endpoints      []string    `json:"endpoints,omitempty"`
	Address        string      `json:"address,omitempty"`
	NextRelationID int         `json:"next-relation-id,omitempty"`
	Action         *Action     `json:"action,omitempty"`
	Logs           []LogLine   `json:"logs"`
	// Calls is every tool invocation, argv joined, in order.
	Calls []string `json:"calls"`
}

// Load reads the state file.
func Load(path string) (*State, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("fake juju state: %w", err)
	}
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("fake juju state %s: %w", path, err)
	}
	return &s, nil
}

// Save writes the state file atomically (a tool killed mid-write must not corrupt it).
func (s *State) Save(path string) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("fake juju state: %w", err)
	}
	if err := atomicfile.WriteFile(path, b, 0o600); err != nil {
		return fmt.Errorf("fake juju state: %w", err)
	}
	return nil
}
