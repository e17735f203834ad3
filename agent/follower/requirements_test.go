package follower

import (
	"strings"
	"testing"
	"time"

	"github.com/falco-k8s/falco-k8s/artifact/oci"
	"github.com/falco-k8s/falco-k8s/internal/testregistry"
)

// TestRequirementsBeforeDownload: a candidate whose config needs a newer engine is ignored
// with the versions named, from the manifest and config alone: its layer is never fetched.
func TestRequirementsBeforeDownload(t *testing.T) {
	reg := testregistry.New(t, testregistry.Options{})
	p := newPusher(t, reg, "", "")
	p.config = func(c *oci.ArtifactConfig) {
		c.Requirements = []oci.Requirement{{Name: "engine_version_semver", Version: "0.26.0"}}
		c.Dependencies = []oci.Dependency{{Name: "k8saudit", Version: "0.7.0", Alternatives: []oci.Alternative{{Name: "k8saudit-eks", Version: "0.4.0"}}}}
	}
	d1 := p.push("rules/k8s:1", map[string]string{"k8s.yaml": genRule("v1")})
	e := newEnv(t, envOpts{reg: reg, follow: func(o *Options) { o.Interval = time.Hour }})
	e.waitAccepted(d1)

	cases := []struct {
		name   string
		config func(*oci.ArtifactConfig)
		reason string
	}{
		{"newer engine", func(c *oci.ArtifactConfig) {
			c.Requirements = []oci.Requirement{{Name: "engine_version_semver", Version: "0.99.0"}}
		}, "needs engine version 0.99.0, this agent implements 0.62.0"},
		{"newer legacy engine", func(c *oci.ArtifactConfig) {
			c.Requirements = []oci.Requirement{{Name: "engine_version", Version: "99"}}
		}, "needs engine version 99, this agent implements 62 (0.62.0)"},
		{"newer plugin", func(c *oci.ArtifactConfig) {
			c.Dependencies = []oci.Dependency{{Name: "k8saudit", Version: "0.99.0"}}
		}, "needs plugin k8saudit 0.99.0, this agent implements 0.18.0"},
	}
	for _, tc := range cases {
		p.config = tc.config
		d := p.push("rules/k8s:1", map[string]string{"k8s.yaml": genRule(tc.name)})
		reg.Reset()
		r := postSync(t, e.url, "")
		if r.Result != ResultIgnored || r.Digest != d || !strings.Contains(r.Reason, tc.reason) {
			t.Fatalf("%s: %+v", tc.name, r)
		}
		// HEAD the tag, GET the manifest by digest, GET the config blob: no layer.
		var blobs int
		for _, l := range reg.Log() {
			if strings.Contains(l, "/blobs/") {
				blobs++
			}
		}
		t.Logf("%s: %d registry requests: %v", tc.name, reg.Requests(), reg.Log())
		if n := reg.Requests(); n != 3 || blobs != 1 {
			t.Fatalf("%s: %d requests (%d blobs), want 3 with only the config blob: %v", tc.name, n, blobs, reg.Log())
		}
		if e.runningDigest() != d1 {
			t.Fatalf("%s: running %s", tc.name, e.runningDigest())
		}
	}
	if li := e.a.Status().LastIgnored; li == nil || !strings.Contains(li.Reason, "needs plugin k8saudit 0.99.0") {
		t.Fatalf("last ignored %+v", li)
	}
}
