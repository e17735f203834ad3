package charmtest

import (
	"archive/zip"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	jujucharm "github.com/juju/charm/v12"

	"github.com/falco-k8s/falco-k8s/actions"
	"github.com/falco-k8s/falco-k8s/charm"
	charmhooks "github.com/falco-k8s/falco-k8s/hooks"
	"github.com/falco-k8s/falco-k8s/internal/charmpack"
)

// TestCharmDefinition reads the charm directory and the built .charm archive with
// github.com/juju/charm/v12, as Juju does at deploy time, and checks what the issue specifies.
func TestCharmDefinition(t *testing.T) {
	// The repository has no manifest.yaml (make charm generates it); Juju requires one for
	// metadata v2, so the directory test uses a copy with the generated manifest.
	dir := t.TempDir()
	for _, f := range charmpack.Files {
		b, err := os.ReadFile(filepath.Join(repoRoot, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "manifest.yaml"), charmpack.Manifest("amd64"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(charmBin, filepath.Join(dir, "dispatch")); err != nil {
		t.Fatal(err)
	}
	cd, err := jujucharm.ReadCharmDir(dir)
	if err != nil {
		t.Fatalf("ReadCharmDir: %v", err)
	}
	archive := filepath.Join(t.TempDir(), "falco-k8s.charm")
	if err := charmpack.Pack(repoRoot, charmBin, "amd64", archive); err != nil {
		t.Fatal(err)
	}
	ca, err := jujucharm.ReadCharmArchive(archive)
	if err != nil {
		t.Fatalf("ReadCharmArchive: %v", err)
	}
	for name, ch := range map[string]jujucharm.Charm{"dir": cd, "archive": ca} {
		t.Run(name, func(t *testing.T) { checkCharm(t, ch) })
	}

	// The archive as Juju unpacks it: dispatch executable, every file present.
	zr, err := zip.OpenReader(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	var names []string
	for _, f := range zr.File {
		names = append(names, f.Name)
		if f.Name == "dispatch" && f.Mode().Perm() != 0o755 {
			t.Errorf("dispatch mode %v, want 0755", f.Mode().Perm())
		}
	}
	sort.Strings(names)
	want := []string{"LICENSE", "README.md", "actions.yaml", "config.yaml", "dispatch", "manifest.yaml", "metadata.yaml"}
	if !slices.Equal(names, want) {
		t.Errorf("archive files %v, want %v", names, want)
	}
}

func checkCharm(t *testing.T, ch jujucharm.Charm) {
	m := ch.Meta()
	if m.Name != "falco-k8s" {
		t.Errorf("name %q", m.Name)
	}
	if f := jujucharm.MetaFormat(ch); f != jujucharm.FormatV2 {
		t.Errorf("metadata format %v, want v2 (containers)", f)
	}
	if err := jujucharm.CheckMeta(ch); err != nil {
		t.Errorf("CheckMeta: %v", err)
	}
	c, ok := m.Containers["falco"]
	if !ok || c.Resource != "falco-image" {
		t.Errorf("container falco with resource falco-image: %+v", m.Containers)
	}
	// The agent's state (accepted artifacts, journal, tuning file) must outlive the pod.
	if len(c.Mounts) != 1 || c.Mounts[0].Storage != "state" || c.Mounts[0].Location != charm.StateDir {
		t.Errorf("container falco mounts %+v, want storage state at %s", c.Mounts, charm.StateDir)
	}
	if st, ok := m.Storage["state"]; !ok || st.Type != jujucharm.StorageFilesystem || st.Location != charm.StateDir {
		t.Errorf("storage state: %+v", m.Storage)
	}
	if r, ok := m.Resources["falco-image"]; !ok || r.Type.String() != "oci-image" {
		t.Errorf("resource falco-image: %+v", m.Resources)
	}
	if m.Assumes == nil || !strings.Contains(fmt.Sprintf("%+v", m.Assumes.Expression), "k8s-api") {
		t.Errorf("assumes k8s-api missing: %+v", m.Assumes)
	}
	// The peer relation every unit shares (leader-published rules, tuning, review credential).
	if pr, ok := m.Peers[charm.PeerEndpoint]; !ok || pr.Interface != "falco_k8s_peers" || pr.Role != jujucharm.RolePeer {
		t.Errorf("peer relation %s (interface falco_k8s_peers): %+v", charm.PeerEndpoint, m.Peers)
	}
	hooks := m.Hooks()
	for _, h := range []string{charm.PeerEndpoint + "-relation-changed", charm.PeerEndpoint + "-relation-departed",
		charm.Container + "-pebble-custom-notice", "install", "config-changed", "start", "update-status", "upgrade-charm", "leader-elected",
		"falco-pebble-ready", "secret-changed", "stop", "remove"} {
		if !hooks[h] {
			t.Errorf("Juju would not send hook %s to this charm", h)
		}
		if !slices.Contains(charmhooks.Names(), h) {
			t.Errorf("hook %s has no file in hooks/", h)
		}
	}

	// Options: exactly what the charm validates, each documented, defaults of the right type.
	opts := ch.Config().Options
	var names []string
	for n, o := range opts {
		names = append(names, n)
		if len(o.Description) < 40 {
			t.Errorf("option %s: description too short to document it", n)
		}
	}
	sort.Strings(names)
	want := append([]string(nil), charm.Options...)
	sort.Strings(want)
	if !slices.Equal(names, want) {
		t.Errorf("config.yaml options %v, charm validates %v", names, want)
	}
	types := map[string]string{"webhook-port": "int", "json-output": "boolean", "allow-rule-removal": "boolean", "manage-admission-webhook": "boolean", "registry-credentials": "secret", "webhook-tls": "secret"}
	for n, o := range opts {
		wt := types[n]
		if wt == "" {
			wt = "string"
		}
		if o.Type != wt {
			t.Errorf("option %s type %s, want %s", n, o.Type, wt)
		}
	}
	for n, d := range map[string]any{"webhook-port": int64(9765), "follow-interval": "6h", "minimum-priority": "debug", "log-level": "info", "json-output": false} {
		if opts[n].Default != d {
			t.Errorf("option %s default %#v, want %#v", n, opts[n].Default, d)
		}
	}
	// Every default passes the charm's own validation.
	defaults := map[string]any{}
	for n, o := range opts {
		if o.Default != nil {
			defaults[n] = o.Default
		}
	}
	if _, err := charm.ParseSettings(defaults, "falco-k8s"); err != nil {
		t.Errorf("defaults do not validate: %v", err)
	}

	// Actions: exactly the registered handlers, with JSON-schema parameters Juju enforces.
	specs := ch.Actions().ActionSpecs
	var an []string
	for n := range specs {
		an = append(an, n)
	}
	sort.Strings(an)
	if !slices.Equal(an, actions.Names()) {
		t.Errorf("actions.yaml %v, registered handlers %v", an, actions.Names())
	}
	sr := specs["show-rules"]
	for _, bad := range []map[string]any{{"format": "xml"}, {"formt": "json"}, {"condition": "yes"}} {
		if err := sr.ValidateParams(bad); err == nil {
			t.Errorf("show-rules accepted %v", bad)
		}
	}
	p, err := sr.InsertDefaults(map[string]any{})
	if err != nil || p["format"] != "table" || p["condition"] != false {
		t.Errorf("show-rules defaults %v %v", p, err)
	}
	sy, wc := specs["sync-rules"], specs["webhook-config"]
	if err := sy.ValidateParams(map[string]any{"dry-run": true}); err != nil {
		t.Errorf("sync-rules dry-run: %v", err)
	}
	if err := wc.ValidateParams(map[string]any{"server": "10.0.0.1:9765"}); err != nil {
		t.Errorf("webhook-config server: %v", err)
	}
}
