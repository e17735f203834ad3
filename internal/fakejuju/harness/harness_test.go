package harness

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// A shell script stands in for the charm: it records each hook's relation environment and
// writes relation data, failing when $FAIL is set.
const script = `#!/bin/sh
echo "$JUJU_DISPATCH_PATH|$JUJU_RELATION|$JUJU_RELATION_ID|$JUJU_REMOTE_APP|$JUJU_REMOTE_UNIT|$(relation-list --format=json)" >> "$LOG"
case "$JUJU_DISPATCH_PATH" in
*-relation-broken) ;;
*-relation-*) relation-set "n=$JUJU_DISPATCH_PATH" || exit 3 ;;
esac
[ -z "$FAIL" ] || exit 1
`

func TestRelationHooksInJujuOrder(t *testing.T) {
	dir := t.TempDir()
	tool := filepath.Join(dir, "fakejuju")
	if out, err := exec.Command("go", "build", "-o", tool, "../cmd/fakejuju").CombinedOutput(); err != nil {
		t.Fatalf("build fakejuju: %v\n%s", err, out)
	}
	charmBin := filepath.Join(dir, "dispatch.sh")
	if err := os.WriteFile(charmBin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	e := New(t, tool, charmBin, "../../..")
	log := filepath.Join(dir, "log")
	e.Extra = []string{"LOG=" + log}

	id, r := e.AddRelation("logging", "loki")
	runs := append([]Run{r}, e.JoinUnit(id, "loki/0", nil)...)
	runs = append(runs, e.SetRemoteAppData(id, map[string]string{"k": "v"}))
	runs = append(runs, e.RemoveRelation(id)...)
	for _, r := range runs {
		if r.Code != 0 {
			t.Fatalf("hook failed: %s", r)
		}
	}
	b, _ := os.ReadFile(log)
	want := []string{
		`hooks/logging-relation-created|logging|logging:1|loki||[]`,
		`hooks/logging-relation-joined|logging|logging:1|loki|loki/0|["loki/0"]`,
		`hooks/logging-relation-changed|logging|logging:1|loki|loki/0|["loki/0"]`,
		`hooks/logging-relation-changed|logging|logging:1|loki||["loki/0"]`,
		`hooks/logging-relation-departed|logging|logging:1|loki|loki/0|[]`,
		`hooks/logging-relation-broken|logging|logging:1|loki||[]`,
	}
	if got := strings.Split(strings.TrimSpace(string(b)), "\n"); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("hooks:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if len(e.State().Relations) != 0 {
		t.Errorf("relation still there after broken")
	}

	// relation-set is committed only when the hook exits 0.
	id, _ = e.AddRelation("logging", "loki")
	if got := e.Relation(id).LocalUnit["n"]; got != "hooks/logging-relation-created" {
		t.Fatalf("committed data %q", got)
	}
	e.Extra = append(e.Extra, "FAIL=1")
	runs = e.JoinUnit(id, "loki/1", nil)
	if runs[0].Code != 1 {
		t.Fatalf("hook should fail: %s", runs[0])
	}
	if got := e.Relation(id).LocalUnit["n"]; got != "hooks/logging-relation-created" {
		t.Errorf("a failed hook's relation-set was committed: %q", got)
	}
}
