// Package requirements decides, from an artifact's config blob alone, whether this agent can use
// a rules artifact: the config's requirements (engine version) and dependencies (plugins) are
// checked against what the engine implements before any layer is downloaded, so a candidate
// built for a newer engine costs two small requests and is ignored with a clear reason.
package requirements

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/Masterminds/semver/v3"

	"github.com/falco-k8s/falco-k8s/artifact/oci"
	"github.com/falco-k8s/falco-k8s/engine"
)

// Requirement names in artifact configs (falcoctl's and the official publishers').
const (
	// EngineVersion is the legacy integer engine version ("15"): the engine's minor version.
	EngineVersion = "engine_version"
	// EngineVersionSemver is the engine version as semver ("0.50.0").
	EngineVersionSemver = "engine_version_semver"
)

// Have is what the agent implements.
type Have struct {
	// Engine is the engine's version, semver.
	Engine string
	// Plugins maps the plugins whose fields the engine implements to their versions.
	Plugins map[string]string
}

// Agent is what this build implements: engine.EngineVersion and engine.BuiltinPlugins.
func Agent() Have { return Have{Engine: engine.EngineVersion, Plugins: engine.BuiltinPlugins} }

// UnmetError says which requirement or dependency an artifact needs that this agent lacks.
type UnmetError struct {
	// What is "engine version" or "plugin <name>".
	What string
	// Need is the version the artifact asks for; Have what the agent implements.
	Need, Have string
}

func (e *UnmetError) Error() string {
	return fmt.Sprintf("needs %s %s, this agent implements %s", e.What, e.Need, e.Have)
}

// InvalidError is a requirement or dependency whose version cannot be read.
type InvalidError struct {
	Name, Version string
	Err           error
}

func (e *InvalidError) Error() string {
	return fmt.Sprintf("invalid version %q for %s in the artifact config: %v", e.Version, e.Name, e.Err)
}

func (e *InvalidError) Unwrap() error { return e.Err }

// Check returns an *UnmetError for the first requirement or dependency h does not satisfy, an
// *InvalidError for one that cannot be read, and nil otherwise. Requirements other than the
// engine's (plugin_api_version concerns plugin artifacts) are not this agent's to check, and a
// dependency none of whose alternatives is a plugin the engine implements is left to the
// engine, which skips the rules of sources it does not implement, with a warning.
func Check(cfg oci.ArtifactConfig, h Have) error {
	for _, r := range cfg.Requirements {
		switch r.Name {
		case EngineVersion:
			need, err := strconv.ParseUint(strings.TrimSpace(r.Version), 10, 64)
			if err != nil {
				return &InvalidError{Name: r.Name, Version: r.Version, Err: err}
			}
			hv, err := semver.StrictNewVersion(h.Engine)
			if err != nil {
				return &InvalidError{Name: "the agent's engine", Version: h.Engine, Err: err}
			}
			if hv.Major() == 0 && hv.Minor() < need {
				return &UnmetError{What: "engine version", Need: r.Version, Have: fmt.Sprintf("%d (%s)", hv.Minor(), h.Engine)}
			}
		case EngineVersionSemver:
			if err := atLeast(r.Name, "engine version", r.Version, h.Engine); err != nil {
				return err
			}
		}
	}
	for _, d := range cfg.Dependencies {
		alts := append([]oci.Alternative{{Name: d.Name, Version: d.Version}}, d.Alternatives...)
		var first error
		ours := false
		for _, a := range alts {
			have, ok := h.Plugins[a.Name]
			if !ok {
				continue
			}
			ours = true
			err := atLeast(a.Name, "plugin "+a.Name, a.Version, have)
			if err == nil {
				first = nil
				break
			}
			if first == nil {
				first = err
			}
		}
		if ours && first != nil {
			return first
		}
	}
	return nil
}

// atLeast applies Falco's compatibility rule: same major, have >= need.
func atLeast(name, what, need, have string) error {
	nv, err := semver.NewVersion(strings.TrimSpace(need))
	if err != nil {
		return &InvalidError{Name: name, Version: need, Err: err}
	}
	hv, err := semver.NewVersion(have)
	if err != nil {
		return &InvalidError{Name: "the agent's " + what, Version: have, Err: err}
	}
	if hv.Major() != nv.Major() || hv.LessThan(nv) {
		return &UnmetError{What: what, Need: need, Have: have}
	}
	return nil
}
