package fakejuju

import (
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Relation is one relation of the unit's application as Juju models it: an endpoint of ours, the
// remote application, its units currently in scope (relation-list), and four databags: ours
// (unit and application) and theirs. Remote unit data outlives the unit's membership so that
// relation-departed can still read the departing unit's settings, as in Juju.
type Relation struct {
	ID             int                          `json:"id"`
	Endpoint       string                       `json:"endpoint"`
	RemoteApp      string                       `json:"remote-app"`
	Units          []string                     `json:"units"` // remote units in scope
	LocalApp       map[string]string            `json:"local-app"`
	LocalUnit      map[string]string            `json:"local-unit"`
	RemoteAppData  map[string]string            `json:"remote-app-data"`
	RemoteUnitData map[string]map[string]string `json:"remote-unit-data"`
	// Broken is set for the relation-broken hook: the relation is still listed by relation-ids
	// (as Juju does) but has no units; it is removed when the hook ends.
	Broken bool `json:"broken,omitempty"`
	// Peer marks a peer relation: the remote application is our own, and its application
	// databag is the one LocalApp holds, readable by every unit and written by the leader only.
	Peer bool `json:"peer,omitempty"`
}

// Key is the relation's "endpoint:id" as relation-ids prints it.
func (r *Relation) Key() string { return fmt.Sprintf("%s:%d", r.Endpoint, r.ID) }

// RelationTools are the relation hook tools (and network-get).
var RelationTools = []string{"relation-ids", "relation-list", "relation-get", "relation-set", "network-get"}

// relation finds a relation by -r value ("endpoint:id" or "id"), defaulting to the hook's
// JUJU_RELATION_ID.
func (st *State) relation(spec string) (*Relation, error) {
	if spec == "" {
		spec = os.Getenv("JUJU_RELATION_ID")
		if spec == "" {
			return nil, usagef("no relation id specified")
		}
	}
	idText := spec
	if _, after, ok := strings.Cut(spec, ":"); ok {
		idText = after
	}
	id, err := strconv.Atoi(idText)
	if err != nil {
		return nil, usagef("invalid value %q for option -r: invalid relation id", spec)
	}
	for _, r := range st.Relations {
		if r.ID == id {
			return r, nil
		}
	}
	return nil, usagef("invalid value %q for option -r: relation not found", spec)
}

func (st *State) appName() string { a, _, _ := strings.Cut(st.Unit, "/"); return a }

func runRelationTool(st *State, tool string, args []string, out io.Writer, stdin io.Reader) error {
	switch tool {
	case "relation-ids":
		f, fm, err := parseFormatted(args, nil, map[string]string{"format": "format"}, 1)
		if err != nil {
			return err
		}
		name := os.Getenv("JUJU_RELATION")
		if len(f.posArgs) == 1 {
			name = f.posArgs[0]
		}
		if name == "" {
			return usagef("no endpoint name specified")
		}
		if !contains(st.Endpoints, name) {
			return fmt.Errorf("endpoint %q not found", name)
		}
		ids := []string{}
		for _, r := range st.Relations {
			if r.Endpoint == name {
				ids = append(ids, r.Key())
			}
		}
		return emitList(out, fm, ids)

	case "relation-list":
		f, fm, err := parseFormatted(args, []string{"app"}, map[string]string{"format": "format", "r": "r", "relation": "r"}, 0)
		if err != nil {
			return err
		}
		r, err := st.relation(f.set["r"])
		if err != nil {
			return err
		}
		if f.on("app") {
			return emit(out, fm, r.RemoteApp)
		}
		units := append([]string{}, r.Units...)
		sort.Strings(units)
		return emitList(out, fm, units)

	case "relation-get":
		f, fm, err := parseFormatted(args, []string{"app"}, map[string]string{"format": "format", "r": "r", "relation": "r"}, 2)
		if err != nil {
			return err
		}
		r, err := st.relation(f.set["r"])
		if err != nil {
			return err
		}
		key, who := "", ""
		if len(f.posArgs) >= 1 && f.posArgs[0] != "-" {
			key = f.posArgs[0]
		}
		if len(f.posArgs) == 2 {
			who = f.posArgs[1]
		} else if f.on("app") {
			who = os.Getenv("JUJU_REMOTE_APP")
		} else {
			who = os.Getenv("JUJU_REMOTE_UNIT")
		}
		if who == "" {
			return usagef("no unit or application specified")
		}
		var bag map[string]string
		switch {
		case f.on("app") && who == st.appName():
			// Our own application databag is only readable by the leader (Juju's uniter),
			// except on a peer relation, where it is every unit's shared state.
			if !st.Leader && !r.Peer {
				return fmt.Errorf("permission denied")
			}
			bag = r.LocalApp
		case f.on("app"):
			if who != r.RemoteApp {
				return fmt.Errorf("cannot read settings for application %q in relation %q: not a member", who, r.Key())
			}
			bag = r.RemoteAppData
		case who == st.Unit:
			bag = r.LocalUnit
		default:
			d, ok := r.RemoteUnitData[who]
			if !ok {
				return fmt.Errorf("cannot read settings for unit %q in relation %q: unit %q: settings not found", who, r.Key(), who)
			}
			bag = d
		}
		if bag == nil {
			bag = map[string]string{}
		}
		if key != "" {
			v, ok := bag[key]
			if !ok {
				if fm == "json" {
					return emit(out, fm, nil)
				}
				return nil
			}
			return emit(out, fm, v)
		}
		return emit(out, fm, bag)

	case "relation-set":
		f, err := parse(args, []string{"app"}, map[string]string{"r": "r", "relation": "r", "file": "file", "format": "format"})
		if err != nil {
			return err
		}
		r, err := st.relation(f.set["r"])
		if err != nil {
			return err
		}
		if r.Broken {
			return fmt.Errorf("cannot write settings of relation %q: it is being removed", r.Key())
		}
		values := map[string]string{}
		if file, ok := f.set["file"]; ok {
			var b []byte
			if file == "-" {
				b, err = io.ReadAll(stdin)
			} else {
				b, err = os.ReadFile(file)
			}
			if err != nil {
				return err
			}
			var m map[string]any
			if err := yaml.Unmarshal(b, &m); err != nil {
				return fmt.Errorf("cannot parse settings file: %v", err)
			}
			for k, v := range m {
				switch t := v.(type) {
				case string:
					values[k] = t
				case nil:
					values[k] = ""
				default:
					return fmt.Errorf("value of key %q is not a string", k)
				}
			}
		}
		for _, a := range f.posArgs {
			k, v, ok := strings.Cut(a, "=")
			if !ok || k == "" {
				return usagef("expected \"key=value\", got %q", a)
			}
			values[k] = v
		}
		bag := &r.LocalUnit
		if f.on("app") {
			// Juju refuses application settings from a non-leader.
			if !st.Leader {
				return fmt.Errorf("cannot write relation settings: permission denied (only the leader may set application data)")
			}
			bag = &r.LocalApp
		}
		if *bag == nil {
			*bag = map[string]string{}
		}
		for k, v := range values {
			if v == "" {
				delete(*bag, k) // an empty value deletes the key
			} else {
				(*bag)[k] = v
			}
		}
		return nil

	case "network-get":
		f, err := parse(args, []string{"ingress-address", "bind-address", "egress-subnets", "primary-address"},
			map[string]string{"format": "format", "r": "r", "relation": "r"})
		if err != nil {
			return err
		}
		fm, err := f.format(formats...)
		if err != nil {
			return err
		}
		if len(f.posArgs) != 1 {
			return usagef("no arguments specified")
		}
		if f.set["r"] != "" {
			if _, err := st.relation(f.set["r"]); err != nil {
				return err
			}
		}
		b := f.posArgs[0]
		if b != "juju-info" && !contains(st.Endpoints, b) {
			return fmt.Errorf("no network config found for binding %q", b)
		}
		addr := st.Address
		if addr == "" {
			addr = "10.1.0.10"
		}
		switch {
		case f.on("ingress-address"):
			return emit(out, fm, addr)
		case f.on("bind-address") || f.on("primary-address"):
			return emit(out, fm, addr)
		case f.on("egress-subnets"):
			return emit(out, fm, addr+"/32")
		}
		return emit(out, fm, map[string]any{
			"bind-addresses": []any{map[string]any{"mac-address": "", "interface-name": "eth0",
				"addresses":  []any{map[string]any{"hostname": "", "address": addr, "cidr": addr + "/32", "value": addr}},
				"macaddress": "", "interfacename": "eth0"}},
			"egress-subnets":    []string{addr + "/32"},
			"ingress-addresses": []string{addr},
		})
	}
	return fmt.Errorf("fakejuju: unknown tool %q", tool)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// emitList prints a list; smart format prints one item a line, as Juju's does for lists of strings.
func emitList(out io.Writer, fm string, v []string) error {
	if fm == "smart" {
		for _, s := range v {
			if _, err := fmt.Fprintln(out, s); err != nil {
				return err
			}
		}
		return nil
	}
	return emit(out, fm, v)
}
