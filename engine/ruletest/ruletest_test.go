package ruletest

import (
	"errors"
	"strings"
	"testing"

	"github.com/falco-k8s/falco-k8s/engine"
)

const rules = `- rule: Pod Created
  desc: d
  condition: ka.verb = create and ka.target.resource = pods
  output: pod %ka.target.name
  priority: WARNING
  source: k8s_audit
- rule: Pod Deleted
  desc: d
  condition: ka.verb = delete and ka.target.resource = pods
  output: pod %ka.target.name
  priority: WARNING
  source: k8s_audit
`

func event(verb, id string) string {
	return `{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"` + id + `","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/default/pods","verb":"` + verb + `","user":{"username":"admin"},"objectRef":{"resource":"pods","namespace":"default","name":"p","apiVersion":"v1"},"responseStatus":{"code":201},"stageTimestamp":"2024-05-01T10:00:00.123456Z"}`
}

func TestCheck(t *testing.T) {
	rs, _, err := engine.Load([]engine.File{{Name: "r.yaml", Content: []byte(rules)}}, engine.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	events := map[string][]byte{
		"tests/events/create.jsonl": []byte(event("create", "a") + "\n" + event("get", "b") + "\n"),
		"tests/events/delete.json":  []byte(`{"kind":"EventList","apiVersion":"audit.k8s.io/v1","items":[` + event("delete", "c") + `]}`),
		"tests/events/empty.json":   []byte(`{"kind":"EventList","apiVersion":"audit.k8s.io/v1","items":[]}`),
		"tests/events/junk.json":    []byte("{\"kind\":\"Event\"\nnot json\n"),
	}
	cases := []struct {
		name  string
		tests string // tests/cases.yaml
		want  string // "" passes; else a substring of the error
	}{
		{"no tests", "", ""},
		{"pass", "- name: create\n  events: tests/events/create.jsonl\n  fire: [Pod Created]\n  no_fire: [Pod Deleted]\n" +
			"- name: delete\n  events: tests/events/delete.json\n  fire: [Pod Deleted]\n", ""},
		{"did not fire", "- name: create\n  events: tests/events/create.jsonl\n  fire: [Pod Deleted]\n",
			`artifact test "create" (tests/cases.yaml) failed: rule "Pod Deleted" did not fire on any of the 2 events`},
		{"fired", "- name: create\n  events: tests/events/create.jsonl\n  no_fire: [Pod Created]\n",
			`rule "Pod Created" fired on event 1, expected not to`},
		{"unknown rule", "- name: x\n  events: tests/events/create.jsonl\n  fire: [Nope]\n", `rule "Nope" is not in the ruleset`},
		{"missing events", "- name: x\n  events: tests/events/none.json\n  fire: [Pod Created]\n", "events tests/events/none.json: no such file"},
		{"no events", "- name: x\n  events: tests/events/empty.json\n  fire: [Pod Created]\n", "holds no audit event"},
		{"junk events", "- name: x\n  events: tests/events/junk.json\n  fire: [Pod Created]\n", "events tests/events/junk.json line 1"},
		{"two failures", "- name: a\n  events: tests/events/create.jsonl\n  fire: [Pod Deleted]\n- name: b\n  events: tests/events/delete.json\n  fire: [Pod Created]\n",
			"(and 1 more failed of 2)"},
		{"unknown key", "- name: x\n  events: tests/events/create.jsonl\n  fires: [Pod Created]\n", "field fires not found"},
		{"no name", "- events: tests/events/create.jsonl\n  fire: [Pod Created]\n", "case 1: name is required"},
		{"no expectation", "- name: x\n  events: tests/events/create.jsonl\n", "expects nothing"},
		{"escaping path", "- name: x\n  events: ../etc/passwd\n  fire: [Pod Created]\n", "want a clean relative path"},
		{"not a list", "name: x\n", "want a list"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			files := map[string][]byte{"r.yaml": []byte(rules), "tests/events/nested/ignored.yaml": []byte("not: [a list")}
			for k, v := range events {
				files[k] = v
			}
			if c.tests != "" {
				files["tests/cases.yaml"] = []byte(c.tests)
			}
			err := Check(rs, files)
			if c.want == "" {
				if err != nil {
					t.Fatalf("unexpected: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err %v, want %q", err, c.want)
			}
			var fe *FailedError
			if strings.Contains(c.want, "rule ") && !errors.As(err, &fe) {
				t.Fatalf("not a FailedError: %T", err)
			}
		})
	}
}

func TestIsTestFile(t *testing.T) {
	for p, want := range map[string]bool{"tests/a.yaml": true, "tests/b.yml": true, "tests/x/a.yaml": false, "a.yaml": false, "tests/a.json": false} {
		if IsTestFile(p) != want {
			t.Errorf("IsTestFile(%q) = %v", p, !want)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("- name: x\n  events: tests/e.json\n  fire: [A]\n"))
	f.Add([]byte("[]"))
	f.Fuzz(func(t *testing.T, b []byte) {
		cases, err := Parse("f.yaml", b)
		if err != nil {
			return
		}
		for _, c := range cases {
			if c.Name == "" || c.Events == "" || strings.HasPrefix(c.Events, "../") || strings.HasPrefix(c.Events, "/") {
				t.Fatalf("accepted invalid case %+v", c)
			}
		}
	})
}
