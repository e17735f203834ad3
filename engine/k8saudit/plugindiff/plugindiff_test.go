package plugindiff

import (
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/falco-k8s/falco-k8s/engine/internal/auditgen"
)

const sharedTestdata = "../../../../shared/testdata"

// defaultEvents is the seeded corpus: the shared traces and kube-apiserver batches, then
// mutations up to this many payloads (PLUGINDIFF_EVENTS, PLUGINDIFF_SEED explore further).
const defaultEvents = 3000

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return v
	}
	return def
}

func base(tb testing.TB) [][]byte {
	tb.Helper()
	b, err := auditgen.BaseEvents(sharedTestdata)
	if err != nil {
		if os.Getenv("CI") == "true" {
			tb.Fatalf("shared test data: %v", err)
		}
		tb.Skipf("shared test data: %v", err)
	}
	return b
}

// hostile payloads the mutator does not write: raw control characters and ill-formed UTF-8
// inside strings, escaped keys the plugin looks up, duplicate keys, wrong types at the top,
// nesting at fastjson's depth limit, and the payload shapes (arrays, EventLists) at their edges.
var hostile = []string{
	`{"kind":"Event","auditID":"a","stageTimestamp":"2024-01-02T03:04:05Z","verb":"cr\u0065ate","user":{"us\u0065rname":"x\u0000y","groups":["a\u0000","\u0000b",""]}}`,
	"{\"kind\":\"Event\",\"auditID\":\"a\",\"stageTimestamp\":\"2024-01-02T03:04:05Z\",\"user\":{\"username\":\"t\tab\x01\x7f\xff\xc3\"}}",
	`{"kind":"Event","auditID":"a","auditID":"b","stageTimestamp":"2024-01-02T03:04:05Z","verb":"get","verb":"list"}`,
	`{"kind":"Event","\u0061uditID":"a","stageTimestamp":"2024-01-02T03:04:05Z","objectRef":{"res\u006furce":"pods","name":"p"},"responseObject":{"metadata":{"name":"n"}}}`,
	`{"kind":"Event","auditID":null,"stageTimestamp":"2024-01-02T03:04:05Z","requestURI":"/api?a=1&a=2&b=%zz&c=%41&=e&d","annotations":{"authorization.k8s.io/decision":7}}`,
	`{"kind":"Event","auditID":"a","stageTimestamp":"1969-12-31T23:59:59.999999999Z"}`,
	`{"kind":"Event","auditID":"a","stageTimestamp":"0001-01-01T00:00:00Z"}`,
	`{"kind":"Event","auditID":"a","stageTimestamp":"2262-04-12T00:00:00Z"}`,
	`{"kind":"Event","auditID":"a","stageTimestamp":"2024-02-30T00:00:00Z"}`,
	`{"kind":"Event","auditID":"a","stageTimestamp":1700000000}`,
	`{"kind":"EventList","items":[]}`,
	`{"kind":"EventList","items":{}}`,
	`{"kind":"EventList","items":[{"kind":"Event","auditID":"1","stageTimestamp":"2024-01-02T03:04:05Z"},{"auditID":"2"},{"auditID":"3","stageTimestamp":"2024-01-02T03:04:05Z"}]}`,
	`[{"kind":"Event","auditID":"1","stageTimestamp":"2024-01-02T03:04:05Z"},[{"kind":"Event","auditID":"2","stageTimestamp":"2024-01-02T03:04:05Z"}]]`,
	`[{"kind":"Event","auditID":"1","stageTimestamp":"2024-01-02T03:04:05Z"},{"kind":"Other"}]`,
	`[]`, `{}`, `null`, `"x"`, `{"kind":"Ev\u0065nt","auditID":"1","stageTimestamp":"2024-01-02T03:04:05Z"}`,
	`{"kind":"Event","auditID":"a","stageTimestamp":"2024-01-02T03:04:05Z","requestObject":{"spec":{"containers":[null,1,"x",{"image":"a:b@c","securityContext":{"privileged":"true","capabilities":{"add":["A",null,2]}},"ports":[{"hostPort":null},{"containerPort":{}},7],"command":["a",1],"args":[]}],"volumes":[null,{"hostPath":{"path":"/etc"}},{"name":"n","hostPath":{}},[],"v"],"securityContext":{"runAsUser":"0","supplementalGroups":[1,"2",null]}},"rules":[{"verbs":["\u0067et"],"resources":"*"},null,{"apiGroups":[[]]}],"subjects":[{"kind":"User","name":1},{"kind":"ServiceAccount","name":"s"},{"kind":"ServiceAccount","name":"t","namespace":null},7]}}`,
	`{"kind":"Event","auditID":"a","stageTimestamp":"2024-01-02T03:04:05Z","requestObject":{"subjects":{"kind":"User"}},"sourceIPs":"1.2.3.4","user":{"groups":"g"}}`,
	`{"kind":"Event","auditID":"a","stageTimestamp":"2024-01-02T03:04:05Z","objectRef":{"res\u006furce":"pods","subresource":[]},"responseObject":{"metadata":{"name":"p"}}}`,
	`{"kind":"Event","auditID":"a","stageTimestamp":"2024-01-02T03:04:05Z","objectRef":{"resource":"pods","subresource":7},"responseObject":{"metadata":{"name":{"x":1}}}}`,
	`{"kind":"Event","auditID":"a","stageTimestamp":"2024-01-02T03:04:05Z","objectRef":{"resource":["pods"],"subresource":""},"responseObject":{"metadata":{"name":"p"}}}`,
	`{"kind":"Event","auditID":"a","stageTimestamp":"2024-01-02T03:04:05Z","requestObject":` + strings.Repeat(`{"a":`, 290) + `1` + strings.Repeat(`}`, 290) + `}`,
	`{"kind":"Event","auditID":"a","stageTimestamp":"2024-01-02T03:04:05Z","requestObject":` + strings.Repeat(`[`, 400) + strings.Repeat(`]`, 400) + `}`,
	`{"kind":"Event","auditID":"a","stageTimestamp":"2024-01-02T03:04:05Z","n":-0,"f":1e400,"g":18446744073709551616,"h":NaN,"i":"\ud800","j":"\/\u2028"}`,
	`{"kind":"Event","auditID":"a","stageTimestamp":"2024-01-02T03:04:05Z","big":"` + strings.Repeat("x", 270000) + `"}`,
}

