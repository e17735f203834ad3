package agent

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	auditinternal "k8s.io/apiserver/pkg/apis/audit"
	auditv1 "k8s.io/apiserver/pkg/apis/audit/v1"
	"k8s.io/apiserver/pkg/audit"
	utilwebhook "k8s.io/apiserver/pkg/util/webhook"
	"k8s.io/apiserver/plugin/pkg/audit/webhook"

	"github.com/falco-k8s/falco-k8s/internal/testshared"
)

// benchRules returns the overrides selecting Falco's upstream k8s audit ruleset (../shared)
// when present, else the built-in one (with CI=true its absence fails, internal/testshared).
func benchRules(b *testing.B) ([]string, string) {
	if path, ok := testshared.Optional(b, "testdata", "upstream", "k8s_audit_rules.latest.yaml"); ok {
		return []string{"rules.builtin=false", "rules.files=[" + path + "]"}, "upstream"
	}
	return []string{"rules.builtin=true", "rules.files=[]"}, "builtin"
}

// reportRules puts a fallback to the built-in rules into the benchmark's printed figures, so
// they are never read as figures for the upstream ruleset. Deferred: ResetTimer clears metrics.
func reportRules(b *testing.B, name string) {
	if name != "upstream" {
		b.ReportMetric(1, "fallback-"+name+"-rules")
	}
}

// mixedBatch is a realistic 400-event batch: pod creates (RequestResponse, a tenth privileged),
// configmap and secret traffic, exec, service creates and Metadata-level reads.
func mixedBatch(n int) []*auditinternal.Event {
	out := make([]*auditinternal.Event, 0, n)
	for i := range n {
		var ev *auditinternal.Event
		switch i % 10 {
		case 0, 1, 2, 3:
			ev = podCreate("b", i)
			if i%40 != 0 {
				ev.RequestObject.Raw = []byte(strings.Replace(string(ev.RequestObject.Raw), `"privileged":true`, `"privileged":false`, 1))
			}
		case 4, 5:
			ev = metaEvent(i, "configmaps", "create", "kube-system")
			ev.Level = auditinternal.LevelRequestResponse
			ev.RequestObject = &runtime.Unknown{Raw: []byte(`{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"cm","namespace":"kube-system"},"data":{"aws_access_key_id":"AKIA...","config":"x"}}`), ContentType: runtime.ContentTypeJSON}
		case 6:
			ev = metaEvent(i, "secrets", "get", "default")
		case 7:
			ev = metaEvent(i, "pods", "create", "default")
			ev.ObjectRef.Subresource = "exec"
			ev.RequestURI = "/api/v1/namespaces/default/pods/p/exec?command=sh&container=c&stdin=true&tty=true"
		case 8:
			ev = metaEvent(i, "services", "create", "default")
			ev.Level = auditinternal.LevelRequestResponse
			ev.RequestObject = &runtime.Unknown{Raw: []byte(`{"kind":"Service","apiVersion":"v1","metadata":{"name":"s","namespace":"default"},"spec":{"type":"NodePort","ports":[{"port":80,"nodePort":30080}]}}`), ContentType: runtime.ContentTypeJSON}
		default:
			ev = metaEvent(i, "deployments", "patch", "default")
		}
		out = append(out, ev)
	}
	return out
}

func metaEvent(i int, resource, verb, ns string) *auditinternal.Event {
	now := metav1.NewMicroTime(time.Now())
	return &auditinternal.Event{
		Level: auditinternal.LevelMetadata, AuditID: types.UID(fmt.Sprintf("m-%d", i)), Stage: auditinternal.StageResponseComplete,
		RequestURI: fmt.Sprintf("/api/v1/namespaces/%s/%s", ns, resource), Verb: verb,
		User:      podCreate("x", 1).User,
		SourceIPs: []string{"10.0.0.8"}, UserAgent: "controller/v1.31.4",
		ObjectRef:      &auditinternal.ObjectReference{Resource: resource, Namespace: ns, Name: "obj", APIVersion: "v1"},
		ResponseStatus: &metav1.Status{Code: 200}, RequestReceivedTimestamp: now, StageTimestamp: now,
		Annotations: map[string]string{"authorization.k8s.io/decision": "allow"},
	}
}

// directClient is kube-apiserver's webhook backend without the buffering layer, so the benchmark
// controls batch size and concurrency and can time each POST (which the buffered backend hides).
func directClient(b *testing.B, dir, url string, caPEM []byte) audit.Backend {
	b.Helper()
	c := newAPIServerClient(b, dir, url, caPEM, "s3cret-token", 400, 100*time.Millisecond)
	c.shutdown()
	wb, err := webhook.NewBackend(filepath.Join(dir, "webhook-kubeconfig.yaml"), auditv1.SchemeGroupVersion, utilwebhook.DefaultRetryBackoffWithInitialDelay(100*time.Millisecond), nil)
	if err != nil {
		b.Fatal(err)
	}
	return wb
}

// latencies collects the time each batch POST takes, from concurrent posters.
type latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

// post sends one batch with kube-apiserver's webhook client and records how long it took.
func (l *latencies) post(b *testing.B, client audit.Backend, events []*auditinternal.Event) {
	t0 := time.Now()
	if !client.ProcessEvents(events...) {
		b.Error("batch not delivered")
	}
	d := time.Since(t0)
	l.mu.Lock()
	l.d = append(l.d, d)
	l.mu.Unlock()
}

