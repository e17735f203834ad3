// Package config reads falcoctl's configuration: the falcoctl.yaml file
// (keys case-insensitive, as viper treats them) overlaid with FALCOCTL_*
// environment variables, which win over the file. Command-line flags win over
// both; the cli package applies them.
//
// Unlike falcoctl, loading never creates the file or its directory: a missing
// file means defaults, so non-root users and read-only ConfigMap mounts work.
// Only commands whose purpose is to change configuration (index add/remove)
// write it, preserving every key they do not own (driver, ...).
//
// Beyond falcoctl, registry.tls (and FALCOCTL_REGISTRY_TLS) sets plain HTTP,
// a CA file or skip-verify per registry.
package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/falco-k8s/falco-k8s/artifact/auth"
	"github.com/falco-k8s/falco-k8s/internal/atomicfile"
)

// DefaultPath is falcoctl's default --config.
const DefaultPath = "/etc/falcoctl/falcoctl.yaml"

// Defaults from falcoctl.
const (
	DefaultIndexName     = "falcosecurity"
	DefaultIndexURL      = "https://falcosecurity.github.io/falcoctl/index.yaml"
	DefaultRulesfilesDir = "/etc/falco"
	DefaultPluginsDir    = "/usr/share/falco/plugins"
	DefaultAssetsDir     = "/etc/falco/assets"
	DefaultStateDir      = "/var/lib/falcoctl"
	DefaultEvery         = 168 * time.Hour
	DefaultFalcoVersions = "http://localhost:8765/versions"
)

// Index is an entry of "indexes:".
type Index struct {
	Name    string `yaml:"name"`
	URL     string `yaml:"url"`
	Backend string `yaml:"backend,omitempty"`
}

// TLS is a registry.tls entry.
type TLS struct {
	Registry           string `yaml:"registry"`
	PlainHTTP          bool   `yaml:"plainhttp"`
	InsecureSkipVerify bool   `yaml:"insecureskipverify"`
	CAFile             string `yaml:"cafile"`
}

// Dirs are the per-type destination and state directories.
type Dirs struct {
	RulesfilesDir string `yaml:"rulesfilesdir"`
	PluginsDir    string `yaml:"pluginsdir"`
	AssetsDir     string `yaml:"assetsdir"`
	StateDir      string `yaml:"statedir"`
}

// Config mirrors falcoctl.yaml. Tags are lower-case because keys are
// lower-cased before decoding.
type Config struct {
	Indexes  []Index `yaml:"indexes"`
	Registry struct {
		Creds struct {
			Config string `yaml:"config"`
		} `yaml:"creds"`
		Auth struct {
			Basic []auth.Basic `yaml:"basic"`
			OAuth []auth.OAuth `yaml:"oauth"`
			GCP   []struct {
				Registry string `yaml:"registry"`
			} `yaml:"gcp"`
		} `yaml:"auth"`
		TLS []TLS `yaml:"tls"`
	} `yaml:"registry"`
	Artifact struct {
		AllowedTypes []string `yaml:"allowedtypes"`
		NoVerify     bool     `yaml:"noverify"`
		Install      struct {
			Refs        []string `yaml:"refs"`
			Dirs        `yaml:",inline"`
			ResolveDeps *bool `yaml:"resolvedeps"`
		} `yaml:"install"`
		Follow struct {
			Refs            []string `yaml:"refs"`
			Dirs            `yaml:",inline"`
			Every           string `yaml:"every"`
			Cron            string `yaml:"cron"`
			StartupBehavior string `yaml:"startupbehavior"`
			FalcoVersions   string `yaml:"falcoversions"`
			TmpDir          string `yaml:"tmpdir"`
		} `yaml:"follow"`
	} `yaml:"artifact"`

	// Path is where the config was read from ("" if none).
	Path string `yaml:"-"`
	// FromEnv records which keys the environment set, for precedence.
	FromEnv map[string]bool `yaml:"-"`
}

// lowerKeys lower-cases every mapping key, which is how viper makes keys
// case-insensitive.
func lowerKeys(n *yaml.Node) {
	if n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			n.Content[i].Value = strings.ToLower(n.Content[i].Value)
		}
	}
	for _, c := range n.Content {
		lowerKeys(c)
	}
}

