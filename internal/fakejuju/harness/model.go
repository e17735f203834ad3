package harness

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/falco-k8s/falco-k8s/internal/fakejuju"
)

// Model is several units of one application sharing one model, as Juju runs them: one peer
// relation every unit is in (created with the first unit), leadership held by exactly one unit,
// application configuration and application-owned secrets shared, the peer application databag
// shared (written by the leader only, read by all), and each unit's peer unit databag seen by
// the others. Each unit keeps its own state file (its hook tools read only that), and the model
// propagates what a hook wrote to the other units after the hook exits 0, then queues the hooks
// Juju would run for it (-relation-changed on every other unit).
//
// Hooks run one at a time from a FIFO queue (Settle). Juju runs different units' hooks
// concurrently and orders them per unit only; one global order is one of the orders Juju may
// produce, and it makes the tests deterministic.
type Model struct {
	tb                        testing.TB
	toolBin, charmBin, srcDir string
	App                       string
	PeerEndpoint              string
	Units                     []*Env
	leader                    string
	next                      int
	relID                     int
	queue                     []Event
	// Ran records every hook run, "unit hook [remote]", in order.
	Ran []string
	// OnRun, when set, is called after every hook with its event and run (tests log output).
	OnRun func(Event, Run)
	// Setup, when set, prepares each new unit (workload, extra environment) before its first hook.
	Setup   func(*Env)
	watches []*NoticeWatch
	// departing units run their last hooks but no longer see the others' changes.
	departing map[string]bool
}

// Event is one queued hook on one unit.
type Event struct {
	Unit string
	Hook string
	Env  []string
}

// NewModel prepares an application with no units; peerEndpoint is metadata.yaml's peer relation.
func NewModel(tb testing.TB, toolBin, charmBin, srcDir, peerEndpoint string) *Model {
	return &Model{tb: tb, toolBin: toolBin, charmBin: charmBin, srcDir: srcDir, App: "falco-k8s",
		PeerEndpoint: peerEndpoint, relID: 1}
}

// Address is the pod address Juju reports for unit n (ingress-address, private-address): each
// unit its own loopback address, so units are told apart as pods are.
func Address(n int) string { return fmt.Sprintf("127.0.0.%d", 10+n) }

// Unit returns the unit named name.
func (m *Model) Unit(name string) *Env {
	for _, u := range m.Units {
		if u.Unit == name {
			return u
		}
	}
	return nil
}

// Leader is the current leader's name.
func (m *Model) Leader() string { return m.leader }

