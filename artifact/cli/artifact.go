package cli

import (
	"context"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/falco-k8s/falco-k8s/artifact/extract"
	"github.com/falco-k8s/falco-k8s/artifact/index"
	"github.com/falco-k8s/falco-k8s/artifact/install"
	"github.com/falco-k8s/falco-k8s/artifact/oci"
	"github.com/falco-k8s/falco-k8s/artifact/ref"
	"github.com/falco-k8s/falco-k8s/artifact/signature"
)

func newArtifactCmd(a *app) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "artifact",
		Short: "Interact with Falco artifacts",
	}
	a.addPersistent(cmd)
	cmd.AddCommand(newSearchCmd(a), newListCmd(a), newInfoCmd(a), newInstallCmd(a), newManifestCmd(a, false), newManifestCmd(a, true))
	return cmd
}

func newSearchCmd(a *app) *cobra.Command {
	var minScore float64
	var typ string
	c := &cobra.Command{
		Use:   "search KEYWORD...",
		Short: "Search an artifact by keywords",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if minScore <= 0 || minScore > 1 {
				return fmt.Errorf("--min-score must be in (0, 1], got %v", minScore)
			}
			if typ != "" {
				if _, err := oci.ParseType(typ); err != nil {
					return err
				}
			}
			m, err := a.mergedIndex()
			if err != nil {
				return err
			}
			all, err := m.All(cmd.Context())
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(a.out, 0, 4, 3, ' ', 0)
			fmt.Fprintln(tw, "INDEX\tARTIFACT\tTYPE\tREGISTRY\tREPOSITORY")
			for _, r := range index.Search(all, args, minScore, typ) {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Index, r.Entry.Name, r.Entry.Type, r.Entry.Registry, r.Entry.Repository)
			}
			return tw.Flush()
		},
	}
	c.Flags().Float64Var(&minScore, "min-score", 0.65, "the minimum score used to match artifact names with search keywords")
	c.Flags().StringVar(&typ, "type", "", "only search artifacts with a specific type (rulesfile, plugin, asset)")
	return c
}

func newListCmd(a *app) *cobra.Command {
	var typ, ixName string
	c := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List all artifacts",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			m, err := a.mergedIndex()
			if err != nil {
				return err
			}
			all, err := m.All(cmd.Context())
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(a.out, 0, 4, 3, ' ', 0)
			fmt.Fprintln(tw, "INDEX\tARTIFACT\tTYPE\tREGISTRY\tREPOSITORY")
			for _, f := range all {
				if (typ != "" && f.Entry.Type != typ) || (ixName != "" && f.Index != ixName) {
					continue
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", f.Index, f.Entry.Name, f.Entry.Type, f.Entry.Registry, f.Entry.Repository)
			}
			return tw.Flush()
		},
	}
	c.Flags().StringVar(&typ, "type", "", "only list artifacts with a specific type")
	c.Flags().StringVar(&ixName, "index", "", "only list artifacts from a specific index")
	return c
}

func newInfoCmd(a *app) *cobra.Command {
	c := &cobra.Command{
		Use:   "info REF...",
		Short: "Retrieve all available information about an artifact",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			cl, _, err := a.client(ctx)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(a.out, 0, 4, 3, ' ', 0)
			fmt.Fprintln(tw, "REF\tTAGS")
			for _, s := range args {
				r, err := a.resolve(ctx, s)
				if err != nil {
					a.log.Warn().Err(err).Str("ref", s).Msg("cannot resolve reference, skipping")
					continue
				}
				tags, err := cl.Tags(ctx, r)
				if err != nil {
					a.log.Warn().Err(err).Str("ref", r.Repo()).Msg("cannot list tags, skipping")
					continue
				}
				var keep []string
				for _, t := range tags {
					if !strings.HasSuffix(t, ".sig") {
						keep = append(keep, t)
					}
				}
				fmt.Fprintf(tw, "%s\t%s\n", r.Repo(), strings.Join(keep, ", "))
			}
			return tw.Flush()
		},
	}
	c.Flags().BoolVar(&a.plainHTTP, "plain-http", false, "allows interacting with remote registry via plain http requests")
	return c
}

