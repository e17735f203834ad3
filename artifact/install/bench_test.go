package install

import (
	"context"
	"fmt"
	"testing"

	"github.com/rs/zerolog"

	"github.com/falco-k8s/falco-k8s/artifact/oci"
	"github.com/falco-k8s/falco-k8s/artifact/ref"
	"github.com/falco-k8s/falco-k8s/artifact/state"
	"github.com/falco-k8s/falco-k8s/internal/testregistry"
)

// BenchmarkRegistryRequests reports registry requests per operation
// ("reqs/op") next to wall time for:
//   - install: a cold "artifact install" of a rulesfile (new process-wide
//     client, so the token dance is included), no auth and token auth;
//   - follow-nochange: the follower's periodic check with a warm client.
func BenchmarkRegistryRequests(b *testing.B) {
	for _, mode := range []struct {
		name  string
		token bool
	}{{"noauth", false}, {"token", true}} {
		reg := testregistry.New(b, testregistry.Options{Token: mode.token})
		r, _ := ref.Parse(reg.Host + "/bench/rules:1")
		setup, _ := oci.NewClient(oci.Options{PlainHTTP: true})
		pushRaw(b, setup, r, oci.RulesfileLayerMediaType, rulesTarGz(b, "falco_rules.yaml", "- rule: a\n"), true)

		b.Run(fmt.Sprintf("install/%s", mode.name), func(b *testing.B) {
			reg.Reset()
			for i := 0; i < b.N; i++ {
				c, _ := oci.NewClient(oci.Options{PlainHTTP: true})
				in := &Installer{Client: c, StateDir: b.TempDir(), Log: zerolog.Nop(),
					Dirs:    map[oci.ArtifactType]string{oci.Rulesfile: b.TempDir()},
					Resolve: func(_ context.Context, s string) (ref.Reference, error) { return ref.Parse(s) }}
				if _, err := in.Install(context.Background(), []string{r.String()}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(reg.Requests())/float64(b.N), "reqs/op")
		})

		b.Run(fmt.Sprintf("follow-nochange/%s", mode.name), func(b *testing.B) {
			c, _ := oci.NewClient(oci.Options{PlainHTTP: true})
			sd := b.TempDir()
			in := &Installer{Client: c, StateDir: sd, Log: zerolog.Nop(),
				Dirs:    map[oci.ArtifactType]string{oci.Rulesfile: b.TempDir()},
				Resolve: func(_ context.Context, s string) (ref.Reference, error) { return ref.Parse(s) }}
			if _, err := in.Install(context.Background(), []string{r.String()}); err != nil {
				b.Fatal(err)
			}
			rec, ok, err := state.Read(sd, r.String())
			if err != nil || !ok {
				b.Fatal("no state", err)
			}
			reg.Reset()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				d, err := c.Resolve(context.Background(), r)
				if err != nil {
					b.Fatal(err)
				}
				if d.Digest.String() != rec.Digest {
					b.Fatal("digest changed")
				}
			}
			b.ReportMetric(float64(reg.Requests())/float64(b.N), "reqs/op")
		})
	}
}
