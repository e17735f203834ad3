package charmtest

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/falco-k8s/falco-k8s/agent/apiclient"
	"github.com/falco-k8s/falco-k8s/charm"
	"github.com/falco-k8s/falco-k8s/internal/testregistry"
)

// BenchmarkScaleOut measures issue 12's figures on the multi-unit harness (fake Juju, a real
// Pebble running the real agent per unit, the reference registry):
//
//   - ns/op: from a push to every unit active on the new digest with the leader's application
//     status saying so. The leader's follow timer firing is POST /sync right after the push, so
//     this is the propagation time (notice → hook → publish → relation-changed → pinned
//     pull); the real figure adds up to one follow-interval before the leader's check.
//
//   - tag-checks/interval and registry-req/interval: what the registry sees when every unit's
//     follow timer fires once with nothing new (one poller, whatever the number of units).
//
//     go test -run '^$' -bench ScaleOut -benchtime 3x ./charm/charmtest/   (make bench)
func BenchmarkScaleOut(b *testing.B) {
	for _, n := range []int{1, 3} {
		b.Run(fmt.Sprintf("units=%d", n), func(b *testing.B) {
			reg := testregistry.New(b, testregistry.Options{})
			digest := pushRules(b, reg, "", "", "acme/k8s-rules:1", map[string]string{"k8s_audit_rules.yaml": rulesArtifact})
			a := newApp(b, reg)
			for range n {
				a.add()
			}
			a.converge("first digest", func() bool { return a.allOn(digest) })
			a.noticesOnly = true
			leader := a.leader()
			for i := 0; b.Loop(); i++ {
				digest = pushRules(b, reg, "", "", "acme/k8s-rules:1", map[string]string{"k8s_audit_rules.yaml": strings.ReplaceAll(rulesArtifact, "charm-test", fmt.Sprintf("bench-%d", i))})
				if _, err := apiclient.Local(leader.port+1).Sync(context.Background(), false); err != nil {
					b.Fatal(err)
				}
				if err := a.m.WaitNotice(context.Background(), leader.Unit, charm.NoticeKey, 30*time.Second); err != nil {
					b.Fatal(err)
				}
				a.converge("new digest", func() bool { return a.allOn(digest) })
			}
			b.StopTimer()
			reg.Reset()
			a.tick()
			b.ReportMetric(float64(a.tagChecks()), "tag-checks/interval")
			b.ReportMetric(float64(reg.Requests()), "registry-req/interval")
		})
	}
}

// BenchmarkPeerHook is the steady-state hook cost with peers (the peer relation's reads, the
// unit's running set, and on the leader the application status), next to BenchmarkHook's single
// unit without a peer relation:
//
//	go test -run '^$' -bench PeerHook -benchtime 20x ./charm/charmtest/
func BenchmarkPeerHook(b *testing.B) {
	reg := testregistry.New(b, testregistry.Options{})
	digest := pushRules(b, reg, "", "", "acme/k8s-rules:1", map[string]string{"k8s_audit_rules.yaml": rulesArtifact})
	a := newApp(b, reg)
	for range 3 {
		a.add()
	}
	a.converge("first digest", func() bool { return a.allOn(digest) })
	for _, name := range []string{"falco-k8s/0", "falco-k8s/1"} {
		role := "leader"
		if name != a.m.Leader() {
			role = "non-leader"
		}
		b.Run("update-status/"+role, func(b *testing.B) {
			u := a.units[name]
			for b.Loop() {
				if r := u.Hook("update-status"); r.Code != 0 {
					b.Fatal(r)
				}
			}
			b.StopTimer()
			if st := u.State().UnitStatus; st.Status != "active" {
				b.Fatalf("%s %q", st.Status, st.Message)
			}
		})
	}
}
