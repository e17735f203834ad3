// Package cli provides the falcoctl-compatible "index", "artifact" and
// "registry" command groups. AddCommands attaches them to a cobra root; each
// group carries falcoctl's persistent flags (--config, --log-format,
// --log-level) and loads the configuration (never creating it).
//
// Precedence for every setting is falcoctl's: command-line flag, then
// FALCOCTL_* environment variable, then the config file, then the default.
package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/falco-k8s/falco-k8s/artifact/auth"
	"github.com/falco-k8s/falco-k8s/artifact/config"
	"github.com/falco-k8s/falco-k8s/artifact/index"
	"github.com/falco-k8s/falco-k8s/artifact/oci"
	"github.com/falco-k8s/falco-k8s/artifact/ref"
)

// env is the process environment lookup; tests replace it.
var getenv = os.Getenv

// state shared by the commands of one invocation.
type app struct {
	configPath string
	logFormat  string
	logLevel   string
	plainHTTP  bool

	cfg *config.Config
	log zerolog.Logger
	out io.Writer
	err io.Writer
	// cacheDir is ~/.config/falcoctl; overridable for tests.
	cacheDir string
	// wrap lets tests count HTTP requests.
	wrap oci.Options
	// merged is built lazily from config + cache.
	merged *index.Merged
}

// AddCommands adds the index, artifact and registry groups to root.
func AddCommands(root *cobra.Command) {
	for _, c := range newCommands(nil) {
		root.AddCommand(c)
	}
}

func newCommands(a *app) []*cobra.Command {
	mk := func() *app {
		if a != nil {
			return a
		}
		return &app{}
	}
	return []*cobra.Command{newIndexCmd(mk()), newArtifactCmd(mk()), newRegistryCmd(mk())}
}

func (a *app) addPersistent(cmd *cobra.Command) {
	f := cmd.PersistentFlags()
	f.StringVar(&a.configPath, "config", config.DefaultPath, "config file to be used for falcoctl")
	f.StringVar(&a.logFormat, "log-format", "color", "Set formatting for logs (color, text, json)")
	f.StringVar(&a.logLevel, "log-level", "info", "Set level for logs (info, warn, debug, trace)")
	cmd.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error { return a.setup(cmd) }
	cmd.SilenceUsage = true
}

func (a *app) setup(cmd *cobra.Command) error {
	if a.out == nil {
		a.out = cmd.OutOrStdout()
	}
	if a.err == nil {
		a.err = cmd.ErrOrStderr()
	}
	log, err := newLogger(a.err, a.logFormat, a.logLevel)
	if err != nil {
		return err
	}
	a.log = log
	cfg, err := config.Load(a.configPath, getenv)
	if err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("config %s: %w", a.configPath, err)
	}
	if len(cfg.Registry.Auth.GCP) > 0 {
		a.log.Warn().Msg("registry.auth.gcp is not supported by falco-k8s; use basic, oauth or docker credentials for those registries")
	}
	a.cfg = cfg
	if a.cacheDir == "" {
		a.cacheDir = index.DefaultCacheDir()
	}
	return nil
}

// newLogger builds a zerolog logger. The JSON shape is falcoctl's
// ({"level":"INFO","msg":...,"timestamp":"YYYY-MM-DD HH:MM:SS"}) because users
// grep those lines.
func newLogger(w io.Writer, format, level string) (zerolog.Logger, error) {
	var lvl zerolog.Level
	switch strings.ToLower(level) {
	case "info":
		lvl = zerolog.InfoLevel
	case "warn", "warning":
		lvl = zerolog.WarnLevel
	case "debug":
		lvl = zerolog.DebugLevel
	case "trace":
		lvl = zerolog.TraceLevel
	default:
		return zerolog.Logger{}, fmt.Errorf("invalid --log-level %q: use info, warn, debug or trace", level)
	}
	const ts = "2006-01-02 15:04:05"
	switch strings.ToLower(format) {
	case "json":
		zerolog.TimeFieldFormat = ts
		zerolog.TimestampFieldName = "timestamp"
		zerolog.MessageFieldName = "msg"
		zerolog.LevelFieldName = "level"
		zerolog.LevelFieldMarshalFunc = func(l zerolog.Level) string { return strings.ToUpper(l.String()) }
		return zerolog.New(w).Level(lvl).With().Timestamp().Logger(), nil
	case "text", "color":
		color := format == "color"
		if f, ok := w.(*os.File); !ok || !isatty.IsTerminal(f.Fd()) {
			color = false
		}
		cw := zerolog.ConsoleWriter{Out: w, NoColor: !color, TimeFormat: ts}
		return zerolog.New(cw).Level(lvl).With().Timestamp().Logger(), nil
	}
	return zerolog.Logger{}, fmt.Errorf("invalid --log-format %q: use color, text or json", format)
}

