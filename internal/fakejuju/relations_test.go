package fakejuju

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
)

func TestRelationTools(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	t.Setenv("FAKE_JUJU_STATE", path)
	reset := func(t *testing.T, leader bool, env map[string]string) {
		for _, k := range []string{"JUJU_RELATION", "JUJU_RELATION_ID", "JUJU_REMOTE_UNIT", "JUJU_REMOTE_APP"} {
			t.Setenv(k, env[k])
		}
		st := &State{Unit: "falco-k8s/0", Leader: leader, Endpoints: []string{"logging", "metrics-endpoint", "falco-peers"}, Address: "10.1.2.3",
			Relations: []*Relation{{ID: 3, Endpoint: "logging", RemoteApp: "loki", Units: []string{"loki/1", "loki/0"},
				LocalApp: map[string]string{"metadata": "m"}, LocalUnit: map[string]string{},
				RemoteAppData:  map[string]string{"k": "v"},
				RemoteUnitData: map[string]map[string]string{"loki/0": {"endpoint": `{"url":"http://l0/loki/api/v1/push"}`}, "loki/1": {}}},
				{ID: 5, Endpoint: "falco-peers", RemoteApp: "falco-k8s", Peer: true, Units: []string{"falco-k8s/1"},
					LocalApp: map[string]string{"published": "p"}, LocalUnit: map[string]string{},
					RemoteUnitData: map[string]map[string]string{"falco-k8s/1": {"ingress-address": "10.1.2.4"}}}}}
		if err := st.Save(path); err != nil {
			t.Fatal(err)
		}
	}
	inHook := map[string]string{"JUJU_RELATION": "logging", "JUJU_RELATION_ID": "logging:3", "JUJU_REMOTE_UNIT": "loki/0", "JUJU_REMOTE_APP": "loki"}
	for _, tc := range []struct {
		name     string
		leader   bool
		env      map[string]string
		argv     []string
		stdin    string
		code     int
		out, err string
		check    func(*testing.T, *State)
	}{
		{name: "relation-ids", argv: []string{"relation-ids", "logging", "--format=json"}, out: `["logging:3"]`},
		{name: "relation-ids none", argv: []string{"relation-ids", "metrics-endpoint", "--format=json"}, out: `[]`},
		{name: "relation-ids unknown endpoint", argv: []string{"relation-ids", "nope"}, code: 1, err: "not found"},
		{name: "relation-ids default from hook", env: inHook, argv: []string{"relation-ids"}, out: "logging:3\n"},
		{name: "relation-list sorted", argv: []string{"relation-list", "-r", "logging:3", "--format=json"}, out: `["loki/0","loki/1"]`},
		{name: "relation-list app", argv: []string{"relation-list", "-r", "3", "--app"}, out: "loki\n"},
		{name: "relation-list no relation", argv: []string{"relation-list"}, code: 2, err: "no relation id"},
		{name: "relation-list bad id", argv: []string{"relation-list", "-r", "logging:9"}, code: 2, err: "relation not found"},
		{name: "relation-get all from remote unit in hook", env: inHook, argv: []string{"relation-get", "--format=json", "-"}, out: `{"endpoint":"{\"url\":\"http://l0/loki/api/v1/push\"}"}`},
		{name: "relation-get key", argv: []string{"relation-get", "-r", "logging:3", "endpoint", "loki/0"}, out: `{"url":"http://l0/loki/api/v1/push"}`},
		{name: "relation-get missing key json", argv: []string{"relation-get", "--format=json", "-r", "logging:3", "x", "loki/0"}, out: "null"},
		{name: "relation-get remote app", argv: []string{"relation-get", "--format=json", "-r", "logging:3", "--app", "-", "loki"}, out: `{"k":"v"}`},
		{name: "relation-get own app leader", leader: true, argv: []string{"relation-get", "--format=json", "-r", "logging:3", "--app", "-", "falco-k8s"}, out: `{"metadata":"m"}`},
		{name: "relation-get own app non-leader", argv: []string{"relation-get", "-r", "logging:3", "--app", "-", "falco-k8s"}, code: 1, err: "permission denied"},
		// A peer relation's application databag is the application's shared state: every unit
		// reads it; only the leader writes it.
		{name: "relation-get peer app non-leader", argv: []string{"relation-get", "--format=json", "-r", "falco-peers:5", "--app", "-", "falco-k8s"}, out: `{"published":"p"}`},
		{name: "relation-set peer app non-leader refused", argv: []string{"relation-set", "-r", "falco-peers:5", "--app", "a=1"}, code: 1, err: "permission denied"},
		{name: "relation-get peer unit address", argv: []string{"relation-get", "-r", "falco-peers:5", "ingress-address", "falco-k8s/1"}, out: "10.1.2.4"},
		{name: "relation-get unknown unit", argv: []string{"relation-get", "-r", "logging:3", "-", "loki/7"}, code: 1, err: "settings not found"},
		{name: "relation-set unit", argv: []string{"relation-set", "-r", "logging:3", "a=1", "b=2"}, check: func(t *testing.T, s *State) {
			if u := s.Relations[0].LocalUnit; u["a"] != "1" || u["b"] != "2" {
				t.Errorf("%v", u)
			}
		}},
		{name: "relation-set app non-leader refused", argv: []string{"relation-set", "-r", "logging:3", "--app", "a=1"}, code: 1, err: "permission denied"},
		{name: "relation-set app leader from file, empty deletes", leader: true, argv: []string{"relation-set", "-r", "logging:3", "--app", "--file", "-"},
			stdin: "alert_rules: '{\"groups\":[]}'\nmetadata: ''\n", check: func(t *testing.T, s *State) {
				if a := s.Relations[0].LocalApp; a["alert_rules"] != `{"groups":[]}` || len(a) != 1 {
					t.Errorf("%v", a)
				}
			}},
		{name: "relation-set bad arg", argv: []string{"relation-set", "-r", "3", "novalue"}, code: 2, err: "key=value"},
		{name: "network-get", argv: []string{"network-get", "--format=json", "metrics-endpoint"}, out: `"ingress-addresses":["10.1.2.3"]`},
		{name: "network-get ingress", argv: []string{"network-get", "logging", "--ingress-address"}, out: "10.1.2.3\n"},
		{name: "network-get unknown binding", argv: []string{"network-get", "nope"}, code: 1, err: "no network config"},
		{name: "is-leader", leader: true, argv: []string{"is-leader", "--format=json"}, out: "true"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reset(t, tc.leader, tc.env)
			var out, errb bytes.Buffer
			stdin := strings.NewReader(tc.stdin)
			code := mainWith(tc.argv, stdin, &out, &errb)
			if code != tc.code || !strings.Contains(out.String(), tc.out) || !strings.Contains(errb.String(), tc.err) {
				t.Fatalf("exit %d stdout %q stderr %q; want exit %d, stdout ~%q, stderr ~%q", code, out.String(), errb.String(), tc.code, tc.out, tc.err)
			}
			if tc.check != nil {
				st, err := Load(path)
				if err != nil {
					t.Fatal(err)
				}
				tc.check(t, st)
			}
		})
	}
}

