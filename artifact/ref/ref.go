// Package ref parses the artifact references that falcoctl accepts: full OCI
// references (registry/repository[:tag][@digest]) and index references
// (name, name:tag, name@digest, and name:tag@digest, which falcoctl rejects but
// we accept by dropping the tag as for full references).
//
// Parsing never touches the network; resolving an index name to a repository
// is done by the index package through the Lookup function.
package ref

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/opencontainers/go-digest"
	orasreg "oras.land/oras-go/v2/registry"
)

// DefaultTag is used when a reference names neither a tag nor a digest, as
// falcoctl and docker do.
const DefaultTag = "latest"

var (
	tagRe = regexp.MustCompile(`^[\w][\w.-]{0,127}$`)
	// Index names follow falcoctl's dependency-name grammar loosened to allow
	// dots and upper-case letters seen in private indexes; '/' is what tells a
	// full reference apart and is never allowed.
	nameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
)

// Reference is a fully resolved OCI reference. Exactly one of Tag and Digest
// is set after Parse.
type Reference struct {
	Registry   string // host[:port]
	Repository string
	Tag        string
	Digest     string
}

// String renders registry/repository:tag or registry/repository@digest; this
// is the string falcoctl hashes for state file names.
func (r Reference) String() string {
	s := r.Registry + "/" + r.Repository
	if r.Digest != "" {
		return s + "@" + r.Digest
	}
	return s + ":" + r.Tag
}

// Repo returns registry/repository without tag or digest.
func (r Reference) Repo() string { return r.Registry + "/" + r.Repository }

// Object returns the tag or digest, whichever addresses the manifest.
func (r Reference) Object() string {
	if r.Digest != "" {
		return r.Digest
	}
	return r.Tag
}

// WithTag returns a copy pointing at tag (clearing any digest).
func (r Reference) WithTag(tag string) Reference {
	r.Tag, r.Digest = tag, ""
	return r
}

// WithDigest returns a copy pinned to d (clearing the tag).
func (r Reference) WithDigest(d string) Reference {
	r.Tag, r.Digest = "", d
	return r
}

// IsFull reports whether s is a full reference rather than an index name:
// falcoctl's rule is simply "contains a slash".
func IsFull(s string) bool { return strings.Contains(s, "/") }

// Parse parses a full reference. Like falcoctl the first path segment is always
// the registry (no docker.io/library normalisation), a tag next to a digest is
// dropped, and a missing tag becomes "latest".
func Parse(s string) (Reference, error) {
	if s == "" {
		return Reference{}, errors.New("empty reference: expected registry/repository[:tag][@digest]")
	}
	if !IsFull(s) {
		return Reference{}, fmt.Errorf("reference %q has no registry: expected registry/repository[:tag][@digest], or an index name", s)
	}
	// oras rejects "repo:tag@digest" in some forms; strip the tag ourselves so
	// the behaviour matches falcoctl (digest wins).
	body, dgst, hasDigest := strings.Cut(s, "@")
	slash := strings.Index(body, "/")
	if slash <= 0 {
		return Reference{}, fmt.Errorf("reference %q has no registry: expected registry/repository[:tag][@digest]", s)
	}
	host, path := body[:slash], body[slash+1:]
	tag := ""
	if i := strings.LastIndex(path, ":"); i >= 0 {
		path, tag = path[:i], path[i+1:]
		if tag == "" {
			return Reference{}, fmt.Errorf("reference %q: empty tag after ':'", s)
		}
	}
	r := Reference{Registry: host, Repository: path}
	if hasDigest {
		if _, err := digest.Parse(dgst); err != nil {
			return Reference{}, fmt.Errorf("reference %q: invalid digest %q: %v", s, dgst, err)
		}
		r.Digest = dgst
	} else {
		if tag == "" {
			tag = DefaultTag
		}
		r.Tag = tag
	}
	if tag != "" && !tagRe.MatchString(tag) {
		return Reference{}, fmt.Errorf("reference %q: invalid tag %q (allowed: letters, digits, '_', '.', '-'; at most 128 characters)", s, tag)
	}
	check := orasreg.Reference{Registry: r.Registry, Repository: r.Repository, Reference: r.Object()}
	if err := check.ValidateRegistry(); err != nil || strings.ContainsAny(r.Registry, " \t/@") {
		return Reference{}, fmt.Errorf("reference %q: invalid registry host %q", s, r.Registry)
	}
	if err := check.ValidateRepository(); err != nil {
		return Reference{}, fmt.Errorf("reference %q: invalid repository %q (lower-case letters, digits and separators . _ - /)", s, r.Repository)
	}
	return r, nil
}

// IndexRef is an index reference split into its name and optional tag/digest.
type IndexRef struct {
	Name   string
	Tag    string // empty means DefaultTag
	Digest string
}

// ParseIndexRef splits name[:tag][@digest].
func ParseIndexRef(s string) (IndexRef, error) {
	if s == "" {
		return IndexRef{}, errors.New("empty artifact name")
	}
	if IsFull(s) {
		return IndexRef{}, fmt.Errorf("%q is a full reference, not an index name", s)
	}
	var ir IndexRef
	body, dgst, hasDigest := strings.Cut(s, "@")
	if hasDigest {
		if _, err := digest.Parse(dgst); err != nil {
			return IndexRef{}, fmt.Errorf("reference %q: invalid digest %q: %v", s, dgst, err)
		}
		ir.Digest = dgst
	}
	name, tag, hasTag := strings.Cut(body, ":")
	if hasTag {
		if !tagRe.MatchString(tag) {
			return IndexRef{}, fmt.Errorf("reference %q: invalid tag %q", s, tag)
		}
		if !hasDigest {
			ir.Tag = tag
		}
	}
	if !nameRe.MatchString(name) {
		return IndexRef{}, fmt.Errorf("reference %q: invalid artifact name %q", s, name)
	}
	ir.Name = name
	return ir, nil
}

// Lookup maps an index name to registry and repository. ok is false when no
// configured index knows the name.
type Lookup func(name string) (registry, repository string, ok bool)

// Resolve turns either form into a full Reference. lookup may be nil when no
// index is configured; then only full references resolve.
func Resolve(s string, lookup Lookup) (Reference, error) {
	if IsFull(s) {
		return Parse(s)
	}
	ir, err := ParseIndexRef(s)
	if err != nil {
		return Reference{}, err
	}
	if lookup == nil {
		return Reference{}, fmt.Errorf("cannot find %s among the configured indexes: no index is configured (add one with 'index add', or use a full reference registry/repository:tag)", ir.Name)
	}
	reg, repo, ok := lookup(ir.Name)
	if !ok {
		return Reference{}, fmt.Errorf("cannot find %s among the configured indexes (run 'index update' or 'artifact search %s', or use a full reference)", ir.Name, ir.Name)
	}
	full := reg + "/" + repo
	switch {
	case ir.Digest != "":
		full += "@" + ir.Digest
	case ir.Tag != "":
		full += ":" + ir.Tag
	}
	r, err := Parse(full)
	if err != nil {
		return Reference{}, fmt.Errorf("index entry %s: %w", ir.Name, err)
	}
	return r, nil
}

// Host strips a path from a registry argument ("ghcr.io/org/x" -> "ghcr.io"),
// matching falcoctl's handling of auth commands and env entries.
func Host(s string) string {
	if i := strings.Index(s, "/"); i >= 0 {
		return s[:i]
	}
	return s
}