func (a *app) cache() (*index.Cache, error) { return index.OpenCache(a.cacheDir) }

// mergedIndex combines the config's indexes with cached ones that the config
// does not list (falcoctl ignored those: #519).
func (a *app) mergedIndex() (*index.Merged, error) {
	if a.merged != nil {
		return a.merged, nil
	}
	c, err := a.cache()
	if err != nil {
		return nil, err
	}
	var srcs []index.Source
	seen := map[string]bool{}
	for _, ce := range c.Configs {
		if !inConfig(a.cfg, ce.Name) {
			srcs = append(srcs, index.Source{Name: ce.Name, URL: ce.URL, Backend: ce.Backend})
			seen[ce.Name] = true
		}
	}
	for _, ix := range a.cfg.Indexes {
		srcs = append(srcs, index.Source{Name: ix.Name, URL: ix.URL, Backend: ix.Backend})
	}
	a.merged = &index.Merged{Sources: srcs, Cache: c}
	return a.merged, nil
}

func inConfig(cfg *config.Config, name string) bool {
	for _, ix := range cfg.Indexes {
		if ix.Name == name {
			return true
		}
	}
	return false
}

// resolve turns an argument into a reference, consulting indexes only for
// index names.
func (a *app) resolve(ctx context.Context, s string) (ref.Reference, error) {
	if ref.IsFull(s) {
		return ref.Parse(s)
	}
	m, err := a.mergedIndex()
	if err != nil {
		return ref.Reference{}, err
	}
	var lerr error
	r, err := ref.Resolve(s, func(name string) (string, string, bool) {
		f, ok, err := m.Get(ctx, name)
		if err != nil {
			lerr = err
			return "", "", false
		}
		return f.Entry.Registry, f.Entry.Repository, ok
	})
	if lerr != nil {
		return ref.Reference{}, fmt.Errorf("resolve %s: %w", s, lerr)
	}
	return r, err
}

// client builds the registry client from config + env + --plain-http.
func (a *app) client(ctx context.Context) (*oci.Client, *auth.Resolver, error) {
	res, err := auth.NewResolver(ctx, auth.Sources{
		Basic:           a.cfg.Registry.Auth.Basic,
		OAuth:           a.cfg.Registry.Auth.OAuth,
		DockerConfig:    a.cfg.Registry.Creds.Config,
		ClientCredsFile: clientCredsPath(a.cacheDir),
	})
	if err != nil {
		return nil, nil, err
	}
	o := a.wrap
	o.PlainHTTP = a.plainHTTP
	o.Credential = res.Credential
	// Remember registries' token challenges (realm and service only, never tokens) so a CLI run
	// after the first one fetches its token up front: 4 requests per token-auth install, not 5.
	// Beside falcoctl's own state so one directory holds everything the commands keep.
	o.ChallengeCacheFile = filepath.Join(a.cacheDir, "registry-challenges.json")
	o.TLS = map[string]oci.TLSOptions{}
	for _, t := range a.cfg.Registry.TLS {
		o.TLS[t.Registry] = oci.TLSOptions{PlainHTTP: t.PlainHTTP, InsecureSkipVerify: t.InsecureSkipVerify, CAFile: t.CAFile}
	}
	c, err := oci.NewClient(o)
	if err != nil {
		return nil, nil, err
	}
	return c, res, nil
}

func clientCredsPath(cacheDir string) string {
	return cacheDir + "/clientcredentials.json"
}

// progress returns a writer that draws a simple progress line on stderr when
// it is a terminal, and nil otherwise (logs only).
func (a *app) progress(name string, total int64) io.Writer {
	f, ok := a.err.(*os.File)
	if !ok || !isatty.IsTerminal(f.Fd()) || a.logFormat == "json" {
		return nil
	}
	return &bar{w: f, name: name, total: total, start: time.Now()}
}

type bar struct {
	w     io.Writer
	name  string
	total int64
	n     int64
	start time.Time
	last  time.Time
}

func (b *bar) Write(p []byte) (int, error) {
	b.n += int64(len(p))
	if now := time.Now(); now.Sub(b.last) > 100*time.Millisecond || b.n >= b.total {
		b.last = now
		pct := 100.0
		if b.total > 0 {
			pct = float64(b.n) * 100 / float64(b.total)
		}
		const width = 30
		fill := int(pct / 100 * width)
		fmt.Fprintf(b.w, "\r%-40.40s [%s%s] %5.1f%% %d/%d B", b.name, strings.Repeat("=", fill), strings.Repeat(" ", width-fill), pct, b.n, b.total)
		if b.n >= b.total {
			fmt.Fprintln(b.w)
		}
	}
	return len(p), nil
}