// Parse decodes falcoctl.yaml content (no env overlay, no defaults).
func Parse(b []byte) (*Config, error) {
	c := &Config{}
	var root yaml.Node
	if err := yaml.Unmarshal(b, &root); err != nil {
		return nil, fmt.Errorf("invalid YAML: %w", err)
	}
	if root.Kind == 0 || len(root.Content) == 0 {
		return c, nil
	}
	lowerKeys(&root)
	if root.Content[0].Kind == yaml.ScalarNode && root.Content[0].Tag == "!!null" {
		return c, nil
	}
	if root.Content[0].Kind != yaml.MappingNode {
		return nil, errors.New("top level must be a mapping of keys (indexes, registry, artifact, driver)")
	}
	if err := root.Decode(c); err != nil {
		return nil, fmt.Errorf("unexpected value: %w", err)
	}
	return c, nil
}

// Load reads path (missing file = defaults), applies env from getenv and
// fills defaults. getenv is os.Getenv in production.
func Load(path string, getenv func(string) string) (*Config, error) {
	c := &Config{}
	hadIndexes := false
	if path != "" {
		b, err := os.ReadFile(path)
		switch {
		case errors.Is(err, os.ErrNotExist):
		case err != nil:
			return nil, fmt.Errorf("read config %s: %w", path, err)
		default:
			if c, err = Parse(b); err != nil {
				return nil, fmt.Errorf("config %s: %w", path, err)
			}
			c.Path = path
			hadIndexes = hasKey(b, "indexes")
		}
	}
	if err := c.applyEnv(getenv); err != nil {
		return nil, err
	}
	if !hadIndexes && !c.FromEnv["indexes"] {
		c.Indexes = []Index{{Name: DefaultIndexName, URL: DefaultIndexURL, Backend: "https"}}
	}
	if c.Registry.Creds.Config == "" {
		c.Registry.Creds.Config = auth.DefaultDockerConfig()
	}
	def := func(p *string, v string) {
		if *p == "" {
			*p = v
		}
	}
	for _, d := range []*Dirs{&c.Artifact.Install.Dirs, &c.Artifact.Follow.Dirs} {
		def(&d.RulesfilesDir, DefaultRulesfilesDir)
		def(&d.PluginsDir, DefaultPluginsDir)
		def(&d.AssetsDir, DefaultAssetsDir)
		def(&d.StateDir, DefaultStateDir)
	}
	def(&c.Artifact.Follow.StartupBehavior, "jitter")
	def(&c.Artifact.Follow.FalcoVersions, DefaultFalcoVersions)
	if c.Artifact.Install.ResolveDeps == nil {
		t := true
		c.Artifact.Install.ResolveDeps = &t
	}
	return c, nil
}

func hasKey(b []byte, key string) bool {
	var m map[string]any
	if yaml.Unmarshal(b, &m) != nil {
		return false
	}
	for k := range m {
		if strings.EqualFold(k, key) {
			return true
		}
	}
	return false
}

// SplitList splits a ';'-separated env list, trimming blanks around items
// (falcoctl's whitespace quirk turned "a; b" into broken refs) and rejecting
// empty items with a message that names the variable.
func SplitList(env, v, sep string) ([]string, error) {
	var out []string
	for i, it := range strings.Split(v, sep) {
		it = strings.TrimSpace(it)
		if it == "" {
			return nil, fmt.Errorf("%s: item %d is empty (check for a trailing or doubled %q)", env, i+1, sep)
		}
		out = append(out, it)
	}
	return out, nil
}