// AddUnit is `juju add-unit` (or the first unit of `juju deploy`): the unit is created with
// the model's configuration, shared application data and secrets, and its start-up hooks are
// queued as Juju runs them: install, <peer>-relation-created, leader-elected (the first unit
// becomes leader), config-changed, start, <container>-pebble-ready; then -relation-joined and
// -relation-changed on it for every unit already in scope, and on every such unit for it.
func (m *Model) AddUnit(container string) *Env {
	m.tb.Helper()
	name := fmt.Sprintf("%s/%d", m.App, m.next)
	n := m.next
	m.next++
	e := New(m.tb, m.toolBin, m.charmBin, m.srcDir)
	e.Unit = name
	var first *fakejuju.State
	if len(m.Units) > 0 {
		first = m.Units[0].State()
	}
	peers := m.Units
	must0(e.update(func(st *fakejuju.State) {
		st.Unit = name
		st.Leader = m.leader == ""
		st.Address = Address(n)
		rel := &fakejuju.Relation{ID: m.relID, Endpoint: m.PeerEndpoint, RemoteApp: m.App, Peer: true,
			LocalApp: map[string]string{}, LocalUnit: unitDefaults(st.Address), RemoteAppData: map[string]string{},
			RemoteUnitData: map[string]map[string]string{}}
		if first != nil {
			st.Config = first.Config
			copyAppSecrets(first, st)
			rel.LocalApp = copyMap(findRel(first, m.relID).LocalApp)
			st.AppStatus = first.AppStatus
		}
		for _, p := range peers {
			// Juju gives every unit's settings in scope the unit's addresses (uniter's
			// relation settings: ingress-address, private-address, egress-subnets).
			rel.RemoteUnitData[p.Unit] = copyMap(findRel(p.State(), m.relID).LocalUnit)
		}
		st.NextRelationID = m.relID
		st.Relations = append(st.Relations, rel)
	}))
	if m.leader == "" {
		m.leader = name
	}
	if m.Setup != nil {
		m.Setup(e)
	}
	m.Units = append(m.Units, e)
	m.enqueue(name, "install")
	m.enqueue(name, m.PeerEndpoint+"-relation-created", m.relEnv("")...)
	if m.leader == name {
		m.enqueue(name, "leader-elected")
	}
	m.enqueue(name, "config-changed")
	m.enqueue(name, "start")
	m.enqueue(name, container+"-pebble-ready", "JUJU_WORKLOAD_NAME="+container)
	mine := findRel(e.State(), m.relID).LocalUnit
	for _, p := range peers {
		// Scope: the new unit enters every peer's relation, and they enter its.
		must0(p.update(func(st *fakejuju.State) {
			r := findRel(st, m.relID)
			r.Units = append(r.Units, name)
			r.RemoteUnitData[name] = copyMap(mine)
		}))
		must0(e.update(func(st *fakejuju.State) {
			r := findRel(st, m.relID)
			r.Units = append(r.Units, p.Unit)
		}))
		m.enqueue(name, m.PeerEndpoint+"-relation-joined", m.relEnv(p.Unit)...)
		m.enqueue(name, m.PeerEndpoint+"-relation-changed", m.relEnv(p.Unit)...)
		m.enqueue(p.Unit, m.PeerEndpoint+"-relation-joined", m.relEnv(name)...)
		m.enqueue(p.Unit, m.PeerEndpoint+"-relation-changed", m.relEnv(name)...)
	}
	return e
}

func unitDefaults(addr string) map[string]string {
	return map[string]string{"ingress-address": addr, "private-address": addr, "egress-subnets": addr + "/32"}
}

// RemoveUnit is `juju remove-unit`: the unit leaves the peer relation (-relation-departed on it
// for every other unit, then -relation-broken, stop and remove on it; -relation-departed on every
// other unit for it, JUJU_DEPARTING_UNIT set). A departing leader loses leadership and another
// unit is elected (leader-elected on it). The queue is settled before the unit's files go.
func (m *Model) RemoveUnit(name string) {
	m.tb.Helper()
	gone := m.Unit(name)
	if gone == nil {
		m.tb.Fatalf("harness: no unit %s", name)
	}
	others := slices.DeleteFunc(slices.Clone(m.Units), func(e *Env) bool { return e.Unit == name })
	for _, o := range others {
		must0(gone.update(func(st *fakejuju.State) {
			r := findRel(st, m.relID)
			r.Units = remove(r.Units, o.Unit)
		}))
		m.enqueue(name, m.PeerEndpoint+"-relation-departed", append(m.relEnv(o.Unit), "JUJU_DEPARTING_UNIT="+name)...)
		must0(o.update(func(st *fakejuju.State) {
			r := findRel(st, m.relID)
			r.Units = remove(r.Units, name)
		}))
		m.enqueue(o.Unit, m.PeerEndpoint+"-relation-departed", append(m.relEnv(name), "JUJU_DEPARTING_UNIT="+name)...)
	}
	if m.departing == nil {
		m.departing = map[string]bool{}
	}
	m.departing[name] = true
	m.enqueue(name, m.PeerEndpoint+"-relation-broken", m.relEnv("")...)
	m.enqueue(name, "stop")
	m.enqueue(name, "remove")
	if m.leader == name {
		must0(gone.update(func(st *fakejuju.State) { st.Leader = false }))
		m.leader = ""
		if len(others) > 0 {
			m.elect(others[0].Unit)
		}
	}
	// A unit being removed gets no more notice hooks (Juju stops its workload watchers).
	m.StopWatching(name)
	m.Settle()
	m.Units = others
	delete(m.departing, name)
	for _, o := range others {
		must0(o.update(func(st *fakejuju.State) { delete(findRel(st, m.relID).RemoteUnitData, name) }))
	}
}

