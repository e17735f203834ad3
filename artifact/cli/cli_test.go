package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/falco-k8s/falco-k8s/artifact/oci"
	"github.com/falco-k8s/falco-k8s/artifact/state"
	"github.com/falco-k8s/falco-k8s/internal/testregistry"
)

type env struct {
	t        *testing.T
	home     string
	cfg      string
	vars     map[string]string
	reg      *testregistry.Registry
	stdin    string
	lastOut  string
	lastErrs string
}

func newEnv(t *testing.T, o testregistry.Options) *env {
	t.Helper()
	home := t.TempDir()
	e := &env{t: t, home: home, cfg: filepath.Join(home, "falcoctl.yaml"), vars: map[string]string{}, reg: testregistry.New(t, o)}
	// An empty config file: no default falcosecurity index, no network.
	if err := os.WriteFile(e.cfg, []byte("indexes: []\nregistry:\n  creds:\n    config: "+filepath.Join(home, "docker", "config.json")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return e
}

// run executes one command line against fresh cobra commands.
func (e *env) run(args ...string) error {
	old := getenv
	getenv = func(k string) string { return e.vars[k] }
	defer func() { getenv = old }()
	a := &app{cacheDir: filepath.Join(e.home, ".config", "falcoctl")}
	root := &cobra.Command{Use: "falco-k8s", SilenceErrors: true, SilenceUsage: true}
	for _, c := range newCommands(a) {
		root.AddCommand(c)
	}
	var out, errb bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errb)
	root.SetIn(strings.NewReader(e.stdin))
	args = append(args, "--config", e.cfg, "--log-format", "json")
	root.SetArgs(args)
	err := root.ExecuteContext(context.Background())
	e.lastOut, e.lastErrs = out.String(), errb.String()
	return err
}

func (e *env) must(args ...string) string {
	e.t.Helper()
	if err := e.run(args...); err != nil {
		e.t.Fatalf("%v: %v\nstderr: %s", args, err, e.lastErrs)
	}
	return e.lastOut
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

const rulesYAML = `- required_engine_version: 0.31.0
- required_plugin_versions:
    - name: k8saudit
      version: 0.7.0
      alternatives:
        - name: k8saudit-eks
          version: 0.4.0
- rule: test
  desc: d
  condition: evt.type = open
  output: o
  priority: INFO
`

func TestPushInstallPullInfoRoundTrip(t *testing.T) {
	e := newEnv(t, testregistry.Options{})
	src := t.TempDir()
	rules := writeFile(t, src, "my_rules.yaml", rulesYAML)
	repo := e.reg.Host + "/falco/rules/my-rules"
	e.must("registry", "push", repo, rules, "--type", "rulesfile", "--version", "1.2.3", "--add-floating-tags", "--plain-http", "--annotation-source", "https://example.com/src")

	out := e.must("artifact", "info", repo, "--plain-http")
	if !strings.Contains(out, "1, 1.2, 1.2.3") || strings.Contains(out, "latest") {
		t.Fatalf("info tags: %q", out)
	}

	cfgOut := e.must("artifact", "config", repo+":1.2.3", "--plain-http")
	var cfg oci.ArtifactConfig
	if err := json.Unmarshal([]byte(cfgOut), &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Name != "my-rules" || cfg.Version != "1.2.3" || len(cfg.Dependencies) != 1 || cfg.Dependencies[0].Alternatives[0].Name != "k8saudit-eks" ||
		len(cfg.Requirements) != 1 || cfg.Requirements[0] != (oci.Requirement{Name: "engine_version_semver", Version: "0.31.0"}) {
		t.Fatalf("config: %+v", cfg)
	}
	// Byte-level order of the config blob is falcoctl's.
	if !strings.HasPrefix(strings.TrimSpace(cfgOut), `{"name":"my-rules","version":"1.2.3","dependencies":[`) {
		t.Fatalf("config bytes: %s", cfgOut)
	}

	manOut := e.must("artifact", "manifest", repo+":1", "--plain-http")
	var man map[string]any
	if err := json.Unmarshal([]byte(manOut), &man); err != nil {
		t.Fatal(err)
	}
	if _, has := man["artifactType"]; has {
		t.Fatal("manifest must not carry artifactType")
	}
	layers := man["layers"].([]any)
	l0 := layers[0].(map[string]any)
	if l0["mediaType"] != oci.RulesfileLayerMediaType || l0["annotations"].(map[string]any)["org.opencontainers.image.title"] != "my_rules.tar.gz" {
		t.Fatalf("layer: %v", l0)
	}
	if _, has := man["config"].(map[string]any)["annotations"]; has {
		t.Fatal("config descriptor must not have annotations")
	}
	ann := man["annotations"].(map[string]any)
	if ann["org.opencontainers.image.source"] != "https://example.com/src" || ann["org.opencontainers.image.created"] == nil {
		t.Fatalf("annotations: %v", ann)
	}

	pullDir := t.TempDir()
	e.must("registry", "pull", repo+":1.2", "-o", pullDir, "--plain-http")
	if _, err := os.Stat(filepath.Join(pullDir, "my_rules.tar.gz")); err != nil {
		t.Fatalf("pulled file: %v", err)
	}

	rulesDir, stateDir := t.TempDir(), t.TempDir()
	e.must("artifact", "install", repo+":1", "--plain-http", "--rulesfiles-dir", rulesDir, "--state-dir", stateDir, "--resolve-deps=false")
	got, err := os.ReadFile(filepath.Join(rulesDir, "my_rules.yaml"))
	if err != nil || string(got) != rulesYAML {
		t.Fatalf("installed content: %q %v", got, err)
	}
	// falcoctl-compatible state file.
	sp := state.Path(stateDir, repo+":1")
	fi, err := os.Stat(sp)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("state mode %v", fi.Mode())
	}
	di, _ := os.Stat(filepath.Dir(sp))
	if di.Mode().Perm() != 0o700 {
		t.Fatalf("state dir mode %v", di.Mode())
	}
	var raw map[string]any
	b, _ := os.ReadFile(sp)
	_ = json.Unmarshal(b, &raw)
	if raw["ref"] != repo+":1" || !strings.HasPrefix(raw["digest"].(string), "sha256:") || raw["updatedAt"] == nil {
		t.Fatalf("state: %s", b)
	}
	// Second install: one HEAD, nothing downloaded.
	e.reg.Reset()
	e.must("artifact", "install", repo+":1", "--plain-http", "--rulesfiles-dir", rulesDir, "--state-dir", stateDir, "--resolve-deps=false")
	if n := e.reg.Requests(); n != 1 {
		t.Fatalf("no-change install made %d requests: %v", n, e.reg.Log())
	}
	// Deleted file is noticed and restored.
	os.Remove(filepath.Join(rulesDir, "my_rules.yaml"))
	e.must("artifact", "install", repo+":1", "--plain-http", "--rulesfiles-dir", rulesDir, "--state-dir", stateDir, "--resolve-deps=false")
	if _, err := os.Stat(filepath.Join(rulesDir, "my_rules.yaml")); err != nil {
		t.Fatal("deleted file not restored")
	}
}

func TestNewVersionRemovesDroppedFiles(t *testing.T) {
	e := newEnv(t, testregistry.Options{})
	src := t.TempDir()
	repo := e.reg.Host + "/r/x"
	e.must("registry", "push", repo+":1", writeFile(t, src, "a.yaml", "- list: a\n  items: []\n"), "--type", "rulesfile", "--version", "1.0.0", "--plain-http")
	rulesDir, stateDir := t.TempDir(), t.TempDir()
	e.must("artifact", "install", repo+":1", "--plain-http", "--rulesfiles-dir", rulesDir, "--state-dir", stateDir)
	e.must("registry", "push", repo+":1", writeFile(t, src, "b.yaml", "- list: b\n  items: []\n"), "--type", "rulesfile", "--version", "1.0.1", "--plain-http")
	e.must("artifact", "install", repo+":1", "--plain-http", "--rulesfiles-dir", rulesDir, "--state-dir", stateDir)
	entries, _ := os.ReadDir(rulesDir)
	var names []string
	for _, en := range entries {
		names = append(names, en.Name())
	}
	if strings.Join(names, ",") != "b.yaml" {
		t.Fatalf("files after upgrade: %v", names)
	}
	parent, _ := os.ReadDir(filepath.Dir(rulesDir))
	for _, p := range parent {
		if strings.Contains(p.Name(), "staging") {
			t.Fatalf("staging dir left behind: %s", p.Name())
		}
	}
}

func TestPluginIndexPlatforms(t *testing.T) {
	e := newEnv(t, testregistry.Options{})
	src := t.TempDir()
	amd := writeFile(t, src, "amd/libk8saudit.so", "amd64-bytes")
	arm := writeFile(t, src, "arm/libk8saudit.so", "arm64-bytes")
	repo := e.reg.Host + "/plugins/k8saudit"
	e.must("registry", "push", repo+":0.7.0", amd, arm, "--type", "plugin", "--version", "0.7.0", "--platform", "linux/amd64", "--platform", "linux/arm64", "--plain-http")
	for _, tc := range []struct{ platform, want string }{{"linux/amd64", "amd64-bytes"}, {"linux/arm64", "arm64-bytes"}} {
		pd := t.TempDir()
		e.must("artifact", "install", repo+":0.7.0", "--plain-http", "--plugins-dir", pd, "--state-dir", t.TempDir(), "--platform", tc.platform)
		b, err := os.ReadFile(filepath.Join(pd, "libk8saudit.so"))
		if err != nil || string(b) != tc.want {
			t.Fatalf("%s: %q %v", tc.platform, b, err)
		}
	}
	err := e.run("artifact", "install", repo+":0.7.0", "--plain-http", "--plugins-dir", t.TempDir(), "--state-dir", t.TempDir(), "--platform", "darwin/arm64")
	if err == nil || !strings.Contains(err.Error(), "unable to find a manifest matching the given platform") {
		t.Fatalf("want platform error, got %v", err)
	}
	err = e.run("artifact", "install", repo+":0.7.0", "--plain-http", "--plugins-dir", t.TempDir(), "--state-dir", t.TempDir(), "--allowed-types", "rulesfile")
	if err == nil || !strings.Contains(err.Error(), "not allowed") {
		t.Fatalf("want allowed-types error, got %v", err)
	}
}

func TestDependencyResolution(t *testing.T) {
	e := newEnv(t, testregistry.Options{})
	src := t.TempDir()
	plug := e.reg.Host + "/plugins/k8saudit"
	for _, v := range []string{"0.6.0", "0.7.0", "0.7.2", "0.8.0-rc1", "1.0.0"} {
		e.must("registry", "push", plug+":"+v, writeFile(t, src, "libk8saudit.so", "v"+v), "--type", "plugin", "--version", v, "--platform", "linux/amd64", "--plain-http", "--name", "k8saudit")
	}
	rules := e.reg.Host + "/rules/k8saudit-rules"
	ix := writeFile(t, src, "index.yaml", fmt.Sprintf(`- name: k8saudit
  type: plugin
  registry: %s
  repository: plugins/k8saudit
- name: k8saudit-rules
  type: rulesfile
  registry: %s
  repository: rules/k8saudit-rules
`, e.reg.Host, e.reg.Host))
	e.must("index", "add", "local", "file://"+ix)
	e.must("registry", "push", rules+":1.0.1", writeFile(t, src, "k8s_audit_rules.yaml", "- rule: y\n"), "--type", "rulesfile", "--version", "1.0.1",
		"--depends-on", "k8saudit:0.7.0", "--plain-http", "--name", "k8saudit-rules")
	pd, rd, sd := t.TempDir(), t.TempDir(), t.TempDir()
	e.must("artifact", "install", "k8saudit-rules:1.0.1", "--plain-http", "--plugins-dir", pd, "--rulesfiles-dir", rd, "--state-dir", sd, "--platform", "linux/amd64")
	b, _ := os.ReadFile(filepath.Join(pd, "libk8saudit.so"))
	if string(b) != "v0.7.2" {
		t.Fatalf("want highest compatible 0.7.2 (not the minimum, not the prerelease, not 1.0.0), got %q", b)
	}
	// Installed 0.7.2 satisfies a later dependency on 0.6.0: no downgrade.
	e.must("registry", "push", rules+":1.0.2", writeFile(t, src, "k8s_audit_rules.yaml", "- rule: z\n"), "--type", "rulesfile", "--version", "1.0.2",
		"--depends-on", "k8saudit:0.6.0", "--plain-http", "--name", "k8saudit-rules")
	e.must("artifact", "install", "k8saudit-rules:1.0.2", "--plain-http", "--plugins-dir", pd, "--rulesfiles-dir", rd, "--state-dir", sd, "--platform", "linux/amd64")
	b, _ = os.ReadFile(filepath.Join(pd, "libk8saudit.so"))
	if string(b) != "v0.7.2" {
		t.Fatalf("dependency was downgraded: %q", b)
	}
	// Conflicting majors are an error.
	err := e.run("artifact", "install", "k8saudit-rules:1.0.1", "k8saudit:1.0.0", "--plain-http", "--plugins-dir", t.TempDir(), "--rulesfiles-dir", t.TempDir(), "--state-dir", t.TempDir(), "--platform", "linux/amd64")
	if err == nil || !strings.Contains(err.Error(), "different major") {
		t.Fatalf("want major conflict, got %v", err)
	}
	// search and list see the cached index.
	out := e.must("artifact", "search", "k8saudit")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || !strings.Contains(lines[1], "k8saudit ") {
		t.Fatalf("search output: %q", out)
	}
	out = e.must("artifact", "list", "--type", "plugin")
	if !strings.Contains(out, "k8saudit") || strings.Contains(out, "k8saudit-rules") {
		t.Fatalf("list output: %q", out)
	}
	out = e.must("index", "list")
	if !strings.Contains(out, "local") {
		t.Fatalf("index list: %q", out)
	}
	e.must("index", "update", "local")
	e.must("index", "remove", "local")
	if err := e.run("artifact", "install", "k8saudit:0.7.0", "--plain-http", "--plugins-dir", t.TempDir(), "--state-dir", t.TempDir()); err == nil || !strings.Contains(err.Error(), "cannot find k8saudit") {
		t.Fatalf("after remove: %v", err)
	}
}

func TestFloatingTagsPrerelease(t *testing.T) {
	e := newEnv(t, testregistry.Options{})
	src := t.TempDir()
	repo := e.reg.Host + "/r/float"
	f := writeFile(t, src, "r.yaml", "- rule: a\n")
	e.must("registry", "push", repo, f, "--type", "rulesfile", "--version", "1.1.1", "--add-floating-tags", "--plain-http")
	e.must("registry", "push", repo, f, "--type", "rulesfile", "--version", "1.2.0-rc1", "--add-floating-tags", "--plain-http")
	e.must("registry", "push", repo, f, "--type", "rulesfile", "--version", "1.0.5", "--add-floating-tags", "--floating-tags-policy", "highest", "--plain-http")
	cl := func(tag string) string {
		out := e.must("artifact", "config", repo+":"+tag, "--plain-http")
		var c oci.ArtifactConfig
		_ = json.Unmarshal([]byte(out), &c)
		return c.Version
	}
	if v := cl("1"); v != "1.1.1" {
		t.Fatalf("tag 1 -> %s", v)
	}
	if v := cl("1.1"); v != "1.1.1" {
		t.Fatalf("tag 1.1 -> %s", v)
	}
	if v := cl("1.0"); v != "1.0.5" {
		t.Fatalf("tag 1.0 -> %s", v)
	}
	out := e.must("artifact", "info", repo, "--plain-http")
	if strings.Contains(out, "latest") || strings.Contains(out, " 1.2,") {
		t.Fatalf("tags: %s", out)
	}
}

func TestBasicAuthTLS(t *testing.T) {
	e := newEnv(t, testregistry.Options{User: "alice", Password: "s3cret", TLS: true})
	src := t.TempDir()
	repo := e.reg.Host + "/secure/rules"
	f := writeFile(t, src, "r.yaml", "- rule: a\n")
	// Without CA: clear TLS error.
	err := e.run("registry", "push", repo+":1.0.0", f, "--type", "rulesfile", "--version", "1.0.0")
	if err == nil || !strings.Contains(err.Error(), "caFile") {
		t.Fatalf("want TLS hint, got %v", err)
	}
	e.vars["FALCOCTL_REGISTRY_TLS"] = e.reg.Host + ",cafile=" + e.reg.CAFile
	// Without credentials: auth hint.
	err = e.run("registry", "push", repo+":1.0.0", f, "--type", "rulesfile", "--version", "1.0.0")
	if err == nil || !strings.Contains(err.Error(), "registry auth basic") {
		t.Fatalf("want auth hint, got %v", err)
	}
	e.vars["FALCOCTL_REGISTRY_AUTH_BASIC"] = e.reg.Host + ",alice,s3cret"
	e.must("registry", "push", repo+":1.0.0", f, "--type", "rulesfile", "--version", "1.0.0")
	delete(e.vars, "FALCOCTL_REGISTRY_AUTH_BASIC")

	// Wrong password: error, nothing stored, no secret in the message.
	err = e.run("registry", "auth", "basic", e.reg.Host, "-u", "alice", "-p", "wrong-pass")
	if err == nil || strings.Contains(err.Error(), "wrong-pass") {
		t.Fatalf("bad login: %v", err)
	}
	e.stdin = "s3cret\n"
	e.must("registry", "auth", "basic", e.reg.Host+"/secure", "-u", "alice", "--password-stdin")
	dc := filepath.Join(e.home, "docker", "config.json")
	fi, err := os.Stat(dc)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("docker config: %v %v", fi, err)
	}
	// Docker store credentials are used for install.
	rd := t.TempDir()
	e.must("artifact", "install", repo+":1.0.0", "--rulesfiles-dir", rd, "--state-dir", t.TempDir())
	if _, err := os.Stat(filepath.Join(rd, "r.yaml")); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(e.lastErrs, "s3cret") {
		t.Fatal("secret leaked into logs")
	}
}

func TestEnvAndConfigPrecedence(t *testing.T) {
	e := newEnv(t, testregistry.Options{})
	src := t.TempDir()
	repo := e.reg.Host + "/r/prec"
	e.must("registry", "push", repo+":1", writeFile(t, src, "p.yaml", "- rule: p\n"), "--type", "rulesfile", "--version", "1.0.0", "--plain-http")
	cfgDir, envDir, flagDir := t.TempDir(), t.TempDir(), t.TempDir()
	conf := fmt.Sprintf("indexes: []\nArtifact:\n  Install:\n    Refs: [%s:1]\n    RulesfilesDir: %s\n    StateDir: %s\nregistry:\n  tls:\n    - registry: %s\n      plainHTTP: true\n", repo, cfgDir, t.TempDir(), e.reg.Host)
	if err := os.WriteFile(e.cfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	e.must("artifact", "install")
	if _, err := os.Stat(filepath.Join(cfgDir, "p.yaml")); err != nil {
		t.Fatal("config dir not used (keys must be case-insensitive)")
	}
	e.vars["FALCOCTL_ARTIFACT_INSTALL_RULESFILESDIR"] = envDir
	e.must("artifact", "install", "--force")
	if _, err := os.Stat(filepath.Join(envDir, "p.yaml")); err != nil {
		t.Fatal("env did not override config")
	}
	e.must("artifact", "install", "--force", "--rulesfiles-dir", flagDir)
	if _, err := os.Stat(filepath.Join(flagDir, "p.yaml")); err != nil {
		t.Fatal("flag did not override env")
	}
	e.vars["FALCOCTL_REGISTRY_AUTH_BASIC"] = "host,user"
	err := e.run("artifact", "install")
	if err == nil || !strings.Contains(err.Error(), "exactly 3") {
		t.Fatalf("malformed env: %v", err)
	}
}

func TestHostileArtifactsLeaveDestinationUntouched(t *testing.T) {
	e := newEnv(t, testregistry.Options{})
	src := t.TempDir()
	cases := []struct {
		name, want string
		archive    func() []byte
	}{
		{"traversal", "path traversal", func() []byte { return tarGz(t, tarEntry{name: "../evil.yaml", body: "x"}) }},
		{"absolute", "absolute path", func() []byte { return tarGz(t, tarEntry{name: "/etc/evil", body: "x"}) }},
		{"symlink", "link entry", func() []byte { return tarGz(t, tarEntry{name: "l", link: "/etc/passwd"}) }},
		{"device", "device", func() []byte { return tarGz(t, tarEntry{name: "dev", dev: true}) }},
		{"huge", "per-file limit", func() []byte { return tarGz(t, tarEntry{name: "big.yaml", body: strings.Repeat("a", 2<<20)}) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(src, tc.name+".tar.gz")
			if err := os.WriteFile(p, tc.archive(), 0o644); err != nil {
				t.Fatal(err)
			}
			repo := e.reg.Host + "/hostile/" + tc.name
			e.must("registry", "push", repo+":1", p, "--type", "rulesfile", "--version", "1.0.0", "--plain-http")
			rd := t.TempDir()
			writeFile(t, rd, "existing.yaml", "keep")
			err := e.run("artifact", "install", repo+":1", "--plain-http", "--rulesfiles-dir", rd, "--state-dir", t.TempDir(), "--max-file-size", "1048576")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("want %q, got %v", tc.want, err)
			}
			assertOnly(t, rd, "existing.yaml")
		})
	}
}

func assertOnly(t *testing.T, dir string, names ...string) {
	t.Helper()
	var got []string
	_ = filepath.Walk(filepath.Dir(dir), func(p string, fi os.FileInfo, err error) error {
		if err == nil && p != filepath.Dir(dir) && p != dir && strings.HasPrefix(p, dir+string(os.PathSeparator)) {
			got = append(got, filepath.Base(p))
		}
		if err == nil && strings.Contains(p, "staging") {
			got = append(got, p)
		}
		return nil
	})
	sort.Strings(got)
	if strings.Join(got, ",") != strings.Join(names, ",") {
		t.Fatalf("destination changed: %v", got)
	}
}
