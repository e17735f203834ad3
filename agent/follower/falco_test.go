package follower

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/falco-k8s/falco-k8s/internal/falcooracle"
	"github.com/falco-k8s/falco-k8s/internal/testregistry"
)

// TestFollowerFalcoRefusedArtifactNeverReachesFalco follows a registry with engine: falco: an
// artifact valid for both engines is promoted into Falco's rules directory; the next one, which
// the agent's engine accepts but the configured Falco refuses (no json plugin loaded), is ignored
// with Falco's message, and Falco's directory keeps the previous files.
func TestFollowerFalcoRefusedArtifactNeverReachesFalco(t *testing.T) {
	oracle := falcooracle.Require(t)
	dir := t.TempDir()
	rulesDir, cfg := filepath.Join(dir, "falco-rules"), filepath.Join(dir, "falco.yaml")
	if err := oracle.WriteConfig(cfg, falcooracle.Config{Plugins: []string{"k8saudit"}, RulesFiles: []string{rulesDir}}); err != nil {
		t.Fatal(err)
	}
	reg := testregistry.New(t, testregistry.Options{})
	p := newPusher(t, reg, "", "")
	d1 := p.push("rules/k8s:1", map[string]string{"k8s.yaml": genRule("v1")})
	e := newEnv(t, envOpts{reg: reg, overrides: []string{"engine=falco", "falco.binary=" + oracle.Binary(), "falco.config_file=" + cfg,
		"falco.rules_dir=" + rulesDir, "falco.alerts_token_file=" + filepath.Join(dir, "token"), "observability.listen=127.0.0.1:0", "webhook.listen=localhost:0"}})
	e.waitAccepted(d1)
	read := func() string {
		b, err := os.ReadFile(filepath.Join(rulesDir, "000-k8s.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	if got := read(); got != genRule("v1") {
		t.Fatalf("Falco's rules directory: %q", got)
	}
	json := "- rule: JSON Verb\n  desc: by the json plugin\n  condition: json.value[/verb] = create\n  output: json verb\n  priority: NOTICE\n  source: k8s_audit\n"
	d2 := p.push("rules/k8s:1", map[string]string{"k8s.yaml": genRule("v1") + json})
	waitFor(t, "ignored "+d2, func() bool {
		st := e.a.Status()
		return st.LastIgnored != nil && strings.Contains(st.LastIgnored.Digest, d2)
	})
	st := e.a.Status()
	if !strings.Contains(st.LastIgnored.Reason, "refused by Falco") || !strings.Contains(st.LastIgnored.Reason, "LOAD_ERR_COMPILE_CONDITION") {
		t.Fatalf("reason %q", st.LastIgnored.Reason)
	}
	if e.runningDigest() != d1 || read() != genRule("v1") {
		t.Fatalf("running %s, Falco's file %q", e.runningDigest(), read())
	}
	ents, _ := os.ReadDir(rulesDir)
	if len(ents) != 1 {
		t.Fatalf("Falco's rules directory has %d entries", len(ents))
	}
}

// TestFollowerFalcoRefusedReloadNotRetried: Falco's configuration lists a file after the agent's
// directory that uses a macro of the followed artifact. An artifact without the macro passes
// `falco -V` on its own but Falco's reload check refuses it: the switch is rolled back, the
// follower keeps the previous set and does not pull the refused digest again at every interval.
func TestFollowerFalcoRefusedReloadNotRetried(t *testing.T) {
	oracle := falcooracle.Require(t)
	dir := t.TempDir()
	rulesDir, cfg, extra := filepath.Join(dir, "falco-rules"), filepath.Join(dir, "falco.yaml"), filepath.Join(dir, "extra.yaml")
	if err := os.WriteFile(extra, []byte("- rule: Extra\n  desc: d\n  condition: followed_macro\n  output: o\n  priority: INFO\n  source: k8s_audit\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := oracle.WriteConfig(cfg, falcooracle.Config{RulesFiles: []string{rulesDir, extra}}); err != nil {
		t.Fatal(err)
	}
	reg := testregistry.New(t, testregistry.Options{})
	p := newPusher(t, reg, "", "")
	macro := "- macro: followed_macro\n  condition: ka.verb=create\n"
	d1 := p.push("rules/k8s:1", map[string]string{"k8s.yaml": macro + genRule("v1")})
	e := newEnv(t, envOpts{reg: reg, overrides: []string{"engine=falco", "falco.binary=" + oracle.Binary(), "falco.config_file=" + cfg,
		"falco.rules_dir=" + rulesDir, "falco.alerts_token_file=" + filepath.Join(dir, "token"), "observability.listen=127.0.0.1:0", "webhook.listen=localhost:0"}})
	e.waitAccepted(d1)
	d2 := p.push("rules/k8s:1", map[string]string{"k8s.yaml": genRule("v2")})
	waitFor(t, "ignored "+d2, func() bool {
		st := e.a.Status()
		return st.LastIgnored != nil && strings.Contains(st.LastIgnored.Digest, d2)
	})
	first := e.a.Status().LastIgnored
	if !strings.Contains(first.Reason, "Falco refused to reload") || !strings.Contains(first.Reason, "followed_macro") {
		t.Fatalf("reason %q", first.Reason)
	}
	if b, _ := os.ReadFile(filepath.Join(rulesDir, "000-k8s.yaml")); string(b) != macro+genRule("v1") || e.runningDigest() != d1 {
		t.Fatalf("not rolled back: running %s, Falco's file %q", e.runningDigest(), b)
	}
	// Ten intervals later the refused digest has not been tried again.
	checks := func() float64 { return followChecks(t, e, e.ref, "ok") + followChecks(t, e, e.ref, "error") }
	n := checks()
	waitFor(t, "ten more checks", func() bool { return checks() >= n+10 })
	if last := e.a.Status().LastIgnored; !last.Time.Equal(first.Time) {
		t.Fatalf("the refused digest was tried again at %s (first %s)", last.Time, first.Time)
	}
}
