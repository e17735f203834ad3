package engine

import (
	"testing"

	"github.com/falco-k8s/falco-k8s/engine/k8saudit"
)

// TestOutputArgumentFallback: a bare %field whose argument libsinsp's formatter refuses is the
// longest prefix that is a field on its own, the rest literal; the parenthesised form and a
// prefix that is no field stay errors. Expected texts are Falco 0.44.1's on the same event.
func TestOutputArgumentFallback(t *testing.T) {
	ev, err := k8saudit.NewEvent([]byte(`{"kind":"Event","auditID":"a1","requestURI":"/x?a=b","verb":"create",` +
		`"requestObject":{"spec":{"containers":[{"image":"i0"},{"image":"i1"}]}},"stageTimestamp":"2018-10-25T13:58:49.736141Z"}`))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ output, want string }{
		{"A=%ka.verb[x]", "A=create[x]"},
		{"B=%ka.req.pod.containers.image[x]", "B=(i0,i1)[x]"},
		{"C=%ka.req.pod.containers.image[01]", "C=(i0,i1)[01]"},
		{"D=%ka.uri.param[]", "D=/x?a=b.param[]"},
		{"E=%ka.req.pod.containers.image[1]F", "E=(i1)F"},
		{"H=%ka.req.pod.containers.image[18446744073709551616]", "H=(i0,i1)[18446744073709551616]"},
		{"I=%ka.uri.param x", "I=/x?a=b.param x"},
		{"N=%ka.verb[1", "N=create[1"},
		{"O=%12ka.verb[x]z", "O=create      [x]z"},
		{"Q=%ka.uri.param[a", "Q=/x?a=b.param[a"},
		{"G=%(ka.req.pod.containers.image[x])", ""},
		{"J=%json.value[] y", ""},
		{"K=%toupper(ka.verb[x])", ""},
		{"R=%(ka.verb", ""},
		{"T=%ka.verb %12", ""}, // "formatting cannot end with a number", whatever skip-if-unknown-filter says
	} {
		doc := "- rule: r\n  desc: d\n  condition: ka.verb=create\n  output: '" + tc.output + "'\n  priority: WARNING\n  source: k8s_audit\n"
		rs, _, err := Load([]File{{Name: "r.yaml", Content: []byte(doc)}}, DefaultOptions())
		if tc.want == "" {
			if err == nil {
				t.Errorf("%s: loaded, Falco refuses it", tc.output)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.output, err)
			continue
		}
		e := rs.NewEvaluator()
		got := ""
		e.Match(ev, false, func(r *Rule) { got = e.Alert(r, "h").Message })
		if got != tc.want {
			t.Errorf("%s: %q, want %q", tc.output, got, tc.want)
		}
	}
}

// TestTransformedListNeverMatches: Falco 0.44.1 never matches a transformed list field compared
// with in/intersects to values (tolower(["RBAC"]) in (rbac) is false), though the transformed
// values exist and render; `not` of such a check is true.
func TestTransformedListNeverMatches(t *testing.T) {
	ev, err := k8saudit.NewEvent([]byte(`{"kind":"Event","auditID":"a1","verb":"","requestObject":{"rules":[{"apiGroups":["RBAC"]}]},"stageTimestamp":"2018-10-25T13:58:49.736141Z"}`))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		cond string
		want bool
	}{
		{"ka.req.role.rules.apiGroups in (RBAC)", true},
		{"tolower(ka.req.role.rules.apiGroups) in (rbac)", false},
		{"toupper(ka.req.role.rules.apiGroups) intersects (RBAC, x)", false},
		{"not tolower(ka.req.role.rules.apiGroups) in (rbac)", true},
		{"tolower(ka.req.role.rules.apiGroups) exists", true},
		{"tolower(ka.verb) in ('')", true},
	} {
		doc := "- rule: r\n  desc: d\n  condition: \"" + tc.cond + "\"\n  output: o\n  priority: WARNING\n  source: k8s_audit\n"
		rs, _, err := Load([]File{{Name: "r.yaml", Content: []byte(doc)}}, DefaultOptions())
		if err != nil {
			t.Fatalf("%s: %v", tc.cond, err)
		}
		if got := rs.NewEvaluator().Match(ev, false, nil) == 1; got != tc.want {
			t.Errorf("%s: matched %v, want %v", tc.cond, got, tc.want)
		}
	}
}

// TestListRenderLeadingEmpty: libsinsp writes the comma only once something was written, so
// leading empty values vanish from the text (Falco 0.44.1: ["a","",""] is "(a,,)").
func TestListRenderLeadingEmpty(t *testing.T) {
	ev, err := k8saudit.NewEvent([]byte(`{"kind":"Event","auditID":"1","verb":"get","user":{"groups":["a","",""]},` +
		`"requestObject":{"spec":{"containers":[{"image":""},{"image":"x"}]}},"stageTimestamp":"2018-10-25T13:58:49.736141Z"}`))
	if err != nil {
		t.Fatal(err)
	}
	doc := "- rule: r\n  desc: d\n  condition: ka.verb=get\n  output: '%ka.user.groups|%ka.req.pod.containers.image'\n  priority: INFO\n  source: k8s_audit\n"
	rs, _, err := Load([]File{{Name: "r.yaml", Content: []byte(doc)}}, DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	e := rs.NewEvaluator()
	got := ""
	e.Match(ev, false, func(r *Rule) { got = e.Alert(r, "h").Message })
	if want := "(a,,)|(x)"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
