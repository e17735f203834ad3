// Package oci speaks falcoctl's artifact wire format over the OCI distribution
// API: media types, the config blob, single-layer manifests and, for plugins,
// image indexes with Go-style platforms.
//
// Client is the process-wide registry client. It is safe for concurrent use
// and is meant to be created once and shared: it keeps one HTTP transport per
// TLS setting (plain HTTP, custom CA, skip-verify, chosen per registry host),
// one credential resolver and one token cache, so repeated requests to a
// registry, including the follower's periodic checks, do not repeat the
// 401 -> token -> retry dance. With Options.ChallengeCacheFile it also
// remembers each registry's Bearer challenge (realm and service, never a
// secret) across processes, so a new process fetches its token before the
// first request instead of after a 401 (see challenge.go for the rules that
// keep a tampered file from redirecting credentials).
//
// The follower's loop is built from:
//
//	d, err := c.Resolve(ctx, r)                  // one HEAD, body closed
//	a, err := c.Describe(ctx, r.WithDigest(d.Digest.String()), platform)
//	err = c.FetchLayer(ctx, a, w, maxBytes)       // digest- and size-verified
//
// and the install package turns that into staged, verified, atomically
// promoted files.
//
// Failures are classified once, here, by type (errors.go): Classify returns
// the Kind (connection, timeout, TLS, plain HTTP, auth, denied, not found,
// rate limited, unavailable, bad content) that the CLI's hints (Explain) and
// the follower's messages and retry policy are derived from. Integrity
// failures are ContentErrors (ErrDigestMismatch, ErrSizeMismatch), never
// connection errors.
package oci

import (
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// ArtifactType is one of falcoctl's artifact kinds.
type ArtifactType string

const (
	Rulesfile ArtifactType = "rulesfile"
	Plugin    ArtifactType = "plugin"
	Asset     ArtifactType = "asset"
)

// Media types, byte-identical to falcoctl's.
const (
	RulesfileConfigMediaType = "application/vnd.cncf.falco.rulesfile.config.v1+json"
	RulesfileLayerMediaType  = "application/vnd.cncf.falco.rulesfile.layer.v1+tar.gz"
	PluginConfigMediaType    = "application/vnd.cncf.falco.plugin.config.v1+json"
	PluginLayerMediaType     = "application/vnd.cncf.falco.plugin.layer.v1+tar.gz"
	AssetConfigMediaType     = "application/vnd.cncf.falco.asset.config.v1+json"
	AssetLayerMediaType      = "application/vnd.cncf.falco.asset.layer.v1+tar.gz"

	ManifestMediaType = "application/vnd.oci.image.manifest.v1+json"
	IndexMediaType    = "application/vnd.oci.image.index.v1+json"

	AnnotationTitle   = "org.opencontainers.image.title"
	AnnotationCreated = "org.opencontainers.image.created"
	AnnotationSource  = "org.opencontainers.image.source"
)

// AllTypes lists the types in a stable order, for help texts and validation.
var AllTypes = []ArtifactType{Rulesfile, Plugin, Asset}

// ParseType validates a --type / allowedTypes value.
func ParseType(s string) (ArtifactType, error) {
	switch t := ArtifactType(strings.ToLower(strings.TrimSpace(s))); t {
	case Rulesfile, Plugin, Asset:
		return t, nil
	}
	return "", fmt.Errorf("unknown artifact type %q: use rulesfile, plugin or asset", s)
}

// ConfigMediaType returns the config media type of t.
func (t ArtifactType) ConfigMediaType() string {
	switch t {
	case Rulesfile:
		return RulesfileConfigMediaType
	case Plugin:
		return PluginConfigMediaType
	case Asset:
		return AssetConfigMediaType
	}
	return ""
}

// LayerMediaType returns the layer media type of t.
func (t ArtifactType) LayerMediaType() string {
	switch t {
	case Rulesfile:
		return RulesfileLayerMediaType
	case Plugin:
		return PluginLayerMediaType
	case Asset:
		return AssetLayerMediaType
	}
	return ""
}

// TypeFromLayer maps a layer media type back to a type; like falcoctl the
// layer, not the config, decides.
func TypeFromLayer(mediaType string) (ArtifactType, bool) {
	for _, t := range AllTypes {
		if t.LayerMediaType() == mediaType {
			return t, true
		}
	}
	return "", false
}

// Dependency is an entry of the config "dependencies" list.
type Dependency struct {
	Name         string        `json:"name"`
	Version      string        `json:"version"`
	Alternatives []Alternative `json:"alternatives,omitempty"`
}

// Alternative can satisfy a dependency instead of its main name.
type Alternative struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

// Requirement is an entry of the config "requirements" list.
type Requirement struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

// ArtifactConfig is the config blob. Field order and omitempty match falcoctl
// so that the bytes, and hence the digest, are the same for the same input.
type ArtifactConfig struct {
	Name         string        `json:"name,omitempty"`
	Version      string        `json:"version,omitempty"`
	Dependencies []Dependency  `json:"dependencies,omitempty"`
	Requirements []Requirement `json:"requirements,omitempty"`
}

// Marshal encodes the config with dependencies and requirements sorted by
// name, as falcoctl does when they come from the CLI.
func (c ArtifactConfig) Marshal() ([]byte, error) {
	sort.SliceStable(c.Dependencies, func(i, j int) bool { return c.Dependencies[i].Name < c.Dependencies[j].Name })
	sort.SliceStable(c.Requirements, func(i, j int) bool { return c.Requirements[i].Name < c.Requirements[j].Name })
	return json.Marshal(c)
}

var (
	depNameRe  = regexp.MustCompile(`^[a-z]+[a-z0-9-_]*$`)
	platformRe = regexp.MustCompile(`^[a-z]+/[a-z0-9_]+$`)
)

// ParsePlatform validates "os/arch" as falcoctl does and splits it.
func ParsePlatform(s string) (os, arch string, err error) {
	if !platformRe.MatchString(s) {
		return "", "", fmt.Errorf("invalid platform %q: expected os/arch such as linux/amd64", s)
	}
	os, arch, _ = strings.Cut(s, "/")
	return os, arch, nil
}

// ParseRequirement parses "name:version" (--requires).
func ParseRequirement(s string) (Requirement, error) {
	name, ver, ok := strings.Cut(s, ":")
	if !ok || name == "" || ver == "" || strings.Contains(ver, ":") {
		return Requirement{}, fmt.Errorf("invalid requirement %q: expected name:version, e.g. engine_version_semver:0.40.0", s)
	}
	return Requirement{Name: name, Version: ver}, nil
}

// ParseDependency parses "name:ver|alt:ver|..." (--depends-on). Names follow
// falcoctl's grammar; versions must be strict semver.
func ParseDependency(s string, strict func(string) error) (Dependency, error) {
	parts := strings.Split(s, "|")
	var d Dependency
	for i, p := range parts {
		name, ver, ok := strings.Cut(p, ":")
		if !ok || !depNameRe.MatchString(name) {
			return Dependency{}, fmt.Errorf("invalid dependency %q: expected name:version[|alternative:version...] with lower-case names", s)
		}
		if err := strict(ver); err != nil {
			return Dependency{}, fmt.Errorf("invalid dependency %q: %w", s, err)
		}
		if i == 0 {
			d.Name, d.Version = name, ver
		} else {
			d.Alternatives = append(d.Alternatives, Alternative{Name: name, Version: ver})
		}
	}
	return d, nil
}
