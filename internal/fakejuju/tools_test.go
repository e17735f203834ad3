package fakejuju

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
)

func TestTools(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	t.Setenv("FAKE_JUJU_STATE", path)
	reset := func(leader, inAction bool) {
		st := &State{Unit: "falco-k8s/0", Leader: leader, Config: map[string]any{"log-level": "debug"},
			ConfigDefaults: map[string]any{"webhook-port": 9765, "log-level": "info"}, ConfigOptions: []string{"log-level", "webhook-port", "webhook-tls"},
			Secrets: map[string]map[string]string{"d0nhl5nmp25c7f2pu3a0": {"password": "p"}, "d0nhl5nmp25c7f2pu3b0": {"k": "v"}},
			Granted: map[string]bool{"d0nhl5nmp25c7f2pu3b0": true}}
		if inAction {
			st.Action = &Action{Name: "show-rules", Params: map[string]any{"format": "json"}, Results: map[string]any{}}
			t.Setenv("JUJU_ACTION_NAME", "show-rules")
		} else {
			t.Setenv("JUJU_ACTION_NAME", "")
		}
		if err := st.Save(path); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name             string
		leader, inAction bool
		argv             []string
		code             int
		out, err         string
		check            func(*testing.T, *State)
	}{
		{name: "config-get all json", argv: []string{"config-get", "--format=json"}, out: `{"log-level":"debug","webhook-port":9765}`},
		{name: "config-get --all shows unset", argv: []string{"config-get", "--format", "json", "--all"}, out: `"webhook-tls":null`},
		{name: "config-get unknown key is null", argv: []string{"config-get", "--format=json", "nope"}, out: "null"},
		{name: "config-get bad format", argv: []string{"config-get", "--format=xml"}, code: 2, err: "unknown format"},
		{name: "unknown flag", argv: []string{"config-get", "--bogus"}, code: 2, err: "flag provided but not defined"},
		{name: "status-set", argv: []string{"status-set", "blocked", "--", "fix it"}, check: func(t *testing.T, s *State) {
			if s.UnitStatus != (Status{"blocked", "fix it"}) {
				t.Errorf("%+v", s.UnitStatus)
			}
		}},
		{name: "status-set error is not settable", argv: []string{"status-set", "error", "x"}, code: 2, err: "invalid status"},
		{name: "status-set app needs leader", argv: []string{"status-set", "--application", "active"}, code: 1, err: "not the leader"},
		{name: "status-set app leader", leader: true, argv: []string{"status-set", "--application=true", "active", "ok"}},
		{name: "is-leader json", leader: true, argv: []string{"is-leader", "--format=json"}, out: "true"},
		{name: "is-leader smart", argv: []string{"is-leader"}, out: "False"},
		{name: "action-get outside action", argv: []string{"action-get", "--format=json"}, code: 1, err: "not running an action"},
		{name: "action-get", inAction: true, argv: []string{"action-get", "--format=json", "format"}, out: `"json"`},
		{name: "action-set nested", inAction: true, argv: []string{"action-set", "a.b=1", "c=x=y"}, check: func(t *testing.T, s *State) {
			if s.Action.Results["a"].(map[string]any)["b"] != "1" || s.Action.Results["c"] != "x=y" {
				t.Errorf("%v", s.Action.Results)
			}
		}},
		{name: "action-set bad key", inAction: true, argv: []string{"action-set", "Bad=1"}, code: 2, err: "must start and end with lowercase"},
		{name: "action-set reserved", inAction: true, argv: []string{"action-set", "stderr=1"}, code: 2, err: "reserved"},
		{name: "action-fail", inAction: true, argv: []string{"action-fail", "--", "nope"}, check: func(t *testing.T, s *State) {
			if !s.Action.Failed || s.Action.Message != "nope" {
				t.Errorf("%+v", s.Action)
			}
		}},
		{name: "action-log needs message", inAction: true, argv: []string{"action-log"}, code: 2, err: "no message"},
		{name: "juju-log invalid level", argv: []string{"juju-log", "--log-level", "LOUD", "--", "hi"}, check: func(t *testing.T, s *State) {
			if len(s.Logs) != 2 || s.Logs[1] != (LogLine{"INFO", "hi"}) {
				t.Errorf("%+v", s.Logs)
			}
		}},
		{name: "open-port pending until exit 0", argv: []string{"open-port", "9765"}, check: func(t *testing.T, s *State) {
			if len(s.OpenedPorts) != 0 || len(s.PendingPorts) != 1 || s.PendingPorts[0] != "+9765/tcp" {
				t.Errorf("%+v %+v", s.OpenedPorts, s.PendingPorts)
			}
		}},
		{name: "open-port range", argv: []string{"open-port", "1-2/tcp"}, code: 1, err: "ranges are not supported"},
		{name: "open-port out of range", argv: []string{"open-port", "70000"}, code: 1, err: "range [1, 65535]"},
		{name: "secret-get not granted", argv: []string{"secret-get", "--format=json", "secret:d0nhl5nmp25c7f2pu3a0"}, code: 1, err: "permission denied"},
		{name: "secret-get", argv: []string{"secret-get", "--format=json", "secret:d0nhl5nmp25c7f2pu3b0", "--refresh"}, out: `{"k":"v"}`},
		{name: "secret-get peek and refresh", argv: []string{"secret-get", "secret:d0nhl5nmp25c7f2pu3b0", "--peek", "--refresh"}, code: 2, err: "not both"},
		// Juju's status-set takes one message argument; more are "unrecognized args".
		{name: "status-set extra args", argv: []string{"status-set", "active", "two", "words"}, code: 2, err: "unrecognized args"},
		// Juju rejects a reserved key in any segment, and accepts action-set with no pairs.
		{name: "action-set reserved segment", inAction: true, argv: []string{"action-set", "a.stdout=1"}, code: 2, err: "reserved"},
		{name: "action-set reserved prefix", inAction: true, argv: []string{"action-set", "stderr.x=1"}, code: 2, err: "reserved"},
		{name: "action-set no pairs", inAction: true, argv: []string{"action-set"}},
		{name: "action-get extra args", inAction: true, argv: []string{"action-get", "--format=json", "format", "x"}, code: 2, err: "unrecognized args"},
		{name: "config-get --all with key", argv: []string{"config-get", "--all", "log-level"}, code: 2, err: "cannot use argument --all together with key"},
		// secret-get knows only yaml and json, and needs a valid secret URI.
		{name: "secret-get smart format", argv: []string{"secret-get", "--format=smart", "secret:d0nhl5nmp25c7f2pu3b0"}, code: 2, err: "unknown format"},
		{name: "secret-get bad uri", argv: []string{"secret-get", "--format=json", "not-a-secret"}, code: 2, err: "not valid"},
		{name: "application-version-set extra args", argv: []string{"application-version-set", "1", "2"}, code: 2, err: "unrecognized args"},
		{name: "application-version-set", argv: []string{"application-version-set", "--", "1.2.3"}, check: func(t *testing.T, s *State) {
			if s.AppVersion != "1.2.3" {
				t.Errorf("%q", s.AppVersion)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reset(tc.leader, tc.inAction)
			var out, errb bytes.Buffer
			code := Main(tc.argv, &out, &errb)
			if code != tc.code || !strings.Contains(out.String(), tc.out) || !strings.Contains(errb.String(), tc.err) {
				t.Fatalf("exit %d stdout %q stderr %q; want exit %d, stdout ~%q, stderr ~%q", code, out.String(), errb.String(), tc.code, tc.out, tc.err)
			}
			st, err := Load(path)
			if err != nil {
				t.Fatal(err)
			}
			if len(st.Calls) != 1 {
				t.Errorf("calls %v", st.Calls)
			}
			if tc.check != nil {
				tc.check(t, st)
			}
		})
	}
}