func newManifestCmd(a *app, isConfig bool) *cobra.Command {
	var platform string
	use, short := "manifest REF", "Get the manifest layer of an artifact"
	if isConfig {
		use, short = "config REF", "Get the config layer of an artifact"
	}
	c := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			cl, _, err := a.client(ctx)
			if err != nil {
				return err
			}
			r, err := a.resolve(ctx, args[0])
			if err != nil {
				return err
			}
			if platform != "" {
				if _, _, err := oci.ParsePlatform(platform); err != nil {
					return err
				}
			}
			art, err := cl.Describe(ctx, r, platform)
			if err != nil {
				return err
			}
			b := art.ManifestRaw
			if isConfig {
				b = art.ConfigRaw
			}
			_, err = fmt.Fprintln(a.out, string(b))
			return err
		},
	}
	c.Flags().StringVar(&platform, "platform", oci.CurrentPlatform(), "os and architecture of the artifact in OS/ARCH format")
	c.Flags().BoolVar(&a.plainHTTP, "plain-http", false, "allows interacting with remote registry via plain http requests")
	return c
}

func newInstallCmd(a *app) *cobra.Command {
	var (
		rulesDir, pluginsDir, assetsDir, stateDir, platform string
		allowed                                             []string
		resolveDeps, noVerify, force                        bool
		verifyKey, trustedRoot, certIdentity, certIssuer    string
		maxLayer                                            int64
		maxFiles                                            int
		maxFileBytes, maxTotal                              int64
	)
	c := &cobra.Command{
		Use:   "install [REF...]",
		Short: "Install a list of artifacts",
		Long: "Install artifacts (index names or full references). Without arguments, artifact.install.refs " +
			"from the config or FALCOCTL_ARTIFACT_INSTALL_REFS are used. Every artifact is downloaded, verified and " +
			"extracted into a staging area before any file becomes visible; files are then renamed into place.",
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			ic := a.cfg.Artifact.Install
			f := cmd.Flags()
			pick := func(flag string, cli, cfgVal string) string {
				if f.Changed(flag) {
					return cli
				}
				return cfgVal
			}
			rd := pick("rulesfiles-dir", rulesDir, ic.RulesfilesDir)
			pd := pick("plugins-dir", pluginsDir, ic.PluginsDir)
			// falcoctl read follow.assetsdir here by mistake; we use install's.
			ad := pick("assets-dir", assetsDir, ic.AssetsDir)
			sd := pick("state-dir", stateDir, ic.StateDir)
			deps := *ic.ResolveDeps
			if f.Changed("resolve-deps") {
				deps = resolveDeps
			}
			types := a.cfg.Artifact.AllowedTypes
			if f.Changed("allowed-types") {
				types = allowed
			}
			var ats []oci.ArtifactType
			for _, t := range types {
				for _, part := range strings.Split(t, ",") {
					if part = strings.TrimSpace(part); part == "" {
						continue
					}
					at, err := oci.ParseType(part)
					if err != nil {
						return fmt.Errorf("--allowed-types: %w", err)
					}
					ats = append(ats, at)
				}
			}
			if _, _, err := oci.ParsePlatform(platform); err != nil {
				return err
			}
			refs := args
			if len(refs) == 0 {
				refs = ic.Refs
			}
			if len(refs) == 0 {
				return fmt.Errorf("no artifacts to install: pass references, or set artifact.install.refs in %s or FALCOCTL_ARTIFACT_INSTALL_REFS", a.configPath)
			}
			var checker signature.Checker
			if !noVerify {
				var err error
				if checker, err = signatureChecker(verifyKey, trustedRoot, certIdentity, certIssuer); err != nil {
					return err
				}
			}
			cl, _, err := a.client(ctx)
			if err != nil {
				return err
			}
			in := &install.Installer{
				Client:       cl,
				Resolve:      a.resolve,
				Dirs:         map[oci.ArtifactType]string{oci.Rulesfile: rd, oci.Plugin: pd, oci.Asset: ad},
				StateDir:     sd,
				AllowedTypes: ats,
				Platform:     platform,
				ResolveDeps:  deps,
				Force:        force,
				Stage: install.StageOptions{MaxLayerBytes: maxLayer,
					Limits: extract.Limits{MaxFiles: maxFiles, MaxFileBytes: maxFileBytes, MaxTotal: maxTotal}},
				Log:      a.log,
				Progress: a.progress,
			}
			// falcoctl index entries' signature.cosign identity and issuer apply to the
			// references resolved through them, checked offline against --trusted-root.
			entries := map[string]*index.Cosign{}
			in.Resolve = func(ctx context.Context, s string) (ref.Reference, error) {
				r, err := a.resolve(ctx, s)
				if err == nil {
					if c := a.entrySignature(ctx, s); c != nil {
						entries[r.Repo()] = c
					}
				}
				return r, err
			}
			if !noVerify {
				in.Verify = func(ctx context.Context, r ref.Reference, d string) error {
					ch, err := a.checkerFor(entries[r.Repo()], checker, trustedRoot, r)
					if ch == nil || err != nil {
						return err
					}
					v, err := ch.Verify(ctx, cl, r, d, signature.Required)
					if err == nil {
						a.log.Info().Str("ref", r.String()).Str("digest", d).Str("signer", v.String()).Msg("signature verified")
					}
					return err
				}
			}
			res, err := in.Install(ctx, refs)
			if err != nil {
				return err
			}
			for _, r := range res {
				a.log.Info().Str("ref", r.Ref).Str("version", r.Version).Str("type", string(r.Type)).Str("dir", r.Dir).Bool("current", r.Current).Msg("artifact ready")
			}
			return nil
		},
	}
	fl := c.Flags()
	fl.StringVar(&rulesDir, "rulesfiles-dir", "/etc/falco", "directory where to install rules")
	fl.StringVar(&pluginsDir, "plugins-dir", "/usr/share/falco/plugins", "directory where to install plugins")
	fl.StringVar(&assetsDir, "assets-dir", "/etc/falco/assets", "directory where to install assets")
	fl.StringVar(&stateDir, "state-dir", "/var/lib/falcoctl", "directory where to store artifact state files")
	fl.StringSliceVar(&allowed, "allowed-types", nil, "list of artifact types that can be installed (rulesfile, plugin, asset); empty means all")
	fl.StringVar(&platform, "platform", oci.CurrentPlatform(), "os and architecture of the artifact in OS/ARCH format")
	fl.BoolVar(&resolveDeps, "resolve-deps", true, "whether this command should resolve dependencies or not")
	fl.BoolVar(&noVerify, "no-verify", false, "skip signature verification")
	fl.StringVar(&verifyKey, "verify-key", "", "require a cosign signature made with this public key (cosign.pub) for every artifact")
	fl.StringVar(&trustedRoot, "trusted-root", "", "Sigstore trusted_root.json for keyless signatures (cosign v3 bundles), checked offline; also applies index entries' signature.cosign identities")
	fl.StringVar(&certIdentity, "certificate-identity", "", "keyless: the signing certificate's identity (with --trusted-root)")
	fl.StringVar(&certIssuer, "certificate-oidc-issuer", "", "keyless: the signing certificate's OIDC issuer (with --trusted-root)")
	fl.BoolVar(&force, "force", false, "download and install even when the state file says the artifact is current")
	fl.BoolVar(&a.plainHTTP, "plain-http", false, "allows interacting with remote registry via plain http requests")
	fl.Int64Var(&maxLayer, "max-layer-size", install.DefaultMaxLayerBytes, "maximum compressed layer size in bytes")
	fl.IntVar(&maxFiles, "max-files", extract.DefaultLimits.MaxFiles, "maximum number of files in an artifact")
	fl.Int64Var(&maxFileBytes, "max-file-size", extract.DefaultLimits.MaxFileBytes, "maximum size of one extracted file in bytes")
	fl.Int64Var(&maxTotal, "max-total-size", extract.DefaultLimits.MaxTotal, "maximum total extracted size in bytes")
	return c
}

