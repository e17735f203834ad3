package install

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/Masterminds/semver/v3"
	"github.com/rs/zerolog"

	"github.com/falco-k8s/falco-k8s/artifact/oci"
	"github.com/falco-k8s/falco-k8s/artifact/ref"
	"github.com/falco-k8s/falco-k8s/artifact/state"
	"github.com/falco-k8s/falco-k8s/artifact/version"
)

// Installer runs "artifact install".
type Installer struct {
	Client *oci.Client
	// Resolve maps a CLI argument or dependency name to a reference (index
	// names and full references).
	Resolve      func(ctx context.Context, s string) (ref.Reference, error)
	Dirs         map[oci.ArtifactType]string
	StateDir     string
	AllowedTypes []oci.ArtifactType // empty = all
	Platform     string
	ResolveDeps  bool
	// Force re-installs even when the state says the digest is current.
	Force    bool
	Stage    StageOptions
	Log      zerolog.Logger
	Progress func(name string, total int64) io.Writer
	// Verify, when set, checks an artifact's signature by its root digest before anything of it
	// is downloaded (artifact/signature); an error stops the install.
	Verify func(ctx context.Context, r ref.Reference, digest string) error
}

// Result describes one installed (or already current) artifact.
type Result struct {
	Ref     string
	Name    string
	Version string
	Type    oci.ArtifactType
	Digest  string
	Dir     string
	Files   []string
	Current bool // nothing was downloaded: the installed copy matched
}

type candidate struct {
	ref     ref.Reference
	art     *oci.Artifact // nil when current
	rec     state.Record  // when current
	cfg     oci.ArtifactConfig
	ver     *semver.Version
	typ     oci.ArtifactType
	current bool
	dep     bool
}

// Install resolves, stages every artifact, then promotes the batch and writes
// state files. Any error before promotion leaves every destination untouched.
func (in *Installer) Install(ctx context.Context, args []string) ([]Result, error) {
	if len(args) == 0 {
		return nil, errors.New("no artifacts to install: pass references or set artifact.install.refs")
	}
	byName := map[string]*candidate{}
	var order []string
	for _, a := range args {
		r, err := in.Resolve(ctx, a)
		if err != nil {
			return nil, err
		}
		c, err := in.load(ctx, r)
		if err != nil {
			return nil, err
		}
		if prev, ok := byName[c.cfg.Name]; ok {
			keep, drop := prev, c
			if c.ver.GreaterThan(prev.ver) {
				keep, drop = c, prev
			}
			in.Log.Warn().Str("name", c.cfg.Name).Str("kept", keep.ref.String()).Str("dropped", drop.ref.String()).Msg("same artifact requested twice, keeping the highest version")
			byName[c.cfg.Name] = keep
			continue
		}
		byName[c.cfg.Name] = c
		order = append(order, c.cfg.Name)
	}
	if in.ResolveDeps {
		if err := in.resolveDeps(ctx, byName); err != nil {
			return nil, err
		}
	}
	names := make([]string, 0, len(byName))
	for n := range byName {
		names = append(names, n)
	}
	// Deterministic: by type (plugins before the rules that need them), then name.
	rank := map[oci.ArtifactType]int{oci.Plugin: 0, oci.Rulesfile: 1, oci.Asset: 2}
	sort.Slice(names, func(i, j int) bool {
		a, b := byName[names[i]], byName[names[j]]
		if rank[a.typ] != rank[b.typ] {
			return rank[a.typ] < rank[b.typ]
		}
		return names[i] < names[j]
	})
	for _, n := range names {
		if err := in.allowed(byName[n]); err != nil {
			return nil, err
		}
	}
	staged := map[string]*Staged{}
	defer func() {
		for _, s := range staged {
			s.Discard()
		}
	}()
	for _, n := range names {
		c := byName[n]
		if c.current {
			continue
		}
		dir := in.Dirs[c.typ]
		if dir == "" {
			return nil, fmt.Errorf("install %s: no destination directory for type %s", c.ref, c.typ)
		}
		if in.Verify != nil {
			if err := in.Verify(ctx, c.ref, c.art.Root.Digest.String()); err != nil {
				return nil, fmt.Errorf("install %s: %w", c.ref, err)
			}
		}
		o := in.Stage
		if in.Progress != nil {
			o.Progress = in.Progress(c.ref.String(), c.art.Layer.Size)
		}
		st, err := Stage(ctx, in.Client, c.art, dir, o)
		if err != nil {
			return nil, fmt.Errorf("install %s: %w", c.ref, err)
		}
		staged[n] = st
	}
	var results []Result
	for _, n := range names {
		c := byName[n]
		res := Result{Ref: c.ref.String(), Name: c.cfg.Name, Version: c.cfg.Version, Type: c.typ}
		if c.current {
			res.Digest, res.Dir, res.Files, res.Current = c.rec.Digest, c.rec.Dir, c.rec.Files, true
			in.Log.Info().Str("ref", res.Ref).Str("digest", res.Digest).Msg("artifact already installed and intact, skipping download")
			results = append(results, res)
			continue
		}
		st := staged[n]
		prev, _, _ := state.Read(in.StateDir, c.ref.String())
		var prevFiles []string
		if prev.Dir == st.DestDir {
			prevFiles = prev.Files
		}
		files, err := st.Promote(prevFiles)
		if err != nil {
			return results, fmt.Errorf("install %s: %w", c.ref, err)
		}
		delete(staged, n)
		sums := map[string]string{}
		for _, f := range files {
			if h, err := state.HashFile(st.DestDir + "/" + f); err == nil {
				sums[f] = h
			}
		}
		rec := state.Record{Ref: c.ref.String(), Digest: c.art.Root.Digest.String(), UpdatedAt: time.Now().UTC(),
			Dir: st.DestDir, Files: files, SHA256: sums, Config: json.RawMessage(c.art.ConfigRaw), Type: string(c.typ)}
		if err := state.Write(in.StateDir, rec); err != nil {
			// As in falcoctl the files are installed; a missing state only
			// costs a re-download next time.
			in.Log.Warn().Err(err).Str("ref", rec.Ref).Msg("cannot write artifact state")
		}
		res.Digest, res.Dir, res.Files = rec.Digest, st.DestDir, files
		in.Log.Info().Str("ref", res.Ref).Str("digest", res.Digest).Str("dir", res.Dir).Strs("files", files).Msg("artifact installed")
		results = append(results, res)
	}
	return results, nil
}

