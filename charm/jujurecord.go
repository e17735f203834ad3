package charm

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/falco-k8s/falco-k8s/internal/atomicfile"
)

// jujuRecordName is the file, in the charm directory, recording what this unit last told Juju.
// Every hook tool is a process and a round trip to the controller (5-10 ms each), and a
// steady-state hook would otherwise repeat status-set, application-version-set and opened-ports
// with the values Juju already has. Juju keeps the charm directory across hooks and charm
// upgrades (ops keeps its .unit-state.db there too) and a new pod starts with an empty one, so
// the record lives exactly as long as the unit agent that accepted the calls; a lost record only
// costs the calls again.
const jujuRecordName = ".falco-k8s-juju.json"

// jujuRecord is what Juju is known to hold for this unit because this charm set it (or, for the
// port, saw it) in a hook that succeeded. An empty field is unknown: the next hook asks or sets.
//
// It never claims more than Juju has: before a hook changes anything in Juju the file is removed,
// and it is written again only when the hook succeeds (Main). A hook killed or failing in
// between leaves no record, so the next hook sets everything again. Juju itself never changes
// these behind the charm: a failed hook puts the agent, not the workload status, in error, and
// the workload status the charm set is shown again once it is resolved.
type jujuRecord struct {
	Status     string `json:"status,omitempty"`
	Message    string `json:"message,omitempty"`
	AppVersion string `json:"app_version,omitempty"`
	// Port is the port opened-ports showed as the unit's only open port. A port opened in this
	// hook is not recorded: Juju commits open-port only when the hook exits 0, so the next hook
	// checks opened-ports once more and records what it sees.
	Port string `json:"port,omitempty"`
	// Bags maps "<relation ID> app" and "<relation ID> unit" to the sha256 of what this unit
	// last wrote in that databag of ours (relation-set is committed when the hook succeeds, like
	// this record). Nobody else writes our unit bags; another leader may write the application
	// bags, but Juju runs leader-elected here before this unit is leader again, and that hook
	// writes them anew (setBag).
	Bags map[string]string `json:"bags,omitempty"`

	path    string // "" disables the record (no charm directory: unit tests)
	loaded  bool
	changed bool // something must be written when the hook succeeds
	removed bool // the file is gone for this hook (Juju is being changed)
}

// juju returns the hook's record, read on first use. upgrade-charm starts from an empty record:
// `juju refresh` is where an operator expects the version (and everything else) set anew.
func (c *Context) juju() *jujuRecord {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := &c.jujuRec
	if r.loaded {
		return r
	}
	r.loaded = true
	if c.Env.CharmDir == "" || c.Env.Kind != "hooks" && c.Env.Kind != "actions" {
		return r
	}
	r.path = filepath.Join(c.Env.CharmDir, jujuRecordName)
	if c.Env.Kind == "hooks" && c.Env.Name == "upgrade-charm" {
		return r
	}
	b, err := os.ReadFile(r.path)
	if err != nil {
		return r // missing (first hook, new pod): unknown
	}
	var saved jujuRecord
	if json.Unmarshal(b, &saved) == nil {
		r.Status, r.Message, r.AppVersion, r.Port, r.Bags = saved.Status, saved.Message, saved.AppVersion, saved.Port, saved.Bags
	}
	return r
}

// forget is called before a hook tool changes Juju's state: the file goes first, so a hook that
// dies after the tool call cannot leave a record of the old state behind.
func (r *jujuRecord) forget() error {
	r.changed = true
	if r.path == "" || r.removed {
		return nil
	}
	if err := os.Remove(r.path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("juju record: %w", err)
	}
	r.removed = true
	return nil
}

// pruneBags forgets the bags of relations that are gone (relation IDs are never reused, so
// this only keeps the record small).
func (r *jujuRecord) pruneBags(live []string) {
	for k := range r.Bags {
		id, _, _ := strings.Cut(k, " ")
		if !slices.Contains(live, id) {
			delete(r.Bags, k)
			r.changed = true
		}
	}
}

// save writes the record; Main calls it once the hook has succeeded.
func (r *jujuRecord) save() error {
	if r.path == "" || !r.changed {
		return nil
	}
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("juju record: %w", err)
	}
	if err := atomicfile.WriteFile(r.path, b, 0o600); err != nil {
		return fmt.Errorf("juju record: %w", err)
	}
	r.changed, r.removed = false, false
	return nil
}

// saveJujuRecord records what the hook told Juju; Main calls it after a successful hook (a
// failed hook leaves no record, see jujuRecord).
func (c *Context) saveJujuRecord() error {
	return c.juju().save()
}
