package harness

import (
	"fmt"

	"github.com/falco-k8s/falco-k8s/internal/fakejuju"
)

// Relation hooks as Juju runs them (spec/juju.md §1.3): <endpoint>-relation-created when the
// relation is established, -joined then -changed for every remote unit entering scope, -changed
// when remote data changes (JUJU_REMOTE_UNIT empty for application data), -departed for every
// unit leaving, and -broken once when the relation is removed. Each helper returns the runs in
// order; a hook that exits non-zero leaves its relation-set writes uncommitted.

func relEnv(r *fakejuju.Relation, unit string) []string {
	env := []string{"JUJU_RELATION=" + r.Endpoint, "JUJU_RELATION_ID=" + r.Key(), "JUJU_REMOTE_APP=" + r.RemoteApp}
	if unit != "" {
		env = append(env, "JUJU_REMOTE_UNIT="+unit)
	}
	return env
}

func (e *Env) relation(id int) *fakejuju.Relation {
	for _, r := range e.State().Relations {
		if r.ID == id {
			return r
		}
	}
	panic(fmt.Sprintf("harness: no relation %d", id))
}

// AddRelation is `juju integrate`: it creates the relation between our endpoint and remoteApp
// and runs <endpoint>-relation-created. It returns the relation id.
func (e *Env) AddRelation(endpoint, remoteApp string) (int, Run) {
	var rel *fakejuju.Relation
	must0(e.update(func(st *fakejuju.State) {
		found := false
		for _, ep := range st.Endpoints {
			found = found || ep == endpoint
		}
		if !found {
			panic(fmt.Sprintf("harness: endpoint %q not in metadata.yaml", endpoint))
		}
		st.NextRelationID++
		rel = &fakejuju.Relation{ID: st.NextRelationID, Endpoint: endpoint, RemoteApp: remoteApp,
			LocalApp: map[string]string{}, LocalUnit: map[string]string{}, RemoteAppData: map[string]string{},
			RemoteUnitData: map[string]map[string]string{}}
		st.Relations = append(st.Relations, rel)
	}))
	return rel.ID, e.Hook(rel.Endpoint+"-relation-created", relEnv(rel, "")...)
}

// JoinUnit brings a remote unit (with its unit data) into scope: -joined, then -changed.
func (e *Env) JoinUnit(id int, unit string, data map[string]string) []Run {
	must0(e.update(func(st *fakejuju.State) {
		r := findRel(st, id)
		r.Units = append(r.Units, unit)
		r.RemoteUnitData[unit] = copyMap(data)
	}))
	r := e.relation(id)
	return []Run{
		e.Hook(r.Endpoint+"-relation-joined", relEnv(r, unit)...),
		e.Hook(r.Endpoint+"-relation-changed", relEnv(r, unit)...),
	}
}

// SetRemoteUnitData replaces a remote unit's data and runs -changed for it.
func (e *Env) SetRemoteUnitData(id int, unit string, data map[string]string) Run {
	must0(e.update(func(st *fakejuju.State) { findRel(st, id).RemoteUnitData[unit] = copyMap(data) }))
	r := e.relation(id)
	return e.Hook(r.Endpoint+"-relation-changed", relEnv(r, unit)...)
}

// SetRemoteUnitDataOnly replaces a remote unit's data without running a hook (benchmarks time
// the hook alone, with RelationEnv).
func (e *Env) SetRemoteUnitDataOnly(id int, unit string, data map[string]string) error {
	return e.update(func(st *fakejuju.State) { findRel(st, id).RemoteUnitData[unit] = copyMap(data) })
}

// RelationEnv is the environment of a relation hook for relation id and remote unit ("" for
// application data changes).
func (e *Env) RelationEnv(id int, unit string) []string { return relEnv(e.relation(id), unit) }

// SetRemoteAppData replaces the remote application's data and runs -changed without a remote
// unit, as Juju does for application settings.
func (e *Env) SetRemoteAppData(id int, data map[string]string) Run {
	must0(e.update(func(st *fakejuju.State) { findRel(st, id).RemoteAppData = copyMap(data) }))
	r := e.relation(id)
	return e.Hook(r.Endpoint+"-relation-changed", relEnv(r, "")...)
}

// DepartUnit takes a remote unit out of scope and runs -departed (JUJU_DEPARTING_UNIT set).
// Its data stays readable during the hook, as in Juju, and is dropped afterwards.
func (e *Env) DepartUnit(id int, unit string) Run {
	must0(e.update(func(st *fakejuju.State) {
		r := findRel(st, id)
		r.Units = remove(r.Units, unit)
	}))
	r := e.relation(id)
	run := e.Hook(r.Endpoint+"-relation-departed", append(relEnv(r, unit), "JUJU_DEPARTING_UNIT="+unit)...)
	must0(e.update(func(st *fakejuju.State) { delete(findRel(st, id).RemoteUnitData, unit) }))
	return run
}

// RemoveRelation is `juju remove-relation`: every remote unit departs, then -broken runs with
// the relation still listed by relation-ids but empty; afterwards it is gone.
func (e *Env) RemoveRelation(id int) []Run {
	var runs []Run
	for _, u := range e.relation(id).Units {
		runs = append(runs, e.DepartUnit(id, u))
	}
	must0(e.update(func(st *fakejuju.State) { findRel(st, id).Broken = true }))
	r := e.relation(id)
	runs = append(runs, e.Hook(r.Endpoint+"-relation-broken", relEnv(r, "")...))
	must0(e.update(func(st *fakejuju.State) {
		out := st.Relations[:0]
		for _, x := range st.Relations {
			if x.ID != id {
				out = append(out, x)
			}
		}
		st.Relations = out
	}))
	return runs
}

// Relation returns a relation's current state (databags included).
func (e *Env) Relation(id int) *fakejuju.Relation { return e.relation(id) }

// SetAddress sets the pod address network-get reports.
func (e *Env) SetAddress(addr string) error {
	return e.update(func(st *fakejuju.State) { st.Address = addr })
}

func findRel(st *fakejuju.State, id int) *fakejuju.Relation {
	for _, r := range st.Relations {
		if r.ID == id {
			return r
		}
	}
	panic(fmt.Sprintf("harness: no relation %d", id))
}

func copyMap(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func remove(list []string, s string) []string {
	out := list[:0:0]
	for _, x := range list {
		if x != s {
			out = append(out, x)
		}
	}
	return out
}

func must0(err error) {
	if err != nil {
		panic(err)
	}
}

// snapshotBags records our databags before a hook so a failed hook's relation-set writes can
// be discarded (Juju commits them only on exit 0).
func snapshotBags(st *fakejuju.State) map[int][2]map[string]string {
	out := map[int][2]map[string]string{}
	for _, r := range st.Relations {
		out[r.ID] = [2]map[string]string{copyMap(r.LocalApp), copyMap(r.LocalUnit)}
	}
	return out
}