func (c *Config) applyEnv(getenv func(string) string) error {
	c.FromEnv = map[string]bool{}
	str := func(key, env string, dst *string) {
		if v := getenv(env); v != "" {
			*dst = v
			c.FromEnv[key] = true
		}
	}
	list := func(key, env, sep string, dst *[]string) error {
		v := getenv(env)
		if v == "" {
			return nil
		}
		l, err := SplitList(env, v, sep)
		if err != nil {
			return err
		}
		*dst = l
		c.FromEnv[key] = true
		return nil
	}
	boolean := func(key, env string, set func(bool)) error {
		v := getenv(env)
		if v == "" {
			return nil
		}
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("%s=%q: expected true or false", env, v)
		}
		set(b)
		c.FromEnv[key] = true
		return nil
	}
	if v := getenv("FALCOCTL_INDEXES"); v != "" {
		items, err := SplitList("FALCOCTL_INDEXES", v, ";")
		if err != nil {
			return err
		}
		c.Indexes = nil
		for i, it := range items {
			f := strings.Split(it, ",")
			if len(f) != 2 || f[0] == "" || f[1] == "" {
				return fmt.Errorf("FALCOCTL_INDEXES: entry %d must be name,url (got %d fields)", i+1, len(f))
			}
			c.Indexes = append(c.Indexes, Index{Name: f[0], URL: f[1]})
		}
		c.FromEnv["indexes"] = true
	}
	if v := getenv("FALCOCTL_REGISTRY_AUTH_BASIC"); v != "" {
		b, err := auth.ParseBasicEnv(v)
		if err != nil {
			return err
		}
		c.Registry.Auth.Basic = b
		c.FromEnv["registry.auth.basic"] = true
	}
	if v := getenv("FALCOCTL_REGISTRY_AUTH_OAUTH"); v != "" {
		o, err := auth.ParseOAuthEnv(v)
		if err != nil {
			return err
		}
		c.Registry.Auth.OAuth = o
		c.FromEnv["registry.auth.oauth"] = true
	}
	if v := getenv("FALCOCTL_REGISTRY_TLS"); v != "" {
		t, err := ParseTLSEnv(v)
		if err != nil {
			return err
		}
		c.Registry.TLS = t
		c.FromEnv["registry.tls"] = true
	}
	str("registry.creds.config", "FALCOCTL_REGISTRY_CREDS_CONFIG", &c.Registry.Creds.Config)
	if err := list("artifact.allowedtypes", "FALCOCTL_ARTIFACT_ALLOWEDTYPES", ",", &c.Artifact.AllowedTypes); err != nil {
		return err
	}
	if err := boolean("artifact.noverify", "FALCOCTL_ARTIFACT_NOVERIFY", func(b bool) { c.Artifact.NoVerify = b }); err != nil {
		return err
	}
	in, fo := &c.Artifact.Install, &c.Artifact.Follow
	if err := list("artifact.install.refs", "FALCOCTL_ARTIFACT_INSTALL_REFS", ";", &in.Refs); err != nil {
		return err
	}
	if err := list("artifact.follow.refs", "FALCOCTL_ARTIFACT_FOLLOW_REFS", ";", &fo.Refs); err != nil {
		return err
	}
	for _, p := range []struct {
		prefix string
		d      *Dirs
	}{{"install", &in.Dirs}, {"follow", &fo.Dirs}} {
		up := "FALCOCTL_ARTIFACT_" + strings.ToUpper(p.prefix) + "_"
		str("artifact."+p.prefix+".rulesfilesdir", up+"RULESFILESDIR", &p.d.RulesfilesDir)
		str("artifact."+p.prefix+".pluginsdir", up+"PLUGINSDIR", &p.d.PluginsDir)
		str("artifact."+p.prefix+".assetsdir", up+"ASSETSDIR", &p.d.AssetsDir)
		str("artifact."+p.prefix+".statedir", up+"STATEDIR", &p.d.StateDir)
	}
	if err := boolean("artifact.install.resolvedeps", "FALCOCTL_ARTIFACT_INSTALL_RESOLVEDEPS", func(b bool) { in.ResolveDeps = &b }); err != nil {
		return err
	}
	str("artifact.follow.every", "FALCOCTL_ARTIFACT_FOLLOW_EVERY", &fo.Every)
	str("artifact.follow.cron", "FALCOCTL_ARTIFACT_FOLLOW_CRON", &fo.Cron)
	str("artifact.follow.startupbehavior", "FALCOCTL_ARTIFACT_FOLLOW_STARTUPBEHAVIOR", &fo.StartupBehavior)
	str("artifact.follow.falcoversions", "FALCOCTL_ARTIFACT_FOLLOW_FALCOVERSIONS", &fo.FalcoVersions)
	str("artifact.follow.tmpdir", "FALCOCTL_ARTIFACT_FOLLOW_TMPDIR", &fo.TmpDir)
	return nil
}

