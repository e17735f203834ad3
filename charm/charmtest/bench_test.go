package charmtest

import (
	"testing"
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
	run := func(b *testing.B, hook string, before func(i int)) {
		b.Helper()
		for i := 0; b.Loop(); i++ {
			if before != nil {
				b.StopTimer()
				before(i)
				b.StartTimer()
			}
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
}
