// Package version holds the semantic-version rules of falcoctl artifacts:
// strict versions for push, tolerant versions when reading configs, floating
// tags that never let a prerelease move X, X.Y or latest, requirement checks
// against Falco's /versions map, and the choice of a dependency tag.
package version

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/Masterminds/semver/v3"
)

var strictRe = regexp.MustCompile(`^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?$`)

// ParseStrict accepts exactly SemVer 2.0 without build metadata, which is
// what falcoctl requires for --version and --depends-on.
func ParseStrict(s string) (*semver.Version, error) {
	if strings.Contains(s, "+") {
		return nil, fmt.Errorf("version %q: build metadata (+...) is not allowed; use MAJOR.MINOR.PATCH[-PRERELEASE]", s)
	}
	if !strictRe.MatchString(s) {
		return nil, fmt.Errorf("version %q is not strict semver: use MAJOR.MINOR.PATCH[-PRERELEASE], e.g. 1.2.3", s)
	}
	return semver.StrictNewVersion(s)
}

// ParseTolerant reads config versions the way falcoctl does: a leading "v" is
// ignored and missing minor/patch default to 0 ("1" is 1.0.0).
func ParseTolerant(s string) (*semver.Version, error) {
	t := strings.TrimPrefix(strings.TrimSpace(s), "v")
	if t == "" {
		return nil, fmt.Errorf("empty version")
	}
	if !strings.ContainsAny(t, "-+") {
		parts := strings.Split(t, ".")
		if len(parts) < 3 {
			for len(parts) < 3 {
				parts = append(parts, "0")
			}
			t = strings.Join(parts, ".")
		}
	}
	v, err := semver.StrictNewVersion(t)
	if err != nil {
		return nil, fmt.Errorf("version %q is not a valid semantic version: %v", s, err)
	}
	return v, nil
}

// FloatingPolicy selects how --add-floating-tags moves X, X.Y and latest.
type FloatingPolicy int

const (
	// FloatAlways moves X and X.Y for every final release (falcoctl and the
	// plugins CI), but never for a prerelease.
	FloatAlways FloatingPolicy = iota
	// FloatIfHighest moves X.Y, X and latest only when the version is the
	// highest final release in that line (the falcosecurity/rules CI policy).
	FloatIfHighest
)

// ParseFloatingPolicy maps the CLI names to policies.
func ParseFloatingPolicy(s string) (FloatingPolicy, error) {
	switch s {
	case "", "always":
		return FloatAlways, nil
	case "highest":
		return FloatIfHighest, nil
	}
	return 0, fmt.Errorf("unknown floating tag policy %q: use 'always' or 'highest'", s)
}

// FloatingTags returns the tags to add for version v. refTag is the tag of the
// pushed reference (falcoctl only adds "latest" when that is the reference);
// existing lists the tags already in the repository and is only consulted by
// FloatIfHighest. A prerelease gets only its exact tag.
func FloatingTags(v *semver.Version, policy FloatingPolicy, refTag string, existing []string) []string {
	exact := v.Original()
	tags := []string{exact}
	if v.Prerelease() != "" {
		return tags
	}
	major := strconv.FormatUint(v.Major(), 10)
	minor := major + "." + strconv.FormatUint(v.Minor(), 10)
	if policy == FloatAlways {
		return append(tags, minor, major)
	}
	var finals []*semver.Version
	for _, t := range existing {
		ev, err := semver.StrictNewVersion(t)
		if err != nil || ev.Prerelease() != "" || ev.Metadata() != "" {
			continue
		}
		finals = append(finals, ev)
	}
	highestIn := func(keep func(*semver.Version) bool) bool {
		for _, e := range finals {
			if keep(e) && e.GreaterThan(v) {
				return false
			}
		}
		return true
	}
	if highestIn(func(e *semver.Version) bool { return e.Major() == v.Major() && e.Minor() == v.Minor() }) {
		tags = append(tags, minor)
	}
	if highestIn(func(e *semver.Version) bool { return e.Major() == v.Major() }) {
		tags = append(tags, major)
	}
	if refTag != "latest" && highestIn(func(*semver.Version) bool { return true }) {
		tags = append(tags, "latest")
	}
	return tags
}

// CheckRequirement applies falcoctl's rule: an integer requirement is
// compared as an integer (have >= want); otherwise both sides must be semver
// with equal majors and have >= want.
func CheckRequirement(name, want string, have map[string]string) error {
	got, ok := have[name]
	if !ok {
		return fmt.Errorf("requirement %s:%s: Falco does not report %q", name, want, name)
	}
	if wi, err := strconv.ParseUint(want, 10, 64); err == nil {
		gi, err := strconv.ParseUint(got, 10, 64)
		if err != nil {
			return fmt.Errorf("requirement %s:%s: Falco reports non-integer %q", name, want, got)
		}
		if gi < wi {
			return fmt.Errorf("requirement %s:%s not met: Falco has %s", name, want, got)
		}
		return nil
	}
	wv, err := semver.StrictNewVersion(want)
	if err != nil {
		return fmt.Errorf("requirement %s:%s: invalid version: %v", name, want, err)
	}
	gv, err := semver.StrictNewVersion(got)
	if err != nil {
		return fmt.Errorf("requirement %s:%s: Falco reports invalid version %q", name, want, got)
	}
	if gv.Major() != wv.Major() || gv.LessThan(wv) {
		return fmt.Errorf("requirement %s:%s not met: Falco has %s (needs same major, at least %s)", name, want, got, want)
	}
	return nil
}

// BestTag picks the tag that satisfies a dependency on min: the highest final
// (or exact) version with the same major that is at least min. Tags that are
// not full versions (floating tags, "latest") are ignored. ok is false when no
// tag qualifies.
func BestTag(tags []string, min *semver.Version) (string, *semver.Version, bool) {
	var best *semver.Version
	bestTag := ""
	for _, t := range tags {
		v, err := semver.StrictNewVersion(t)
		if err != nil || v.Metadata() != "" {
			continue
		}
		if v.Prerelease() != "" && !v.Equal(min) {
			continue
		}
		if v.Major() != min.Major() || v.LessThan(min) {
			continue
		}
		if best == nil || v.GreaterThan(best) {
			best, bestTag = v, t
		}
	}
	return bestTag, best, best != nil
}

// SortDesc sorts versions highest first; used to make choices deterministic.
func SortDesc(vs []*semver.Version) {
	sort.SliceStable(vs, func(i, j int) bool { return vs[i].GreaterThan(vs[j]) })
}
