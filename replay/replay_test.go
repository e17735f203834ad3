package replay

import (
	"strings"
	"testing"

	"github.com/falco-k8s/falco-k8s/engine"
)

const rulesYAML = `
- rule: pod created
  desc: d
  condition: ka.verb=create and ka.target.resource=pods
  output: pod %ka.target.name created
  priority: WARNING
  source: k8s_audit
`

func event(name string) string {
	return `{"kind":"Event","apiVersion":"audit.k8s.io/v1","auditID":"` + name + `","stage":"ResponseComplete","verb":"create","objectRef":{"resource":"pods","name":"` + name + `","namespace":"default"},"stageTimestamp":"2024-01-02T03:04:05Z"}`
}

// Input tells JSON Lines from one pretty-printed document and reports what is not an event.
func TestInput(t *testing.T) {
	rs, _, err := engine.Load([]engine.File{{Name: "r.yaml", Content: []byte(rulesYAML)}}, engine.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	pretty := strings.ReplaceAll(`{"kind":"EventList","items":[`+event("a")+`,`+event("b")+`]}`, `,"`, ",\n  \"")
	for _, tc := range []struct {
		name, in   string
		alerts     int
		stderrWant string
	}{
		{name: "json lines", in: event("a") + "\n\n" + event("b") + "\n", alerts: 2, stderrWant: "Events read: 2"},
		{name: "pretty-printed document", in: pretty, alerts: 2, stderrWant: "Events read: 2"},
		{name: "not an event", in: `{"kind":"Pod"}` + "\n" + event("c"), alerts: 1, stderrWant: "<stdin>:1: data not recognized as a k8s audit event"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb strings.Builder
			r := New(rs, Options{Hostname: "h"}, &out, &errb)
			if err := r.Input(strings.NewReader(tc.in), "-"); err != nil {
				t.Fatal(err)
			}
			if err := r.Flush(); err != nil {
				t.Fatal(err)
			}
			r.Summary()
			if n := strings.Count(out.String(), "created\n"); n != tc.alerts || !strings.Contains(errb.String(), tc.stderrWant) {
				t.Fatalf("alerts %d (want %d)\nstdout:\n%s\nstderr:\n%s", n, tc.alerts, out.String(), errb.String())
			}
		})
	}
}