// TestFieldsSeeded compares every declared field of the real plugins with the engine on the
// seeded corpus; CI runs it through `make test`.
func TestFieldsSeeded(t *testing.T) {
	payloads := auditgen.Generate(base(t), envInt("PLUGINDIFF_EVENTS", defaultEvents), uint64(envInt("PLUGINDIFF_SEED", 15)))
	for _, h := range hostile {
		payloads = append(payloads, []byte(h))
	}
	var total Result
	for i, p := range payloads {
		r := Compare(p)
		for j, d := range r.Diffs {
			if j == 3 {
				t.Errorf("payload %d: ... %d more", i, len(r.Diffs)-j)
				break
			}
			t.Errorf("payload %d: %v\n  payload: %.300s", i, d, p)
		}
		total.Add(r)
		if len(total.Diffs) > 60 {
			t.Fatal("too many differences")
		}
	}
	t.Logf("%d payloads, %d events, %d field extractions compared, %d plugin panics %v, %d differences",
		len(payloads), total.Events, total.Extractions, total.Panics, total.PanicFields, len(total.Diffs))
	if total.Events < len(payloads)/2 || total.Extractions < 100*total.Events {
		t.Errorf("the corpus compared too little: %d events, %d extractions", total.Events, total.Extractions)
	}
}

// FuzzFields: any payload, every declared field, the plugins against the engine.
func FuzzFields(f *testing.F) {
	b := base(f)
	for _, p := range b {
		f.Add(p)
	}
	for _, p := range auditgen.Generate(b[:1], 40, 1)[1:] {
		f.Add(p)
	}
	for _, h := range hostile[:len(hostile)-1] {
		f.Add([]byte(h))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		if len(payload) > 1<<20 {
			return
		}
		for _, d := range Compare(payload).Diffs {
			t.Error(d)
		}
	})
}
