package cli

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/mattn/go-isatty"
	"github.com/spf13/cobra"
	"golang.org/x/oauth2/clientcredentials"
	"golang.org/x/sys/unix"
	"gopkg.in/yaml.v3"
	orasauth "oras.land/oras-go/v2/registry/remote/auth"
	"oras.land/oras-go/v2/registry/remote/credentials"

	"github.com/falco-k8s/falco-k8s/artifact/auth"
	"github.com/falco-k8s/falco-k8s/artifact/oci"
	"github.com/falco-k8s/falco-k8s/artifact/ref"
	"github.com/falco-k8s/falco-k8s/artifact/signature"
	"github.com/falco-k8s/falco-k8s/artifact/version"
	"github.com/falco-k8s/falco-k8s/internal/atomicfile"
)

func newRegistryCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "registry",
		Short: "Interact with OCI registries",
	}
	a.addPersistent(cmd)
	authCmd := &cobra.Command{Use: "auth", Short: "Handle authentication towards OCI registries"}
	authCmd.AddCommand(newAuthBasicCmd(a), newAuthOAuthCmd(a), &cobra.Command{
		Use:   "gcp HOST",
		Short: "Register an Artifact Registry to log in using GCP Application Default Credentials (not supported)",
		Args:  cobra.ExactArgs(1),
		RunE: func(*cobra.Command, []string) error {
			return fmt.Errorf("gcp authentication is not supported by falco-k8s: use 'registry auth oauth' or 'registry auth basic' with username oauth2accesstoken and an access token")
		},
	})
	cmd.AddCommand(newPushCmd(a), newPullCmd(a), authCmd)
	return cmd
}

// hasExplicitTag tells "repo" from "repo:tag" in what the user typed, which
// ref.Parse hides by defaulting to latest.
func hasExplicitTag(s string) bool {
	body, _, _ := strings.Cut(s, "@")
	last := body[strings.LastIndex(body, "/")+1:]
	return strings.Contains(last, ":")
}

