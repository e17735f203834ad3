package install

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"sort"

	"github.com/Masterminds/semver/v3"

	"github.com/falco-k8s/falco-k8s/artifact/oci"
	"github.com/falco-k8s/falco-k8s/artifact/state"
	"github.com/falco-k8s/falco-k8s/artifact/version"
)

func absEq(a, b string) bool {
	x, err1 := filepath.Abs(a)
	y, err2 := filepath.Abs(b)
	return err1 == nil && err2 == nil && x == y
}

// installedVersions reads the configs recorded in state files, so a
// dependency already satisfied on disk is not reinstalled (falcoctl #780).
func installedVersions(stateDir string) map[string]*semver.Version {
	out := map[string]*semver.Version{}
	for _, rec := range state.All(stateDir) {
		if len(rec.Config) == 0 || !rec.Intact() {
			continue
		}
		var cfg oci.ArtifactConfig
		if err := jsonUnmarshal(rec.Config, &cfg); err != nil || cfg.Name == "" {
			continue
		}
		v, err := version.ParseTolerant(cfg.Version)
		if err != nil {
			continue
		}
		if cur, ok := out[cfg.Name]; !ok || v.GreaterThan(cur) {
			out[cfg.Name] = v
		}
	}
	return out
}

// resolveDeps adds or upgrades dependencies until every selected artifact's
// dependencies are met. Rules:
//   - a selected artifact (or alternative) with the same major and a version
//     at least the minimum satisfies the dependency; a different major is an
//     error;
//   - an installed copy with the same major and at least the minimum also
//     satisfies it: we never downgrade or churn what is on disk;
//   - otherwise the highest tag with the same major and at least the minimum
//     is installed (not the exact minimum tag as falcoctl does).
//
// Work is done in name order, so the result does not depend on map order.
func (in *Installer) resolveDeps(ctx context.Context, sel map[string]*candidate) error {
	installed := installedVersions(in.StateDir)
	for round := 0; round < 100; round++ {
		changed := false
		names := make([]string, 0, len(sel))
		for n := range sel {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			c := sel[n]
			deps := append([]oci.Dependency(nil), c.cfg.Dependencies...)
			sort.Slice(deps, func(i, j int) bool { return deps[i].Name < deps[j].Name })
			for _, d := range deps {
				ch, err := in.satisfy(ctx, sel, installed, c, d)
				if err != nil {
					return err
				}
				changed = changed || ch
			}
		}
		if !changed {
			return nil
		}
	}
	return fmt.Errorf("dependency resolution did not converge after 100 rounds; check for dependency cycles with conflicting versions")
}

func (in *Installer) satisfy(ctx context.Context, sel map[string]*candidate, installed map[string]*semver.Version, from *candidate, d oci.Dependency) (bool, error) {
	opts := append([]oci.Alternative{{Name: d.Name, Version: d.Version}}, d.Alternatives...)
	// An already selected option decides.
	for _, o := range opts {
		s, ok := sel[o.Name]
		if !ok {
			continue
		}
		min, err := version.ParseTolerant(o.Version)
		if err != nil {
			return false, fmt.Errorf("%s depends on %s:%s: %w", from.cfg.Name, o.Name, o.Version, err)
		}
		if s.ver.Major() != min.Major() {
			return false, fmt.Errorf("cannot satisfy dependencies: %s needs %s:%s but %s %s is selected (different major version)", from.cfg.Name, o.Name, o.Version, o.Name, s.ver)
		}
		if !s.ver.LessThan(min) {
			return false, nil
		}
		c, err := in.best(ctx, o.Name, min)
		if err != nil {
			return false, fmt.Errorf("%s depends on %s:%s: %w", from.cfg.Name, o.Name, o.Version, err)
		}
		c.dep = true
		sel[o.Name] = c
		in.Log.Info().Str("dependency", o.Name).Str("version", c.cfg.Version).Str("requiredBy", from.cfg.Name).Msg("upgrading dependency")
		return true, nil
	}
	for _, o := range opts {
		if v, ok := installed[o.Name]; ok {
			min, err := version.ParseTolerant(o.Version)
			if err == nil && v.Major() == min.Major() && !v.LessThan(min) {
				in.Log.Info().Str("dependency", o.Name).Str("installed", v.String()).Str("requiredBy", from.cfg.Name).Msg("dependency already installed, keeping it")
				return false, nil
			}
		}
	}
	min, err := version.ParseTolerant(d.Version)
	if err != nil {
		return false, fmt.Errorf("%s depends on %s:%s: %w", from.cfg.Name, d.Name, d.Version, err)
	}
	c, err := in.best(ctx, d.Name, min)
	if err != nil {
		return false, fmt.Errorf("%s depends on %s:%s: %w", from.cfg.Name, d.Name, d.Version, err)
	}
	c.dep = true
	sel[c.cfg.Name] = c
	if c.cfg.Name != d.Name {
		sel[d.Name] = c
	}
	in.Log.Info().Str("dependency", d.Name).Str("version", c.cfg.Version).Str("requiredBy", from.cfg.Name).Msg("adding dependency")
	return true, nil
}

// best lists the dependency's tags and describes the highest compatible one.
func (in *Installer) best(ctx context.Context, name string, min *semver.Version) (*candidate, error) {
	r, err := in.Resolve(ctx, name)
	if err != nil {
		return nil, err
	}
	tags, err := in.Client.Tags(ctx, r)
	if err != nil {
		return nil, err
	}
	tag, _, ok := version.BestTag(tags, min)
	if !ok {
		return nil, fmt.Errorf("no tag of %s has major %d and is at least %s (tags: %v)", r.Repo(), min.Major(), min, tags)
	}
	r = r.WithTag(tag)
	a, err := in.Client.Describe(ctx, r, in.Platform)
	if err != nil {
		return nil, err
	}
	return in.fromArtifact(r, a)
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