func (in *Installer) allowed(c *candidate) error {
	if len(in.AllowedTypes) == 0 {
		return nil
	}
	for _, t := range in.AllowedTypes {
		if t == c.typ {
			return nil
		}
	}
	return fmt.Errorf("install %s: artifact type %s is not allowed (allowed: %v); change --allowed-types or artifact.allowedTypes", c.ref, c.typ, in.AllowedTypes)
}

// load learns an artifact's config. With a state record for the reference,
// one HEAD decides whether the installed copy is current (1 request);
// otherwise the manifest and config are fetched pinned to that digest, so a
// tag moving mid-install cannot mix versions.
func (in *Installer) load(ctx context.Context, r ref.Reference) (*candidate, error) {
	rec, ok, err := state.Read(in.StateDir, r.String())
	if err != nil {
		in.Log.Warn().Err(err).Msg("ignoring unreadable state file")
	}
	if ok && !in.Force && len(rec.Config) > 0 {
		d, err := in.Client.Resolve(ctx, r)
		if err != nil {
			return nil, err
		}
		if d.Digest.String() == rec.Digest && rec.Intact() {
			var cfg oci.ArtifactConfig
			if t, terr := oci.ParseType(rec.Type); terr == nil && json.Unmarshal(rec.Config, &cfg) == nil {
				if c, err := in.fromConfig(r, cfg); err == nil {
					c.rec, c.current, c.typ = rec, true, t
					return c, nil
				}
			}
		}
		a, err := in.Client.Describe(ctx, r.WithDigest(d.Digest.String()), in.Platform)
		if err != nil {
			return nil, err
		}
		return in.fromArtifact(r, a)
	}
	a, err := in.Client.Describe(ctx, r, in.Platform)
	if err != nil {
		return nil, err
	}
	return in.fromArtifact(r, a)
}

func (in *Installer) fromConfig(r ref.Reference, cfg oci.ArtifactConfig) (*candidate, error) {
	if cfg.Version == "" {
		return nil, fmt.Errorf("artifact %s: config has no version; it was not pushed by falcoctl or falco-k8s", r)
	}
	v, err := version.ParseTolerant(cfg.Version)
	if err != nil {
		return nil, fmt.Errorf("artifact %s: %w", r, err)
	}
	if cfg.Name == "" {
		cfg.Name = r.Repo()
	}
	return &candidate{ref: r, cfg: cfg, ver: v}, nil
}

func (in *Installer) fromArtifact(r ref.Reference, a *oci.Artifact) (*candidate, error) {
	c, err := in.fromConfig(r, a.Config)
	if err != nil {
		return nil, err
	}
	a.Ref = a.Ref.WithDigest(a.Root.Digest.String())
	c.art, c.typ = a, a.Type
	return c, nil
}