// signatureChecker builds the install command's signature check from its flags: a key, keyless
// (trusted root, identity and issuer), both (either may sign), or none (nil).
func signatureChecker(keyFile, rootFile, identity, issuer string) (signature.Checker, error) {
	var checkers signature.Any
	if keyFile != "" {
		b, err := os.ReadFile(keyFile)
		if err != nil {
			return nil, fmt.Errorf("--verify-key: %w", err)
		}
		v, err := signature.NewVerifier(b)
		if err != nil {
			return nil, fmt.Errorf("--verify-key %s: %w", keyFile, err)
		}
		checkers = append(checkers, v)
	}
	if identity != "" || issuer != "" {
		if rootFile == "" || identity == "" || issuer == "" {
			return nil, fmt.Errorf("keyless verification needs --trusted-root, --certificate-identity and --certificate-oidc-issuer together")
		}
		b, err := os.ReadFile(rootFile)
		if err != nil {
			return nil, fmt.Errorf("--trusted-root: %w", err)
		}
		k, err := signature.NewKeyless(b, identity, "", issuer, "")
		if err != nil {
			return nil, fmt.Errorf("--trusted-root %s: %w", rootFile, err)
		}
		checkers = append(checkers, k)
	}
	switch len(checkers) {
	case 0:
		return nil, nil
	case 1:
		return checkers[0], nil
	}
	return checkers, nil
}

