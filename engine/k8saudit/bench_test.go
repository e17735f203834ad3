package k8saudit

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/falco-k8s/falco-k8s/internal/testshared"
)

// hotFields are the fields the upstream k8s_audit rules use most, in rough order of use.
var hotFields = []string{
	"ka.target.resource", "ka.user.name", "ka.target.name", "ka.target.namespace",
	"ka.response.code", "ka.auth.reason", "ka.auth.decision", "ka.verb", "ka.uri",
	"ka.req.pod.containers.image.repository", "ka.resp.name", "ka.req.pod.containers.image",
	"ka.req.configmap.obj", "ka.target.subresource", "ka.req.role.rules", "jevt.value[/stage]",
	"ka.req.pod.containers.privileged", "ka.req.pod.host_network", "ka.req.pod.volumes.hostpath",
	"ka.user.groups", "ka.uri.param[command]",
}

func compileFields(tb testing.TB, fields []string) []Extractor {
	tb.Helper()
	xs := make([]Extractor, len(fields))
	for i, f := range fields {
		name, arg, hasArg := splitField(f)
		x, err := Compile(name, arg, hasArg)
		if err != nil {
			tb.Fatal(err)
		}
		xs[i] = x
	}
	return xs
}

// sampleEvents returns real audit events, one compact JSON object each: the Falco regression
// traces and the kube-apiserver 1.31 batches, or an inline pod event when those are absent
// (fallback true; with CI=true their absence fails instead, internal/testshared).
func sampleEvents(tb testing.TB) (events [][]byte, fallback bool) {
	tb.Helper()
	var out [][]byte
	var d Decoder
	collect := func(payload []byte) {
		d.Decode(payload, func(ev *Event) error {
			out = append(out, bytes.Clone(ev.Raw()))
			return nil
		})
	}
	tracesDir, _ := testshared.Optional(tb, "testdata", "falco-k8s-audit", "traces")
	files, _ := filepath.Glob(filepath.Join(tracesDir, "*.json"))
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(bytes.NewReader(data))
		sc.Buffer(nil, 16<<20)
		for sc.Scan() {
			collect(sc.Bytes())
		}
	}
	batchesFile, _ := testshared.Optional(tb, "testdata", "apiserver-1.31", "audit-batches.jsonl")
	if data, err := os.ReadFile(batchesFile); err == nil {
		for _, line := range bytes.Split(data, []byte("\n")) {
			collect(line)
		}
	}
	if len(out) == 0 {
		collect([]byte(podEvent))
		return out, true
	}
	return out, false
}

// reportFallback puts the fallback into a benchmark's printed figures, so a number measured on
// the one inline event is never mistaken for one measured on the real traces. Call it after
// the loop (b.Loop and ResetTimer clear reported metrics).
func reportFallback(b *testing.B, fallback bool) {
	if fallback {
		b.ReportMetric(1, "fallback-inline-event")
	}
}

// eventList builds an EventList payload of n events cycling through the samples, formatted
// like kube-apiserver's batch webhook bodies.
func eventList(samples [][]byte, n int) []byte {
	var b bytes.Buffer
	b.WriteString(`{"kind":"EventList","apiVersion":"audit.k8s.io/v1","metadata":{},"items":[`)
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(samples[i%len(samples)])
	}
	b.WriteString(`]}`)
	return b.Bytes()
}

func BenchmarkDecode(b *testing.B) {
	samples, fallback := sampleEvents(b)
	defer reportFallback(b, fallback)
	payload := eventList(samples, 400)
	d := Decoder{MaxEventSize: DefaultMaxEventSize}
	count := func(*Event) error { return nil }
	d.Decode(payload, count) // the parser's value cache reaches its size on the first payload
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	for b.Loop() {
		if n, err := d.Decode(payload, count); err != nil || n != 400 {
			b.Fatal(n, err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*400), "ns/event")
}

func BenchmarkDecodeAndExtractHot(b *testing.B) {
	samples, fallback := sampleEvents(b)
	defer reportFallback(b, fallback)
	payload := eventList(samples, 400)
	xs := compileFields(b, hotFields)
	d := Decoder{MaxEventSize: DefaultMaxEventSize}
	var dst [][]byte
	run := func(ev *Event) error {
		for _, x := range xs {
			dst, _ = x(ev, dst[:0])
		}
		return nil
	}
	d.Decode(payload, run)
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	for b.Loop() {
		d.Decode(payload, run)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*400), "ns/event")
}

// BenchmarkExtractHot measures extraction alone: the 21 hot fields on each sample event.
func BenchmarkExtractHot(b *testing.B) {
	var evs []*Event
	samples, fallback := sampleEvents(b)
	defer reportFallback(b, fallback)
	for _, s := range samples {
		evs = append(evs, mustEvent(b, string(s)))
	}
	xs := compileFields(b, hotFields)
	var dst [][]byte
	b.ReportAllocs()
	for b.Loop() {
		for _, ev := range evs {
			ev.reset(ev.root) // what the Decoder does between events
			for _, x := range xs {
				dst, _ = x(ev, dst[:0])
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(evs)), "ns/event")
}

// TestSteadyStateAllocs pins the zero-allocation property of decoding plus extraction of
// every field (except the few with documented slow paths) on realistic payloads.
func TestSteadyStateAllocs(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("alloc counting needs a normal, full build")
	}
	samples, _ := sampleEvents(t)
	payload := eventList(samples, 400)
	all := compileAll(t)
	var xs []Extractor
	for _, x := range all {
		xs = append(xs, x)
	}
	hot := compileFields(t, hotFields)
	d := Decoder{MaxEventSize: DefaultMaxEventSize}
	var dst [][]byte
	for name, fs := range map[string][]Extractor{"decode": nil, "hot fields": hot, "all fields": xs} {
		run := func(ev *Event) error {
			for _, x := range fs {
				dst, _ = x(ev, dst[:0])
			}
			return nil
		}
		d.Decode(payload, run) // warm up parser cache, arenas and dst
		if allocs := testing.AllocsPerRun(20, func() { d.Decode(payload, run) }); allocs != 0 {
			t.Errorf("%s: %v allocs per 400-event payload", name, allocs)
		}
	}
}
