package charmtest

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/falco-k8s/falco-k8s/internal/fakejuju"
	"github.com/falco-k8s/falco-k8s/internal/fakejuju/harness"
	"github.com/falco-k8s/falco-k8s/internal/testregistry"
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
	// On a shared machine the mean moves with the load; the median and the fastest run of the
	// dispatch process (what Juju times as the hook), and the number of hook-tool processes it
	// started (which the load does not change), are reported too.
	var elapsed []time.Duration
	var tools int
	record := func(b *testing.B, r harness.Run) {
		b.StopTimer()
		if r.Code != 0 {
			b.Fatal(r)
		}
		elapsed = append(elapsed, r.Elapsed)
		tools += len(u.State().Calls)
		b.StartTimer()
	}
	report := func(b *testing.B) {
		if st := u.State().UnitStatus; st.Status != "active" {
			b.Fatalf("unit %s %q", st.Status, st.Message)
		}
		slices.Sort(elapsed)
		if n := len(elapsed); n > 0 {
			b.ReportMetric(float64(elapsed[n/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(elapsed[0].Microseconds())/1000, "min-ms")
			b.ReportMetric(float64(tools)/float64(n), "tools/op")
		}
		elapsed, tools = nil, 0
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
			record(b, u.Hook(hook))
		}
		report(b)
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
			record(b, u.Hook("logging-relation-changed", u.RelationEnv(logging, "loki/0")...))
		}
		report(b)
	}
	// A full update (every non-relation hook) with the four relations: all are read again.
	b.Run("update-status/relations", func(b *testing.B) { run(b, "update-status", nil) })
	// Same data: the hook reads the unit and changes nothing.
	b.Run("logging-relation-changed/unchanged", func(b *testing.B) {
		relChanged(b, func(int) string { return "http://127.0.0.1:9/loki/api/v1/push" })
	})
	// A new endpoint every time: the log-targets layer and the manifest are rewritten.
	b.Run("logging-relation-changed/changed", func(b *testing.B) {
		relChanged(b, func(i int) string { return fmt.Sprintf("http://127.0.0.1:%d/loki/api/v1/push", 10+i%2) })
	})
}

// BenchmarkFalcoHook is BenchmarkHook's hooks with engine=falco: the real Falco 0.44.1 runs
// beside the agent, and the status also reads Falco's service.
//
//	go test -run '^$' -bench FalcoHook -benchtime 20x ./charm/charmtest/
func BenchmarkFalcoHook(b *testing.B) {
	u := newFalcoUnit(b)
	if r := u.Hook("install"); r.Code != 0 {
		b.Fatal(r)
	}
	waitFalcoWebhook(b, u)
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
	// minimum-priority changes both Falco's configuration (Falco reloads itself) and the
	// agent's (restarted, waited for).
	b.Run("config-changed/changed", func(b *testing.B) {
		run(b, "config-changed", func(i int) {
			if err := u.SetConfig(map[string]any{"minimum-priority": []string{"debug", "notice"}[i%2]}); err != nil {
				b.Fatal(err)
			}
		})
	})
	b.Run("update-status", func(b *testing.B) { run(b, "update-status", nil) })
}

// BenchmarkPushToAlert measures, for each engine, the time from pushing a new rules artifact
// version to the engine alerting on its new rule: push to the registry, the sync-rules action
// (the follower's check, download, validation: with engine=falco also `falco -V` and the
// --dry-run after the switch), the swap (Falco's own hot reload), then audit events from
// kube-apiserver's webhook client until the new rule's alert is in the journal.
//
//	go test -run '^$' -bench PushToAlert -benchtime 10x ./charm/charmtest/
func BenchmarkPushToAlert(b *testing.B) {
	for _, engine := range []string{"falco-k8s", "falco"} {
		b.Run(engine, func(b *testing.B) {
			var u *unit
			if engine == "falco" {
				u = newFalcoUnit(b)
			} else {
				u = newUnit(b, unitOpts{})
			}
			reg := testregistry.New(b, testregistry.Options{})
			pushRules(b, reg, "", "", "acme/k8s-rules:1", map[string]string{"k8s_audit_rules.yaml": rulesArtifact})
			// Each version replaces the previous one's bench rule.
			u.config(map[string]any{"rules-artifacts": reg.Host + "/acme/k8s-rules:1", "plain-http-registries": reg.Host, "allow-rule-removal": true})
			if r := u.Hook("install"); r.Code != 0 {
				b.Fatal(r)
			}
			waitFalcoWebhook(b, u) // the agent's webhook with engine=falco-k8s
			client := newAuditClient(b, fmt.Sprintf("http://127.0.0.1:%d/k8s-audit", u.port))
			for i := 0; b.Loop(); i++ {
				rule := fmt.Sprintf("Bench Rule %d", i)
				name := fmt.Sprintf("bench-%d", i)
				body := rulesArtifact + fmt.Sprintf("- rule: %s\n  desc: bench\n  condition: ka.verb=create and ka.target.resource=configmaps and ka.target.name=%s\n  output: bench (user=%%ka.user.name)\n  priority: WARNING\n  source: k8s_audit\n", rule, name)
				pushRules(b, reg, "", "", "acme/k8s-rules:1", map[string]string{"k8s_audit_rules.yaml": body})
				u.action("sync-rules", map[string]any{})
				for j := 0; ; j++ {
					ev := configMapCreate(fmt.Sprintf("%s-%d", name, j))
					ev.ObjectRef.Name = name
					client.send(b, ev)
					if len(journaled(b, u, rule, "")) > 0 {
						break
					}
					time.Sleep(5 * time.Millisecond)
					if j > 4000 {
						b.Fatalf("no alert on %q", rule)
					}
				}
			}
		})
	}
}