func newPushCmd(a *app) *cobra.Command {
	var (
		typ, ver, name, source, policy  string
		signKey                         string
		tags, platforms, requires, deps []string
		floating, newBundle             bool
	)
	c := &cobra.Command{
		Use:   "push REF FILE...",
		Short: "Push a Falco OCI artifact to a remote registry",
		Long: "Push a rulesfile, plugin or asset. A file that is not a tar.gz is packed into <name>.tar.gz; for a raw " +
			"rules YAML, dependencies and requirements are read from required_plugin_versions and required_engine_version " +
			"unless --depends-on/--requires are given. --add-floating-tags never moves X, X.Y or latest for a prerelease.",
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			t, err := oci.ParseType(typ)
			if err != nil {
				return fmt.Errorf("--type: %w", err)
			}
			v, err := version.ParseStrict(ver)
			if err != nil {
				return fmt.Errorf("--version: %w", err)
			}
			pol, err := version.ParseFloatingPolicy(policy)
			if err != nil {
				return err
			}
			r, err := ref.Parse(args[0])
			if err != nil {
				return err
			}
			if r.Digest != "" {
				return fmt.Errorf("push %s: cannot push to a digest; use a tag", args[0])
			}
			files := args[1:]
			if t != oci.Plugin && len(files) != 1 {
				return fmt.Errorf("push: a %s takes exactly one file, got %d", t, len(files))
			}
			if t == oci.Plugin && len(platforms) != len(files) {
				return fmt.Errorf("push: plugins need one --platform per file (%d files, %d platforms)", len(files), len(platforms))
			}
			if t != oci.Plugin && len(platforms) > 0 {
				return fmt.Errorf("push: --platform is only for plugins")
			}
			layers := make([]oci.Layer, len(files))
			for i, f := range files {
				layers[i] = oci.Layer{Path: f}
				if t == oci.Plugin {
					if _, _, err := oci.ParsePlatform(platforms[i]); err != nil {
						return err
					}
					layers[i].Platform = platforms[i]
				}
			}
			cfg := oci.ArtifactConfig{Name: name, Version: ver}
			if cfg.Name == "" {
				cfg.Name = r.Repository[strings.LastIndex(r.Repository, "/")+1:]
			}
			for _, rq := range requires {
				q, err := oci.ParseRequirement(rq)
				if err != nil {
					return err
				}
				cfg.Requirements = append(cfg.Requirements, q)
			}
			for _, d := range deps {
				dd, err := oci.ParseDependency(d, func(s string) error { _, err := version.ParseStrict(s); return err })
				if err != nil {
					return err
				}
				cfg.Dependencies = append(cfg.Dependencies, dd)
			}
			if t == oci.Rulesfile && (len(requires) == 0 || len(deps) == 0) {
				b, err := os.ReadFile(files[0])
				if err != nil {
					return fmt.Errorf("push: %w", err)
				}
				if !oci.IsTarGz(b) {
					rd, rq, err := rulesMetadata(b)
					if err != nil {
						return fmt.Errorf("push: %s: %w", files[0], err)
					}
					if len(deps) == 0 {
						cfg.Dependencies = rd
					}
					if len(requires) == 0 {
						cfg.Requirements = rq
					}
				}
			}
			// Load the signing key before pushing, so a wrong path or password pushes nothing.
			var signer *signature.Signer
			if newBundle && signKey == "" {
				return fmt.Errorf("--new-bundle-format signs: set --sign-key too")
			}
			if signKey != "" {
				pemBytes, err := os.ReadFile(signKey)
				if err != nil {
					return fmt.Errorf("--sign-key: %w", err)
				}
				if signer, err = signature.NewSigner(pemBytes, []byte(getenv(signature.PasswordEnv))); err != nil {
					return fmt.Errorf("--sign-key %s: %w (the password of an encrypted key comes from $%s)", signKey, err, signature.PasswordEnv)
				}
			}
			cl, _, err := a.client(ctx)
			if err != nil {
				return err
			}
			var all []string
			if hasExplicitTag(args[0]) {
				all = append(all, r.Tag)
			}
			all = append(all, tags...)
			if floating {
				var existing []string
				if pol == version.FloatIfHighest {
					existing, err = cl.Tags(ctx, r)
					if err != nil {
						a.log.Debug().Err(err).Msg("cannot list existing tags; assuming none")
					}
				}
				refTag := ""
				if hasExplicitTag(args[0]) {
					refTag = r.Tag
				}
				all = append(all, version.FloatingTags(v, pol, refTag, existing)...)
			}
			if len(all) == 0 {
				all = []string{ref.DefaultTag}
			}
			res, err := cl.Push(ctx, r, oci.PushOptions{Type: t, Layers: layers, Config: cfg, Tags: dedupe(all), AnnotationSource: source})
			if err != nil {
				return err
			}
			a.log.Info().Str("ref", r.Repo()).Str("digest", res.Root.Digest.String()).Strs("tags", res.Tags).Msg("artifact pushed")
			if signer != nil {
				d := res.Root.Digest.String()
				sig := signature.Tag(d)
				if newBundle {
					sig, err = signer.SignBundle(ctx, cl, r, d)
				} else {
					_, err = signer.Sign(ctx, cl, r, d)
				}
				if err != nil {
					return fmt.Errorf("artifact pushed as %s but not signed: %w", res.Root.Digest, err)
				}
				a.log.Info().Str("ref", r.Repo()).Str("digest", d).Str("key", signer.Key()).Str("signature", sig).Msg("artifact signed")
			}
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&typ, "type", "", "type of artifact to be pushed: rulesfile, plugin, asset")
	f.StringVar(&ver, "version", "", "set the version of the artifact (strict semver)")
	f.StringSliceVarP(&tags, "tag", "t", nil, "additional artifact tag (repeatable)")
	f.BoolVar(&floating, "add-floating-tags", false, "add the floating tags for the major and minor versions (never for prereleases)")
	f.StringVar(&policy, "floating-tags-policy", "always", "when to move floating tags: always (falcoctl) or highest (only if this is the highest release in that line; also moves latest)")
	f.StringSliceVar(&platforms, "platform", nil, "os and architecture of the artifact in OS/ARCH format (plugins only, one per file)")
	f.StringArrayVarP(&requires, "requires", "r", nil, "set an artifact requirement (name:version)")
	f.StringArrayVarP(&deps, "depends-on", "d", nil, "set an artifact dependency (name:version[|alt:version...])")
	f.StringVar(&source, "annotation-source", "", "set annotation source for the artifact")
	f.StringVar(&name, "name", "", "set the unique name of the artifact (default: last segment of the repository)")
	f.BoolVar(&newBundle, "new-bundle-format", false, "with --sign-key: sign as cosign v3 does with this flag, a Sigstore bundle attached as an OCI 1.1 referrer, instead of the sha256-<hex>.sig tag")
	f.StringVar(&signKey, "sign-key", "", "sign the pushed digest with this private key, as `cosign sign --key` (cosign.key, password in $COSIGN_PASSWORD; or a PEM key)")
	f.BoolVar(&a.plainHTTP, "plain-http", false, "allows interacting with remote registry via plain http requests")
	_ = c.MarkFlagRequired("type")
	_ = c.MarkFlagRequired("version")
	return c
}

