package charmtest

import (
	"fmt"
	"testing"

	"github.com/falco-k8s/falco-k8s/internal/fakejuju"
)

// BenchmarkHook measures whole-hook latency as Juju would see it: the real charm binary
// started as dispatch, every hook-tool call a process of the fake tools, the real Pebble over
// its socket and the real agent answering /status. "changed" alternates json-output, so every
// iteration pushes a new agent config, replans, and waits until the restarted agent answers.
//
//	go test -run '^$' -bench Hook -benchtime 20x ./charm/charmtest/   (make bench-charm)
func BenchmarkHook(b *testing.B) {
	u := newUnit(b, unitOpts{})
	if r := u.Hook("install"); r.Code != 0 {
		b.Fatal(r)
	}
	// The fake records every tool call, log line and status in its state file, which every tool
	// reads and rewrites whole: over hundreds of hooks that history would make each call slower,
	// a cost Juju's hook tools do not have. It is dropped, untimed, before each hook.
	trim := func(b *testing.B) {
		st, err := fakejuju.Load(u.StatePath)
		if err != nil {
			b.Fatal(err)
		}
		st.Calls, st.Logs, st.StatusHistory = nil, nil, nil
		if err := st.Save(u.StatePath); err != nil {
			b.Fatal(err)
		}
	}
	run := func(b *testing.B, hook string, before func(i int)) {
		b.Helper()
		for i := 0; b.Loop(); i++ {
			b.StopTimer()
			trim(b)
			if before != nil {
				before(i)
			}
			b.StartTimer()
			if r := u.Hook(hook); r.Code != 0 {
				b.Fatal(r)
			}
		}
		b.StopTimer()
		if st := u.State().UnitStatus; st.Status != "active" {
			b.Fatalf("unit %s %q", st.Status, st.Message)
		}
	}
	b.Run("config-changed/unchanged", func(b *testing.B) { run(b, "config-changed", nil) })
	b.Run("config-changed/changed", func(b *testing.B) {
		run(b, "config-changed", func(i int) {
			if err := u.SetConfig(map[string]any{"json-output": i%2 == 0}); err != nil {
				b.Fatal(err)
			}
		})
	})
	b.Run("update-status", func(b *testing.B) { run(b, "update-status", nil) })

	// A relation-changed hook with every relation in place (Prometheus, Grafana, a Loki unit,
	// falcosidekick) as the leader: relation tools, databag writes, the dashboard, the Pebble
	// log-targets layer. Remote Loki data alternates, so every other run changes the layer.
	for _, rel := range []struct{ ep, app string }{{"metrics-endpoint", "prometheus"}, {"grafana-dashboard", "grafana"}, {"http-endpoint", "falcosidekick"}} {
		id, _ := u.AddRelation(rel.ep, rel.app)
		u.JoinUnit(id, rel.app+"/0", nil)
	}
	logging, _ := u.AddRelation("logging", "loki")
	u.JoinUnit(logging, "loki/0", map[string]string{"endpoint": `{"url": "http://127.0.0.1:9/loki/api/v1/push"}`})
	relChanged := func(b *testing.B, urlFor func(i int) string) {
		for i := 0; b.Loop(); i++ {
			b.StopTimer()
			trim(b)
			url := fmt.Sprintf(`{"url": %q}`, urlFor(i))
			if err := u.SetRemoteUnitDataOnly(logging, "loki/0", map[string]string{"endpoint": url}); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			if r := u.Hook("logging-relation-changed", u.RelationEnv(logging, "loki/0")...); r.Code != 0 {
				b.Fatal(r)
			}
		}
		b.StopTimer()
		if st := u.State().UnitStatus; st.Status != "active" {
			b.Fatalf("unit %s %q", st.Status, st.Message)
		}
	}
	// Same data: the hook reads the unit and changes nothing.
	b.Run("logging-relation-changed/unchanged", func(b *testing.B) {
		relChanged(b, func(int) string { return "http://127.0.0.1:9/loki/api/v1/push" })
	})
	// A new endpoint every time: the log-targets layer and the manifest are rewritten.
	b.Run("logging-relation-changed/changed", func(b *testing.B) {
		relChanged(b, func(i int) string { return fmt.Sprintf("http://127.0.0.1:%d/loki/api/v1/push", 10+i%2) })
	})
}
