package follower

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/falco-k8s/falco-k8s/internal/testregistry"
)

// BenchmarkPushToActive measures the time from a push to the new ruleset running, with a 1 s
// follow interval (and the default 0.1 jitter): a HEAD every ~1 s, then pull, compile and swap.
//
//	go test -run '^$' -bench PushToActive -benchtime 10x ./agent/follower/
func BenchmarkPushToActive(b *testing.B) {
	reg := testregistry.New(b, testregistry.Options{})
	p := newPusher(b, reg, "", "")
	d := p.push("rules/k8s:1", map[string]string{"k8s.yaml": genRule("v0")})
	e := newEnv(b, envOpts{reg: reg, follow: func(o *Options) { o.Interval = time.Second; o.Jitter = 0.1 }})
	e.waitAccepted(d)
	var lat []time.Duration
	b.ResetTimer()
	for i := range b.N {
		start := time.Now()
		d := p.push("rules/k8s:1", map[string]string{"k8s.yaml": genRule(fmt.Sprintf("v%d", i+1))})
		for e.runningDigest() != d {
			time.Sleep(time.Millisecond)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Milliseconds()), "p50-ms")
	b.ReportMetric(float64(lat[len(lat)-1].Milliseconds()), "max-ms")
}

// BenchmarkSyncToActive isolates the follower's own work from the polling wait: push, then
// Sync (HEAD, manifest, config, layer, extract, compile, commit with fsyncs, swap).
//
//	go test -run '^$' -bench SyncToActive -benchtime 20x ./agent/follower/
func BenchmarkSyncToActive(b *testing.B) {
	reg := testregistry.New(b, testregistry.Options{})
	p := newPusher(b, reg, "", "")
	d := p.push("rules/k8s:1", map[string]string{"k8s.yaml": genRule("v0")})
	e := newEnv(b, envOpts{reg: reg, follow: func(o *Options) { o.Interval = time.Hour }})
	e.waitAccepted(d)
	var total time.Duration
	for i := range b.N {
		d := p.push("rules/k8s:1", map[string]string{"k8s.yaml": genRule(fmt.Sprintf("v%d", i+1))})
		start := time.Now()
		if r := e.f.Sync(context.Background(), false); r[0].Result != ResultAccepted || e.runningDigest() != d {
			b.Fatalf("sync %+v", r)
		}
		total += time.Since(start)
	}
	b.ReportMetric(float64(total.Microseconds())/float64(b.N)/1000, "ms/sync")
}

// BenchmarkSwapUnderLoad posts ~20,000 events/s (400-event batches) to the agent while the
// follower accepts 10 new ruleset versions from the registry, and counts events lost: every
// acknowledged event must be evaluated (lost = acknowledged - evaluated, must be 0).
//
//	go test -run '^$' -bench SwapUnderLoad -benchtime 1x ./agent/follower/
func BenchmarkSwapUnderLoad(b *testing.B) {
	for range b.N {
		reg := testregistry.New(b, testregistry.Options{})
		p := newPusher(b, reg, "", "")
		d := p.push("rules/k8s:1", map[string]string{"k8s.yaml": genRule("v0")})
		e := newEnv(b, envOpts{reg: reg, follow: func(o *Options) { o.Interval = time.Hour },
			overrides: []string{"outputs.file.path=", "webhook.queue.capacity=40000"}})
		e.waitAccepted(d)

		const batch, rate = 400, 20000
		var acked, throttled atomic.Int64
		ctx, stop := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		start := time.Now()
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(time.Second * batch / rate)
			defer tick.Stop()
			var inflight sync.WaitGroup
			defer inflight.Wait()
			for n := 0; ; n++ {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				body := eventList(fmt.Sprintf("b%d", n), batch)
				inflight.Add(1)
				go func() {
					defer inflight.Done()
					for {
						resp, err := http.Post(e.url+"/k8s-audit", "application/json", strings.NewReader(body))
						if err != nil {
							b.Error(err)
							return
						}
						io.Copy(io.Discard, resp.Body) //nolint:errcheck
						resp.Body.Close()
						if resp.StatusCode == http.StatusOK {
							acked.Add(batch)
							return
						}
						// 429: retried, as kube-apiserver does.
						throttled.Add(1)
						time.Sleep(50 * time.Millisecond)
					}
				}()
			}
		}()
		time.Sleep(300 * time.Millisecond)
		gen0 := e.a.Status().Ruleset.Generation
		for v := 1; v <= 10; v++ {
			p.push("rules/k8s:1", map[string]string{"k8s.yaml": genRule(fmt.Sprintf("v%d", v))})
			if r := e.f.Sync(context.Background(), false); r[0].Result != ResultAccepted {
				b.Fatalf("swap %d: %+v", v, r)
			}
			time.Sleep(100 * time.Millisecond)
		}
		time.Sleep(300 * time.Millisecond)
		stop()
		wg.Wait()
		elapsed := time.Since(start)
		// Stopping the agent drains the queue and waits for the workers, so every event it
		// will ever evaluate has been: whatever is missing now is lost, and is reported as
		// such (waiting for evaluated to reach acknowledged would time out instead).
		e.stop()
		st := e.a.Status()
		lost := acked.Load() - int64(st.Events.Evaluated)
		b.ReportMetric(float64(acked.Load())/elapsed.Seconds(), "events/s")
		b.ReportMetric(float64(st.Ruleset.Generation-gen0), "swaps")
		b.ReportMetric(float64(max(lost, 0)), "lost")
		b.ReportMetric(float64(throttled.Load()), "429s")
		if lost > 0 || st.Events.Alerts != st.Events.Evaluated {
			// A failed benchmark prints no result line: say the figures here.
			b.Errorf("lost %d events: acknowledged %d, evaluated %d, alerts %d, dropped %v",
				lost, acked.Load(), st.Events.Evaluated, st.Events.Alerts, st.Events.Dropped)
		}
	}
}