func dedupe(in []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range in {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// rulesMetadata derives dependencies and requirements from a rules file as
// falcoctl does: required_plugin_versions and required_engine_version (an
// integer N means 0.N.0).
func rulesMetadata(b []byte) ([]oci.Dependency, []oci.Requirement, error) {
	var items []struct {
		RequiredEngineVersion  any `yaml:"required_engine_version"`
		RequiredPluginVersions []struct {
			Name         string            `yaml:"name"`
			Version      string            `yaml:"version"`
			Alternatives []oci.Alternative `yaml:"alternatives"`
		} `yaml:"required_plugin_versions"`
	}
	if err := yaml.Unmarshal(b, &items); err != nil {
		return nil, nil, fmt.Errorf("not a Falco rules file (expected a YAML list): %w", err)
	}
	var deps []oci.Dependency
	var reqs []oci.Requirement
	for _, it := range items {
		for _, p := range it.RequiredPluginVersions {
			deps = append(deps, oci.Dependency{Name: p.Name, Version: p.Version, Alternatives: p.Alternatives})
		}
		switch v := it.RequiredEngineVersion.(type) {
		case nil:
		case int:
			reqs = []oci.Requirement{{Name: "engine_version_semver", Version: fmt.Sprintf("0.%d.0", v)}}
		case string:
			if _, err := version.ParseStrict(v); err != nil {
				return nil, nil, fmt.Errorf("required_engine_version: %w", err)
			}
			reqs = []oci.Requirement{{Name: "engine_version_semver", Version: v}}
		default:
			return nil, nil, fmt.Errorf("required_engine_version must be an integer or a semver string")
		}
	}
	return deps, reqs, nil
}

func newPullCmd(a *app) *cobra.Command {
	var dest, platform string
	c := &cobra.Command{
		Use:   "pull REF",
		Short: "Pull a Falco OCI artifact from a remote registry",
		Long:  "Download the artifact's layer (a .tar.gz, not extracted) into --dest-dir under its title annotation.",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if _, _, err := oci.ParsePlatform(platform); err != nil {
				return err
			}
			cl, _, err := a.client(ctx)
			if err != nil {
				return err
			}
			r, err := a.resolve(ctx, args[0])
			if err != nil {
				return err
			}
			art, err := cl.Describe(ctx, r, platform)
			if err != nil {
				return err
			}
			name := art.Filename
			if name == "" || name != filepath.Base(name) || name == "." || name == ".." || strings.ContainsAny(name, `/\`) {
				return fmt.Errorf("pull %s: layer title %q is not a plain file name; refusing to write it", r, name)
			}
			if err := os.MkdirAll(dest, 0o755); err != nil {
				return fmt.Errorf("pull %s: %w", r, err)
			}
			out := filepath.Join(dest, name)
			err = atomicfile.WriteStream(out, 0o644, atomicfile.Options{}, func(w io.Writer) error {
				if p := a.progress(r.String(), art.Layer.Size); p != nil {
					w = io.MultiWriter(w, p)
				}
				return cl.FetchLayer(ctx, art, w, 0)
			})
			if err != nil {
				return err
			}
			a.log.Info().Str("ref", r.String()).Str("digest", art.Root.Digest.String()).Str("file", out).Msg("artifact pulled")
			return nil
		},
	}
	c.Flags().StringVarP(&dest, "dest-dir", "o", ".", "destination dir where to save the artifacts")
	c.Flags().StringVar(&platform, "platform", oci.CurrentPlatform(), "os and architecture of the artifact in OS/ARCH format")
	c.Flags().BoolVar(&a.plainHTTP, "plain-http", false, "allows interacting with remote registry via plain http requests")
	return c
}

func newAuthBasicCmd(a *app) *cobra.Command {
	var user, pass string
	var passStdin bool
	c := &cobra.Command{
		Use:   "basic HOST",
		Short: "Login to an OCI registry",
		Long: "Check the credentials against the registry and store them in the docker credential store " +
			"(registry.creds.config, default ~/.docker/config.json, mode 0600).",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			host := ref.Host(args[0])
			f := cmd.Flags()
			if !f.Changed("username") {
				user = getenv("FALCOCTL_REGISTRY_AUTH_BASIC_USERNAME")
			}
			if !f.Changed("password") {
				pass = getenv("FALCOCTL_REGISTRY_AUTH_BASIC_PASSWORD")
			}
			if !f.Changed("password-stdin") && getenv("FALCOCTL_REGISTRY_AUTH_BASIC_PASSWORD_STDIN") != "" {
				passStdin = strings.EqualFold(getenv("FALCOCTL_REGISTRY_AUTH_BASIC_PASSWORD_STDIN"), "true")
			}
			in := cmd.InOrStdin()
			if passStdin {
				if pass != "" {
					return fmt.Errorf("--password and --password-stdin are mutually exclusive")
				}
				b, err := io.ReadAll(io.LimitReader(in, 64<<10))
				if err != nil {
					return err
				}
				pass = strings.TrimRight(string(b), "\r\n")
			}
			if user == "" || pass == "" {
				var err error
				if user, pass, err = prompt(in, a.err, user, pass); err != nil {
					return err
				}
			}
			cl, _, err := a.client(ctx)
			if err != nil {
				return err
			}
			cred := orasauth.Credential{Username: user, Password: pass}
			if err := cl.PingWithCredential(ctx, host, cred); err != nil {
				return err
			}
			path := a.cfg.Registry.Creds.Config
			if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
				return err
			}
			st, err := credentials.NewStore(path, credentials.StoreOptions{AllowPlaintextPut: true})
			if err != nil {
				return fmt.Errorf("credential store %s: %w", path, err)
			}
			if err := st.Put(ctx, host, cred); err != nil {
				return fmt.Errorf("store credentials for %s in %s: %w", host, path, err)
			}
			if err := os.Chmod(path, 0o600); err != nil {
				return err
			}
			a.log.Info().Str("registry", host).Str("store", path).Msg("login succeeded")
			return nil
		},
	}
	c.Flags().StringVarP(&user, "username", "u", "", "registry username")
	c.Flags().StringVarP(&pass, "password", "p", "", "registry password")
	c.Flags().BoolVar(&passStdin, "password-stdin", false, "read password from stdin")
	return c
}

func prompt(in io.Reader, out io.Writer, user, pass string) (string, string, error) {
	f, ok := in.(*os.File)
	if !ok || !isatty.IsTerminal(f.Fd()) {
		return "", "", fmt.Errorf("missing username or password: use -u/-p, --password-stdin or FALCOCTL_REGISTRY_AUTH_BASIC_USERNAME/_PASSWORD")
	}
	rd := bufio.NewReader(in)
	if user == "" {
		fmt.Fprint(out, "Username: ")
		l, err := rd.ReadString('\n')
		if err != nil {
			return "", "", err
		}
		user = strings.TrimSpace(l)
	}
	if pass == "" {
		fmt.Fprint(out, "Password: ")
		fd := int(f.Fd())
		old, err := unix.IoctlGetTermios(fd, unix.TCGETS)
		if err == nil {
			noEcho := *old
			noEcho.Lflag &^= unix.ECHO
			_ = unix.IoctlSetTermios(fd, unix.TCSETS, &noEcho)
			defer func() { _ = unix.IoctlSetTermios(fd, unix.TCSETS, old) }()
		}
		l, err := rd.ReadString('\n')
		fmt.Fprintln(out)
		if err != nil {
			return "", "", err
		}
		pass = strings.TrimRight(l, "\r\n")
	}
	if user == "" || pass == "" {
		return "", "", fmt.Errorf("username and password must not be empty")
	}
	return user, pass, nil
}

func newAuthOAuthCmd(a *app) *cobra.Command {
	var tokenURL, id, secret string
	var scopes []string
	c := &cobra.Command{
		Use:   "oauth HOST",
		Short: "Retrieve access and refresh tokens for an OAuth2.0 client credentials flow",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			host := ref.Host(args[0])
			cfg := clientcredentials.Config{ClientID: id, ClientSecret: secret, TokenURL: tokenURL, Scopes: scopes}
			if err := auth.TestOAuth(cmd.Context(), cfg); err != nil {
				return fmt.Errorf("oauth %s: %w", host, err)
			}
			p := clientCredsPath(a.cacheDir)
			if err := auth.WriteClientCredentials(p, host, cfg); err != nil {
				return err
			}
			a.log.Info().Str("registry", host).Str("file", p).Msg("client credentials saved")
			return nil
		},
	}
	c.Flags().StringVar(&tokenURL, "token-url", "", "token URL used to get access and refresh tokens")
	c.Flags().StringVar(&id, "client-id", "", "client ID of the OAuth2.0 app")
	c.Flags().StringVar(&secret, "client-secret", "", "client secret of the OAuth2.0 app")
	c.Flags().StringSliceVar(&scopes, "scopes", nil, "comma separated list of scopes for which requesting access")
	for _, n := range []string{"token-url", "client-id", "client-secret"} {
		_ = c.MarkFlagRequired(n)
	}
	return c
}
