package install

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/rs/zerolog"

	"github.com/falco-k8s/falco-k8s/artifact/oci"
	"github.com/falco-k8s/falco-k8s/artifact/ref"
	"github.com/falco-k8s/falco-k8s/artifact/state"
	"github.com/falco-k8s/falco-k8s/internal/testregistry"
)

// BenchmarkRegistryRequests reports registry requests per operation
// ("reqs/op", token requests included) next to wall time for:
//   - install: a cold "artifact install" of a rulesfile (new process-wide
//     client each time): no auth; token auth on first contact with the
//     registry (empty challenge cache: 401, token, manifest, config,
//     layer); token auth with the challenge remembered by an earlier run
//     (token, manifest, config, layer);
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

		install := func(b *testing.B, challengeFile string) {
			c, _ := oci.NewClient(oci.Options{PlainHTTP: true, ChallengeCacheFile: challengeFile})
			in := &Installer{Client: c, StateDir: b.TempDir(), Log: zerolog.Nop(),
				Dirs:    map[oci.ArtifactType]string{oci.Rulesfile: b.TempDir()},
				Resolve: func(_ context.Context, s string) (ref.Reference, error) { return ref.Parse(s) }}
			if _, err := in.Install(context.Background(), []string{r.String()}); err != nil {
				b.Fatal(err)
			}
		}
		type variant struct {
			name string
			file func(b *testing.B) string // challenge cache file per iteration
		}
		variants := []variant{{"noauth", func(*testing.B) string { return "" }}}
		if mode.token {
			warm := filepath.Join(b.TempDir(), "registry-challenges.json")
			variants = []variant{
				{"token-first-contact", func(b *testing.B) string { return filepath.Join(b.TempDir(), "registry-challenges.json") }},
				{"token-warm-cache", func(*testing.B) string { return warm }},
			}
			install(b, warm) // an earlier run met the registry
		}
		for _, v := range variants {
			b.Run("install/"+v.name, func(b *testing.B) {
				reg.Reset()
				for i := 0; i < b.N; i++ {
					install(b, v.file(b))
				}
				b.ReportMetric(float64(reg.Requests())/float64(b.N), "reqs/op")
			})
		}

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