func eventList(prefix string, n int) string {
	items := make([]string, n)
	for i := range items {
		items[i] = fmt.Sprintf(`{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"%s-%d","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/default/pods","verb":"create","user":{"username":"admin"},"objectRef":{"resource":"pods","namespace":"default","name":"p","apiVersion":"v1"},"responseStatus":{"code":201},"stageTimestamp":"2024-05-01T10:00:00.123456Z"}`, prefix, i)
	}
	return `{"kind":"EventList","apiVersion":"audit.k8s.io/v1","metadata":{},"items":[` + strings.Join(items, ",") + `]}`
}

// BenchmarkRegistryRequestsPerInterval counts the registry requests of one agent in steady
// state (its digest accepted, nothing pushed), per follow interval, in poll and pinned mode: a
// Juju application of N units makes N x the poll figure without pinning, and 1 x it with the
// leader polling and the others pinned.
//
//	go test -run '^$' -bench RegistryRequestsPerInterval -benchtime 20x ./agent/follower/
func BenchmarkRegistryRequestsPerInterval(b *testing.B) {
	const interval = 50 * time.Millisecond
	for _, mode := range []string{ModePoll, ModePinned} {
		b.Run(mode, func(b *testing.B) {
			reg := testregistry.New(b, testregistry.Options{})
			p := newPusher(b, reg, "", "")
			d := p.push("rules/k8s:1", map[string]string{"k8s.yaml": genRule("v0")})
			pins := b.TempDir() + "/pins.json"
			writePins(b, pins, Pin{Ref: reg.Host + "/rules/k8s:1", Digest: d})
			e := newEnv(b, envOpts{reg: reg, follow: func(o *Options) {
				o.Interval, o.Jitter = interval, 0
				if mode == ModePinned {
					o.Mode, o.PinsFile = ModePinned, pins
				}
			}})
			e.waitAccepted(d)
			time.Sleep(interval) // past the first check
			reg.Reset()
			b.ResetTimer()
			for range b.N {
				time.Sleep(interval)
			}
			b.StopTimer()
			b.ReportMetric(float64(reg.Requests())/float64(b.N), "requests/interval")
		})
	}
}

// BenchmarkPinToActive measures, on a pinned agent, the time from the pins file naming a new
// digest to that digest running: the fsnotify event and its debounce (50ms here, 250ms by
// default), then manifest, config and layer by digest, extract, compile, commit and swap.
//
//	go test -run '^$' -bench PinToActive -benchtime 10x ./agent/follower/
func BenchmarkPinToActive(b *testing.B) {
	reg := testregistry.New(b, testregistry.Options{})
	p := newPusher(b, reg, "", "")
	ref := reg.Host + "/rules/k8s:1"
	pins := b.TempDir() + "/pins.json"
	d := p.push("rules/k8s:1", map[string]string{"k8s.yaml": genRule("v0")})
	writePins(b, pins, Pin{Ref: ref, Digest: d})
	e := newEnv(b, envOpts{reg: reg, follow: func(o *Options) { o.Interval, o.Mode, o.PinsFile = time.Hour, ModePinned, pins }})
	e.waitAccepted(d)
	var lat []time.Duration
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		d := p.push("rules/k8s:1", map[string]string{"k8s.yaml": genRule(fmt.Sprintf("v%d", i+1))})
		b.StartTimer()
		start := time.Now()
		writePins(b, pins, Pin{Ref: ref, Digest: d})
		for e.runningDigest() != d {
			time.Sleep(time.Millisecond)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Milliseconds()), "p50-ms")
	b.ReportMetric(float64(lat[len(lat)-1].Milliseconds()), "max-ms")
}