// entrySignature is the cosign policy of the index entry s (an index name) resolves through.
func (a *app) entrySignature(ctx context.Context, s string) *index.Cosign {
	if ref.IsFull(s) {
		return nil
	}
	ir, err := ref.ParseIndexRef(s)
	if err != nil {
		return nil
	}
	m, err := a.mergedIndex()
	if err != nil {
		return nil
	}
	f, ok, err := m.Get(ctx, ir.Name)
	if err != nil || !ok || f.Entry.Signature == nil || f.Entry.Signature.Cosign == nil {
		return nil
	}
	return f.Entry.Signature.Cosign
}

// checkerFor is the signature check of one artifact: the flags' checker, plus the index
// entry's keyless identity when the entry has one. Without --trusted-root an entry's identity
// cannot be checked offline: it is logged and the flags' checker (if any) alone applies.
func (a *app) checkerFor(entry *index.Cosign, flags signature.Checker, rootFile string, r ref.Reference) (signature.Checker, error) {
	if entry == nil || entry.CertificateIdentity == "" && entry.CertificateIdentityRegexp == "" {
		return flags, nil
	}
	if rootFile == "" {
		a.log.Warn().Str("ref", r.String()).Str("identity", entry.CertificateIdentity+entry.CertificateIdentityRegexp).
			Msg("the index entry names a keyless signer; pass --trusted-root (Sigstore's trusted_root.json) to verify it offline")
		return flags, nil
	}
	b, err := os.ReadFile(rootFile)
	if err != nil {
		return nil, fmt.Errorf("--trusted-root: %w", err)
	}
	k, err := signature.NewKeyless(b, entry.CertificateIdentity, entry.CertificateIdentityRegexp, entry.CertificateOIDCIssuer, entry.CertificateOIDCIssuerRegexp)
	if err != nil {
		return nil, fmt.Errorf("index entry signature of %s: %w", r.Repo(), err)
	}
	if flags == nil {
		return k, nil
	}
	return signature.Any{flags, k}, nil
}
