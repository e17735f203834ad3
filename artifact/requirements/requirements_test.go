package requirements

import (
	"errors"
	"testing"

	"github.com/falco-k8s/falco-k8s/artifact/oci"
)

func TestCheck(t *testing.T) {
	h := Have{Engine: "0.62.0", Plugins: map[string]string{"k8saudit": "0.18.0", "json": "0.7.4"}}
	req := func(n, v string) []oci.Requirement { return []oci.Requirement{{Name: n, Version: v}} }
	cases := []struct {
		name  string
		cfg   oci.ArtifactConfig
		unmet string // UnmetError text; "" for nil
		bad   bool   // InvalidError
	}{
		{name: "none"},
		{name: "semver older", cfg: oci.ArtifactConfig{Requirements: req("engine_version_semver", "0.50.0")}},
		{name: "semver same", cfg: oci.ArtifactConfig{Requirements: req("engine_version_semver", "0.62.0")}},
		{name: "semver newer", cfg: oci.ArtifactConfig{Requirements: req("engine_version_semver", "0.63.0")},
			unmet: "needs engine version 0.63.0, this agent implements 0.62.0"},
		{name: "semver other major", cfg: oci.ArtifactConfig{Requirements: req("engine_version_semver", "1.0.0")},
			unmet: "needs engine version 1.0.0, this agent implements 0.62.0"},
		{name: "legacy older", cfg: oci.ArtifactConfig{Requirements: req("engine_version", "15")}},
		{name: "legacy newer", cfg: oci.ArtifactConfig{Requirements: req("engine_version", "70")},
			unmet: "needs engine version 70, this agent implements 62 (0.62.0)"},
		{name: "legacy invalid", cfg: oci.ArtifactConfig{Requirements: req("engine_version", "x")}, bad: true},
		{name: "semver invalid", cfg: oci.ArtifactConfig{Requirements: req("engine_version_semver", "new")}, bad: true},
		{name: "plugin api is not ours", cfg: oci.ArtifactConfig{Requirements: req("plugin_api_version", "9.0.0")}},
		{name: "deps satisfied", cfg: oci.ArtifactConfig{Dependencies: []oci.Dependency{
			{Name: "json", Version: "0.7.0"},
			{Name: "k8saudit", Version: "0.7.0", Alternatives: []oci.Alternative{{Name: "k8saudit-eks", Version: "0.4.0"}}}}}},
		{name: "dep too new", cfg: oci.ArtifactConfig{Dependencies: []oci.Dependency{{Name: "k8saudit", Version: "0.19.0"}}},
			unmet: "needs plugin k8saudit 0.19.0, this agent implements 0.18.0"},
		{name: "alternative satisfies", cfg: oci.ArtifactConfig{Dependencies: []oci.Dependency{
			{Name: "k8saudit-eks", Version: "0.4.0", Alternatives: []oci.Alternative{{Name: "k8saudit", Version: "0.18.0"}}}}}},
		{name: "dep not ours", cfg: oci.ArtifactConfig{Dependencies: []oci.Dependency{{Name: "container", Version: "0.2.0"}}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := Check(c.cfg, h)
			var ue *UnmetError
			var ie *InvalidError
			switch {
			case c.unmet != "":
				if !errors.As(err, &ue) || err.Error() != c.unmet {
					t.Fatalf("err %v, want %q", err, c.unmet)
				}
			case c.bad:
				if !errors.As(err, &ie) {
					t.Fatalf("err %v, want InvalidError", err)
				}
			case err != nil:
				t.Fatalf("unexpected %v", err)
			}
		})
	}
	if err := Check(oci.ArtifactConfig{Requirements: req("engine_version_semver", "0.1.0")}, Agent()); err != nil {
		t.Fatalf("this build: %v", err)
	}
}

func FuzzCheck(f *testing.F) {
	f.Add("engine_version_semver", "0.63.0", "k8saudit", "0.7.0")
	f.Add("engine_version", "15", "json", "x")
	f.Fuzz(func(t *testing.T, reqName, reqVer, depName, depVer string) {
		cfg := oci.ArtifactConfig{Requirements: []oci.Requirement{{Name: reqName, Version: reqVer}},
			Dependencies: []oci.Dependency{{Name: depName, Version: depVer}}}
		err := Check(cfg, Agent())
		var ue *UnmetError
		var ie *InvalidError
		if err != nil && !errors.As(err, &ue) && !errors.As(err, &ie) {
			t.Fatalf("untyped error %v", err)
		}
	})
}