func (l *latencies) report(b *testing.B) {
	b.ReportMetric(float64(percentile(l.d, 0.5).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(percentile(l.d, 0.99).Microseconds())/1000, "p99-ms")
}

func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	return d[min(len(d)-1, int(float64(len(d))*p))]
}

// BenchmarkWebhookThroughput posts 400-event batches with kube-apiserver's webhook client (4 in
// flight, as the buffered backend's async delegate does) over TLS with a bearer token, and
// reports events/s until the last event is evaluated plus p50/p99 POST latency (ack time).
func BenchmarkWebhookThroughput(b *testing.B) {
	overrides, name := benchRules(b)
	b.Logf("ruleset: %s", name)
	defer reportRules(b, name)
	dir := b.TempDir()
	ta, caPEM := apiserverAgent(b, dir, nil, append(overrides, "outputs.file.json=true"), Options{})
	client := directClient(b, dir, ta.url+"/k8s-audit", caPEM)
	events := mixedBatch(400)
	var lat latencies
	var next atomic.Int64
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(b.N) {
				lat.post(b, client, events)
			}
		}()
	}
	wg.Wait()
	want := uint64(b.N) * 400
	for ta.Status().Events.Evaluated < want {
		time.Sleep(time.Millisecond)
	}
	el := time.Since(start)
	b.StopTimer()
	st := ta.Status()
	b.ReportMetric(float64(want)/el.Seconds(), "events/s")
	lat.report(b)
	b.ReportMetric(float64(st.Events.Alerts)/float64(want), "alerts/event")
	if kb := peakRSSKiB(); kb > 0 {
		// The whole test process: the agent plus the webhook client posting to it, so an upper
		// bound of the agent's own peak.
		b.ReportMetric(float64(kb)/1024, "peak-RSS-MiB")
	}
	if st.Events.Evaluated != want || st.Events.Received != want {
		b.Fatalf("received %d evaluated %d want %d", st.Events.Received, st.Events.Evaluated, want)
	}
}

// BenchmarkWebhookLatencyAtRate posts 400-event batches at a steady 20,000 events/s (50 batches
// a second, what five busy kube-apiservers at their default 10 batches/s throttle send) and
// reports the p50/p99 POST latency (ack): the latency a cluster sees below saturation, where
// BenchmarkWebhookThroughput measures the ceiling.
func BenchmarkWebhookLatencyAtRate(b *testing.B) {
	overrides, name := benchRules(b)
	b.Logf("ruleset: %s", name)
	defer reportRules(b, name)
	dir := b.TempDir()
	ta, caPEM := apiserverAgent(b, dir, nil, append(overrides, "outputs.file.json=true"), Options{})
	client := directClient(b, dir, ta.url+"/k8s-audit", caPEM)
	events := mixedBatch(400)
	const perSecond = 50
	var lat latencies
	tick := time.NewTicker(time.Second / perSecond)
	defer tick.Stop()
	b.ResetTimer()
	var wg sync.WaitGroup
	for range b.N {
		<-tick.C
		wg.Add(1)
		go func() {
			defer wg.Done()
			lat.post(b, client, events)
		}()
	}
	wg.Wait()
	want := uint64(b.N) * 400
	for ta.Status().Events.Evaluated < want {
		time.Sleep(time.Millisecond)
	}
	b.StopTimer()
	lat.report(b)
	if kb := peakRSSKiB(); kb > 0 {
		b.ReportMetric(float64(kb)/1024, "peak-RSS-MiB")
	}
}

// peakRSSKiB is the process's peak resident set (VmHWM), 0 where /proc is unavailable.
func peakRSSKiB() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb
		}
	}
	return 0
}

// BenchmarkSwapUnderLoad streams batches while the ruleset is swapped 10 times and reports the
// events lost (accepted but not evaluated, or refused for good); it must be 0.
func BenchmarkSwapUnderLoad(b *testing.B) {
	overrides, name := benchRules(b)
	defer reportRules(b, name)
	for range b.N {
		src := &fakeSource{sink: make(chan RuleSink, 1)}
		dir := b.TempDir()
		ta, caPEM := apiserverAgent(b, dir, nil, overrides, Options{Sources: []RuleSource{src}})
		<-src.sink
		client := directClient(b, dir, ta.url+"/k8s-audit", caPEM)
		events := mixedBatch(400)
		const batches = 100
		var sent, refused atomic.Int64
		var next atomic.Int64
		var wg sync.WaitGroup
		start := time.Now()
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for next.Add(1) <= batches {
					if client.ProcessEvents(events...) {
						sent.Add(400)
					} else {
						refused.Add(400)
					}
				}
			}()
		}
		swaps := 0
		for ; swaps < 10; swaps++ {
			f := []SourceFile{{Name: "extra.yaml", Content: fmt.Appendf(nil, "- list: swap_%d\n  items: [x]\n", swaps)}}
			if _, err := ta.Offer("follower", f); err != nil {
				b.Fatal(err)
			}
			time.Sleep(20 * time.Millisecond)
		}
		wg.Wait()
		ta.stop(b)
		el := time.Since(start)
		st := ta.Status()
		lost := uint64(refused.Load()) + (st.Events.Received - st.Events.Evaluated) + (uint64(sent.Load()) - st.Events.Received)
		b.ReportMetric(float64(lost), "lost-events")
		b.ReportMetric(float64(st.Events.Evaluated)/el.Seconds(), "events/s")
		b.ReportMetric(float64(st.Ruleset.Generation-1), "swaps")
		if lost != 0 || swaps != 10 {
			b.Fatalf("lost %d events over %d swaps", lost, swaps)
		}
	}
}
