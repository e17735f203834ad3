package engine

import (
	"bytes"
	"encoding/json"
	"sort"
	"strings"
	"testing"
	"time"
)

// Alert.JSON, written by hand, and AlertJSON, the type everyone else encodes and decodes, are
// the same shape: every key known, in the same order, values unchanged through a round trip.
func TestAlertJSONShape(t *testing.T) {
	a := &Alert{
		Time: time.Date(2024, 1, 2, 3, 4, 5, 6, time.UTC), Rule: `r "quoted" <&>`, Priority: PriorityWarning,
		Source: SourceK8sAudit, Tags: []string{"k8s", "T1611"}, Hostname: "h", Output: "o\tx",
		Fields: []AlertField{{"evt.time", int64(1704164645000000006)}, {"ka.target.name", "p"},
			{"ka.user.groups", []string{"a", "b"}}, {"ka.req.pod.host_network", true}, {"ka.missing", nil}, {"ka.size", uint64(7)}},
	}
	// Fields are sorted by key, as the engine keeps them.
	sort.Slice(a.Fields, func(i, j int) bool { return a.Fields[i].Key < a.Fields[j].Key })
	raw := a.JSON()
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	dec.UseNumber()
	var doc AlertJSON
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("Alert.JSON has a key AlertJSON lacks: %v\n%s", err, raw)
	}
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(doc); err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSuffix(b.String(), "\n"); got != string(raw) {
		t.Fatalf("shapes differ:\nAlert.JSON: %s\nAlertJSON:  %s", raw, got)
	}
	if doc.Time != a.Time.Format(AlertTimeLayout) {
		t.Fatalf("time %q", doc.Time)
	}
}