// SetLeader moves leadership to unit name (Juju's lease expiring on the old leader): the old
// leader's is-leader turns false at once and leader-elected is queued on the new one.
func (m *Model) SetLeader(name string) {
	m.tb.Helper()
	if m.Unit(name) == nil {
		m.tb.Fatalf("harness: no unit %s", name)
	}
	if old := m.Unit(m.leader); old != nil {
		must0(old.update(func(st *fakejuju.State) { st.Leader = false }))
	}
	m.elect(name)
}

func (m *Model) elect(name string) {
	must0(m.Unit(name).update(func(st *fakejuju.State) { st.Leader = true }))
	m.leader = name
	m.enqueue(name, "leader-elected")
}

// SetConfig is `juju config` for the application: validated once, applied to every unit, and
// config-changed queued on each.
func (m *Model) SetConfig(values map[string]any) error {
	for _, u := range m.Units {
		if err := u.SetConfig(values); err != nil {
			return err
		}
		m.enqueue(u.Unit, "config-changed")
	}
	return nil
}

// Queue queues a hook on a unit (e.g. update-status, or a pebble notice seen by a test).
func (m *Model) Queue(unit, hook string, env ...string) { m.enqueue(unit, hook, env...) }

// Pending is the queued hooks.
func (m *Model) Pending() []Event { return slices.Clone(m.queue) }

func (m *Model) relEnv(remote string) []string {
	env := []string{"JUJU_RELATION=" + m.PeerEndpoint, "JUJU_RELATION_ID=" + m.PeerEndpoint + ":" + strconv.Itoa(m.relID),
		"JUJU_REMOTE_APP=" + m.App}
	if remote != "" {
		env = append(env, "JUJU_REMOTE_UNIT="+remote)
	}
	return env
}

// enqueue adds a hook unless the same hook with the same environment is already waiting (Juju
// coalesces pending relation-changed events the same way: one run sees the latest data).
func (m *Model) enqueue(unit, hook string, env ...string) {
	ev := Event{Unit: unit, Hook: hook, Env: env}
	for _, q := range m.queue {
		if q.Unit == unit && q.Hook == hook && slices.Equal(q.Env, env) && strings.HasSuffix(hook, "-relation-changed") {
			return
		}
	}
	m.queue = append(m.queue, ev)
}

// Step runs the first queued hook and propagates what it wrote; it reports false when the
// queue is empty.
func (m *Model) Step() (Event, Run, bool) {
	if len(m.queue) == 0 {
		return Event{}, Run{}, false
	}
	ev := m.queue[0]
	m.queue = m.queue[1:]
	u := m.Unit(ev.Unit)
	if u == nil { // removed meanwhile: Juju drops its pending hooks
		return ev, Run{}, true
	}
	before := u.State()
	r := u.Hook(ev.Hook, ev.Env...)
	remote := ""
	for _, kv := range ev.Env {
		if v, ok := strings.CutPrefix(kv, "JUJU_REMOTE_UNIT="); ok {
			remote = " " + v
		}
	}
	m.Ran = append(m.Ran, ev.Unit+" "+ev.Hook+remote)
	if r.Code == 0 {
		m.propagate(u, before)
	}
	if m.OnRun != nil {
		m.OnRun(ev, r)
	}
	return ev, r, true
}