func TestSecretRevisionPinning(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	t.Setenv("FAKE_JUJU_STATE", path)
	const id = "d0nhl5nmp25c7f2pu3b0"
	st := &State{Unit: "falco-k8s/0", Secrets: map[string]map[string]string{id: {"v": "2"}}, Granted: map[string]bool{id: true},
		SecretRevisions: map[string][]map[string]string{id: {{"v": "1"}}}}
	if err := st.Save(path); err != nil {
		t.Fatal(err)
	}
	get := func(flags ...string) string {
		var out, errb bytes.Buffer
		if code := Main(append([]string{"secret-get", "--format=json", "secret:" + id, "v"}, flags...), &out, &errb); code != 0 {
			t.Fatalf("exit %d: %s", code, errb.String())
		}
		return strings.TrimSpace(out.String())
	}
	add := func(v string) {
		s, _ := Load(path)
		s.SecretRevisions[id] = append(s.SecretRevisions[id], map[string]string{"v": v})
		s.Secrets[id] = map[string]string{"v": v}
		s.Save(path) //nolint:errcheck
	}
	if got := get(); got != `"1"` { // first read pins the latest revision
		t.Fatalf("first read %s", got)
	}
	add("2")
	for _, step := range []struct {
		flags []string
		want  string
	}{
		{nil, `"1"`},                // still pinned
		{[]string{"--peek"}, `"2"`}, // latest, pin unchanged
		{nil, `"1"`},
		{[]string{"--refresh"}, `"2"`}, // moves the pin
		{nil, `"2"`},
	} {
		if got := get(step.flags...); got != step.want {
			t.Fatalf("secret-get %v = %s, want %s", step.flags, got, step.want)
		}
	}
}

// FuzzRelationSet feeds relation-set arbitrary -r values, key=value arguments and --file
// content. Properties: no panic; a refusal is an error, not a partial write; after a success
// the databag holds no empty value (an empty value deletes its key).
func FuzzRelationSet(f *testing.F) {
	for _, s := range [][3]string{
		{"logging:3", "a=1\nb=", "x: y\n"},
		{"3", "", "k: ''\n"},
		{"logging:x", "a=1", ""},
		{"", "novalue", ""},
		{"logging:3", "", "- list\n"},
		{"logging:3", "=v", "a: 1\n"},
	} {
		f.Add(s[0], s[1], s[2])
	}
	f.Fuzz(func(t *testing.T, rel, argv, file string) {
		st := &State{Unit: "falco-k8s/0", Leader: true, Endpoints: []string{"logging"},
			Relations: []*Relation{{ID: 3, Endpoint: "logging", RemoteApp: "loki", LocalUnit: map[string]string{"keep": "1"}}}}
		args := []string{"-r", rel}
		if argv != "" {
			args = append(args, strings.Split(argv, "\n")...)
		}
		if file != "" {
			args = append(args, "--file", "-")
		}
		var out bytes.Buffer
		err := runRelationTool(st, "relation-set", args, &out, strings.NewReader(file))
		bag := st.Relations[0].LocalUnit
		if err != nil {
			if len(bag) != 1 || bag["keep"] != "1" {
				t.Fatalf("refused relation-set changed the bag: %v", bag)
			}
			return
		}
		for k, v := range bag {
			if v == "" {
				t.Fatalf("empty value kept for %q", k)
			}
		}
	})
}
