package agent

import (
	"encoding/json"
	"testing"

	"github.com/falco-k8s/falco-k8s/engine"
)

// FuzzParseFalcoAlerts: any body is refused with an error or yields alerts that carry a rule, an
// output, a known priority and valid compact JSON, and rendering them for the outputs (with
// extra output fields) keeps valid JSON.
func FuzzParseFalcoAlerts(f *testing.F) {
	f.Add([]byte(`{"hostname":"vm","output":"15:00:00.100000000: Warning cm created","output_fields":{"evt.time":1796310000100000000,"ka.user.name":"alice"},"priority":"Warning","rule":"ConfigMap Created","source":"k8s_audit","tags":[],"time":"2026-12-03T15:00:00.100000000Z"}`))
	f.Add([]byte(`{"output":"a","priority":"Critical","rule":"Falco internal: hot restart failure","source":"internal","output_fields":{}}` + "\n" + `{"output":"b","priority":"debug","rule":"r"}`))
	f.Add([]byte(`{"rule":"x"}`))
	f.Add([]byte(`[1,2]`))
	f.Add([]byte(`{"output":"a","priority":"nope","rule":"r"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		got, err := ParseFalcoAlerts(body)
		if err != nil {
			if got != nil {
				t.Fatal("alerts with an error")
			}
			return
		}
		extra := []engine.AlertField{{Key: "juju_unit", Value: "falco-k8s/0"}}
		for _, al := range got {
			if al.Rule == "" || al.Output == "" || al.Priority.String() == "" || !json.Valid(al.raw) {
				t.Fatalf("bad alert %+v", al)
			}
			if o := al.outputAlert(extra); !json.Valid(o.JSON) || o.Rule != al.Rule {
				t.Fatalf("output alert %q", o.JSON)
			}
		}
	})
}