// Settle runs queued hooks until none is left, failing the test on a hook that exits non-zero
// (Juju would put the unit in error and retry; tests want to know). It bounds the run so that
// two units ping-ponging data changes fail the test instead of hanging it.
func (m *Model) Settle() {
	m.tb.Helper()
	for i := 0; ; i++ {
		if i > 500 {
			m.tb.Fatalf("harness: model did not settle after 500 hooks; pending %v", m.queue)
		}
		ev, r, ok := m.Step()
		if !ok {
			// Juju delivers Pebble notices as they come: the model is settled only when no
			// container has recorded one that no hook has seen.
			n, err := m.PollNotices(context.Background(), 0)
			if err != nil {
				m.tb.Fatal(err)
			}
			if n == 0 {
				return
			}
			continue
		}
		if r.Code != 0 {
			m.tb.Fatalf("%s hook %s: %s", ev.Unit, ev.Hook, r)
		}
	}
}

// propagate copies what a hook on u wrote to the shared model: its peer unit databag to every
// other unit's view of it, the application databag and application status (leader), and the
// application-owned secrets; changed databags queue -relation-changed on every other unit.
func (m *Model) propagate(u *Env, before *fakejuju.State) {
	after := u.State()
	rb, ra := findRelOK(before, m.relID), findRelOK(after, m.relID)
	if ra == nil {
		return
	}
	unitChanged := rb == nil || !maps.Equal(rb.LocalUnit, ra.LocalUnit)
	appChanged := rb == nil || !maps.Equal(rb.LocalApp, ra.LocalApp)
	for _, o := range m.Units {
		if o == u || m.departing[o.Unit] {
			continue
		}
		inScope := false
		must0(o.update(func(st *fakejuju.State) {
			r := findRelOK(st, m.relID)
			if r == nil {
				return
			}
			inScope = slices.Contains(r.Units, u.Unit)
			if inScope && unitChanged {
				r.RemoteUnitData[u.Unit] = copyMap(ra.LocalUnit)
			}
			if after.Leader {
				r.LocalApp = copyMap(ra.LocalApp)
				st.AppStatus = after.AppStatus
			}
			copyAppSecrets(after, st)
		}))
		if inScope && unitChanged {
			m.enqueue(o.Unit, m.PeerEndpoint+"-relation-changed", m.relEnv(u.Unit)...)
		}
		if after.Leader && appChanged {
			m.enqueue(o.Unit, m.PeerEndpoint+"-relation-changed", m.relEnv("")...)
		}
	}
}

func findRelOK(st *fakejuju.State, id int) *fakejuju.Relation {
	for _, r := range st.Relations {
		if r.ID == id {
			return r
		}
	}
	return nil
}

// copyAppSecrets gives dst every application-owned secret of src (every unit of the owning
// application reads them; only the leader writes them).
func copyAppSecrets(src, dst *fakejuju.State) {
	for id, owner := range src.Owned {
		if owner != "application" {
			continue
		}
		if dst.Secrets == nil {
			dst.Secrets = map[string]map[string]string{}
		}
		if dst.Granted == nil {
			dst.Granted = map[string]bool{}
		}
		if dst.SecretRevisions == nil {
			dst.SecretRevisions = map[string][]map[string]string{}
		}
		if dst.Owned == nil {
			dst.Owned = map[string]string{}
		}
		if dst.SecretLabels == nil {
			dst.SecretLabels = map[string]string{}
		}
		dst.Secrets[id] = src.Secrets[id]
		dst.SecretRevisions[id] = src.SecretRevisions[id]
		dst.Owned[id] = owner
		dst.Granted[id] = true
		for l, lid := range src.SecretLabels {
			if lid == id {
				dst.SecretLabels[l] = id
			}
		}
	}
}

// Action runs an action on a unit (`juju run`) and, like a hook, propagates what it wrote (an
// action may set relation data: the leader's tune-rules publishes the shared tuning).
func (m *Model) Action(unit, name string, params map[string]any) (Run, *fakejuju.Action, error) {
	u := m.Unit(unit)
	if u == nil {
		return Run{}, nil, fmt.Errorf("harness: no unit %s", unit)
	}
	before := u.State()
	r, a, err := u.Action(name, params)
	if err == nil && r.Code == 0 {
		m.propagate(u, before)
	}
	return r, a, err
}
