package fakejuju

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
)

// TestOwnedSecrets: secret-add/secret-set/secret-get on secrets the charm owns, with Juju's
// rules: only the leader creates and updates application-owned secrets, every unit reads them
// by label, the owner reads the latest revision.
func TestOwnedSecrets(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	t.Setenv("FAKE_JUJU_STATE", path)
	t.Setenv("JUJU_ACTION_NAME", "")
	if err := (&State{Unit: "falco-k8s/0", Leader: false}).Save(path); err != nil {
		t.Fatal(err)
	}
	setLeader := func(l bool) {
		st, err := Load(path)
		if err != nil {
			t.Fatal(err)
		}
		st.Leader = l
		if err := st.Save(path); err != nil {
			t.Fatal(err)
		}
	}
	run := func(argv ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := Main(argv, &out, &errb)
		return code, strings.TrimSpace(out.String()), errb.String()
	}
	var uri string
	for _, tc := range []struct {
		name   string
		leader bool
		argv   []string
		code   int
		out    string
		err    string
	}{
		{name: "non-leader cannot add an app secret", argv: []string{"secret-add", "--label", "ca", "certificate=x"}, code: 1, err: "permission denied"},
		{name: "bad key", leader: true, argv: []string{"secret-add", "--label", "ca", "Bad=x"}, code: 2, err: "not valid"},
		{name: "leader adds", leader: true, argv: []string{"secret-add", "--label", "ca", "certificate=one", "private-key=k"}, out: "secret:"},
		{name: "label taken", leader: true, argv: []string{"secret-add", "--label", "ca", "certificate=x"}, code: 1, err: "already exists"},
		{name: "non-leader reads by label", argv: []string{"secret-get", "--label", "ca", "certificate", "--format=json"}, out: `"one"`},
		{name: "non-leader cannot set", argv: []string{"secret-set", "URI", "certificate=two"}, code: 1, err: "permission denied"},
		{name: "leader sets", leader: true, argv: []string{"secret-set", "URI", "certificate=two", "private-key=k2"}},
		{name: "owner reads latest", argv: []string{"secret-get", "--label", "ca", "--format=json"}, out: `{"certificate":"two","private-key":"k2"}`},
		{name: "by URI", argv: []string{"secret-get", "URI", "certificate", "--format=json"}, out: `"two"`},
		{name: "info by label", argv: []string{"secret-info-get", "--label", "ca", "--format=json"}, out: `"owner":"application","revision":2`},
		{name: "unknown label", argv: []string{"secret-get", "--label", "nope"}, code: 1, err: "not found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			setLeader(tc.leader)
			for i, a := range tc.argv {
				if a == "URI" {
					tc.argv[i] = uri
				}
			}
			code, out, errs := run(tc.argv...)
			if code != tc.code || !strings.Contains(out, tc.out) || !strings.Contains(errs, tc.err) {
				t.Fatalf("%v: code %d out %q err %q", tc.argv, code, out, errs)
			}
			if tc.name == "leader adds" {
				uri = out
			}
		})
	}
}