// ParseTLSEnv parses FALCOCTL_REGISTRY_TLS: "host,opt[,opt...];host2,..."
// with options plainhttp, insecure and cafile=/path.
func ParseTLSEnv(v string) ([]TLS, error) {
	const env = "FALCOCTL_REGISTRY_TLS"
	items, err := SplitList(env, v, ";")
	if err != nil {
		return nil, err
	}
	var out []TLS
	for i, it := range items {
		f := strings.Split(it, ",")
		if len(f) < 2 || strings.TrimSpace(f[0]) == "" {
			return nil, fmt.Errorf("%s: entry %d must be host,option[,option] with options plainhttp, insecure, cafile=/path", env, i+1)
		}
		t := TLS{Registry: strings.TrimSpace(f[0])}
		for _, o := range f[1:] {
			o = strings.TrimSpace(o)
			switch {
			case strings.EqualFold(o, "plainhttp"):
				t.PlainHTTP = true
			case strings.EqualFold(o, "insecure"):
				t.InsecureSkipVerify = true
			case strings.HasPrefix(strings.ToLower(o), "cafile="):
				t.CAFile = o[len("cafile="):]
				if t.CAFile == "" {
					return nil, fmt.Errorf("%s: entry %d: cafile= needs a path", env, i+1)
				}
			default:
				return nil, fmt.Errorf("%s: entry %d: unknown option %q (use plainhttp, insecure or cafile=/path)", env, i+1, o)
			}
		}
		out = append(out, t)
	}
	return out, nil
}

// Validate reports settings that would fail later, with what to change.
func (c *Config) Validate() error {
	seen := map[string]bool{}
	for i, ix := range c.Indexes {
		if ix.Name == "" || ix.URL == "" {
			return fmt.Errorf("indexes[%d]: name and url are required", i)
		}
		if seen[ix.Name] {
			return fmt.Errorf("indexes: %q is listed twice", ix.Name)
		}
		seen[ix.Name] = true
	}
	for i, t := range c.Registry.TLS {
		if t.Registry == "" {
			return fmt.Errorf("registry.tls[%d]: registry is required", i)
		}
		if t.PlainHTTP && (t.CAFile != "" || t.InsecureSkipVerify) {
			return fmt.Errorf("registry.tls[%d] (%s): plainHTTP cannot be combined with caFile or insecureSkipVerify", i, t.Registry)
		}
	}
	return nil
}

// SetIndexes rewrites only the "indexes" key of the config file at path,
// keeping every other key (including driver) as it was. A missing file is
// created with its directory (0700).
func SetIndexes(path string, indexes []Index) error {
	var root yaml.Node
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("read config %s: %w", path, err)
	}
	if len(b) > 0 {
		if err := yaml.Unmarshal(b, &root); err != nil {
			return fmt.Errorf("config %s: invalid YAML: %w", path, err)
		}
	}
	if root.Kind == 0 || len(root.Content) == 0 || root.Content[0].Kind != yaml.MappingNode {
		root = yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{{Kind: yaml.MappingNode}}}
	}
	m := root.Content[0]
	var val yaml.Node
	if err := val.Encode(indexes); err != nil {
		return err
	}
	replaced := false
	for i := 0; i+1 < len(m.Content); i += 2 {
		if strings.EqualFold(m.Content[i].Value, "indexes") {
			m.Content[i+1] = &val
			replaced = true
		}
	}
	if !replaced {
		m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: "indexes"}, &val)
	}
	out, err := yaml.Marshal(&root)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("create config directory: %w", err)
	}
	if err := atomicfile.WriteFileWith(path, out, 0o644, atomicfile.Options{KeepMode: true}); err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	return nil
}
