package harness

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// peerScript stands in for a charm on a peer relation: it logs each hook, publishes its address
// once, the leader writes application data and an application-owned secret, and every unit
// tries to write application data (only the leader may) and reads it back.
const peerScript = `#!/bin/sh
log() { echo "$JUJU_UNIT_NAME $JUJU_DISPATCH_PATH $*" >> "$LOG"; }
case "$JUJU_DISPATCH_PATH" in
hooks/peers-relation-created)
  relation-set "addr=$(network-get peers --ingress-address)"
  log ;;
hooks/leader-elected)
  relation-set -r peers:1 --app "leader=$JUJU_UNIT_NAME" || exit 3
  secret-info-get --label tok >/dev/null 2>&1 || secret-add --label tok token=abc >/dev/null || exit 4
  log ;;
hooks/peers-relation-changed)
  if relation-set --app "x=$JUJU_UNIT_NAME" 2>/dev/null; then w=wrote; else w=denied; fi
  log "remote=$JUJU_REMOTE_UNIT leader=$(relation-get --app - falco-k8s | sed -n 's/^leader: //p') addr=$(relation-get addr "$JUJU_REMOTE_UNIT" 2>/dev/null) ingress=$(relation-get ingress-address "$JUJU_REMOTE_UNIT" 2>/dev/null) $w tok=$(secret-get --label tok token 2>/dev/null)" ;;
hooks/peers-relation-departed)
  log "remote=$JUJU_REMOTE_UNIT departing=$JUJU_DEPARTING_UNIT" ;;
*) log ;;
esac
`

func TestModelPeers(t *testing.T) {
	dir := t.TempDir()
	tool := filepath.Join(dir, "fakejuju")
	if out, err := exec.Command("go", "build", "-o", tool, "../cmd/fakejuju").CombinedOutput(); err != nil {
		t.Fatalf("build fakejuju: %v\n%s", err, out)
	}
	charmBin := filepath.Join(dir, "dispatch.sh")
	if err := os.WriteFile(charmBin, []byte(peerScript), 0o755); err != nil {
		t.Fatal(err)
	}
	// A charm directory whose metadata declares the peer relation the script uses.
	src := filepath.Join(dir, "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"config.yaml", "actions.yaml"} {
		b, err := os.ReadFile(filepath.Join("../../..", f))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(src, f), b, 0o644) //nolint:errcheck // read back below
	}
	meta := "name: falco-k8s\nsummary: s\ndescription: d\ncontainers:\n  falco:\n    resource: img\nresources:\n  img:\n    type: oci-image\npeers:\n  peers:\n    interface: p\n"
	if err := os.WriteFile(filepath.Join(src, "metadata.yaml"), []byte(meta), 0o644); err != nil {
		t.Fatal(err)
	}
	log := filepath.Join(dir, "log")
	m := NewModel(t, tool, charmBin, src, "peers")
	m.Setup = func(e *Env) { e.Extra = []string{"LOG=" + log} }
	m.AddUnit("falco")
	m.AddUnit("falco")
	m.Settle()
	lines := func() []string {
		b, _ := os.ReadFile(log)
		return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	}
	want := []string{
		"falco-k8s/0 hooks/install ",
		"falco-k8s/0 hooks/peers-relation-created ",
		"falco-k8s/0 hooks/leader-elected ",
		"falco-k8s/0 hooks/config-changed ",
		"falco-k8s/0 hooks/start ",
		"falco-k8s/0 hooks/falco-pebble-ready ",
		"falco-k8s/1 hooks/install ",
		"falco-k8s/1 hooks/peers-relation-created ",
		"falco-k8s/1 hooks/config-changed ",
		"falco-k8s/1 hooks/start ",
		"falco-k8s/1 hooks/falco-pebble-ready ",
		// Joined: the other unit's data as Juju gives it (its addresses), the leader's
		// application data readable by the non-leader, which may not write it.
		"falco-k8s/1 hooks/peers-relation-joined ",
		"falco-k8s/1 hooks/peers-relation-changed remote=falco-k8s/0 leader=falco-k8s/0 addr=127.0.0.10 ingress=127.0.0.10 denied tok=abc",
		"falco-k8s/0 hooks/peers-relation-joined ",
		"falco-k8s/0 hooks/peers-relation-changed remote=falco-k8s/1 leader=falco-k8s/0 addr=127.0.0.11 ingress=127.0.0.11 wrote tok=abc",
		// The leader's application write: relation-changed without a remote unit elsewhere.
		"falco-k8s/1 hooks/peers-relation-changed remote= leader=falco-k8s/0 addr= ingress= denied tok=abc",
	}
	if got := lines(); !slices.Equal(got, want) {
		t.Fatalf("hooks:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// The leader's write reached the other unit's view of the application databag.
	if got := findRel(m.Unit("falco-k8s/1").State(), 1).LocalApp["x"]; got != "falco-k8s/0" {
		t.Errorf("application data on falco-k8s/1: x=%q", got)
	}

	// Leadership moves: leader-elected on the new leader, whose application write reaches the
	// other unit as relation-changed without a remote unit.
	os.Remove(log)
	m.SetLeader("falco-k8s/1")
	m.Settle()
	want = []string{
		"falco-k8s/1 hooks/leader-elected ",
		"falco-k8s/0 hooks/peers-relation-changed remote= leader=falco-k8s/1 addr= ingress= denied tok=abc",
	}
	if got := lines(); !slices.Equal(got, want) {
		t.Fatalf("leadership hooks:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// Removing the leader: it departs, the other unit sees it depart, and is elected.
	os.Remove(log)
	m.RemoveUnit("falco-k8s/1")
	want = []string{
		"falco-k8s/1 hooks/peers-relation-departed remote=falco-k8s/0 departing=falco-k8s/1",
		"falco-k8s/0 hooks/peers-relation-departed remote=falco-k8s/1 departing=falco-k8s/1",
		"falco-k8s/1 hooks/peers-relation-broken ",
		"falco-k8s/1 hooks/stop ",
		"falco-k8s/1 hooks/remove ",
		"falco-k8s/0 hooks/leader-elected ",
	}
	if got := lines(); !slices.Equal(got, want) {
		t.Fatalf("removal hooks:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if m.Leader() != "falco-k8s/0" || len(m.Units) != 1 {
		t.Errorf("after removal: leader %s, %d units", m.Leader(), len(m.Units))
	}
	if _, ok := findRel(m.Unit("falco-k8s/0").State(), 1).RemoteUnitData["falco-k8s/1"]; ok {
		t.Errorf("removed unit's data still visible")
	}
}
