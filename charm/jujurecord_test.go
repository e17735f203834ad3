package charm

import (
	"os"
	"path/filepath"
	"testing"
)

// TestJujuRecord: the record is read once per hook, trusted only when it parses, ignored in
// upgrade-charm, removed before Juju is changed and written only by saveJujuRecord.
func TestJujuRecord(t *testing.T) {
	const saved = `{"status":"active","message":"29 rules","app_version":"1.0","port":"9765/tcp","bags":{"logging:4 app":"h1","metrics-endpoint:1 unit":"h2"}}`
	for _, tc := range []struct {
		name, kind, hook, file string
		wantStatus, wantPort   string
	}{
		{name: "saved", kind: "hooks", hook: "update-status", file: saved, wantStatus: "active", wantPort: "9765/tcp"},
		{name: "missing", kind: "hooks", hook: "update-status"},
		{name: "corrupt", kind: "hooks", hook: "update-status", file: `{"status":"act`},
		{name: "upgrade-charm", kind: "hooks", hook: "upgrade-charm", file: saved},
		{name: "action", kind: "actions", hook: "show-rules", file: saved, wantStatus: "active", wantPort: "9765/tcp"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, jujuRecordName)
			if tc.file != "" {
				if err := os.WriteFile(path, []byte(tc.file), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			c := &Context{Env: Env{Kind: tc.kind, Name: tc.hook, CharmDir: dir}}
			r := c.juju()
			if r.Status != tc.wantStatus || r.Port != tc.wantPort {
				t.Fatalf("record %+v", r)
			}
			// Nothing changed: nothing written (the file stays as it was).
			if err := c.saveJujuRecord(); err != nil {
				t.Fatal(err)
			}
			if b, _ := os.ReadFile(path); string(b) != tc.file {
				t.Errorf("unchanged record rewritten: %q", b)
			}
			// A change removes the file at once; only a save writes it back.
			if err := r.forget(); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(path); !os.IsNotExist(err) {
				t.Errorf("record still there after forget: %v", err)
			}
			r.Status, r.Message = "waiting", "agent is loading its rules"
			r.pruneBags([]string{"logging:4"})
			if err := c.saveJujuRecord(); err != nil {
				t.Fatal(err)
			}
			next := (&Context{Env: Env{Kind: "hooks", Name: "config-changed", CharmDir: dir}}).juju()
			if next.Status != "waiting" || next.Message != "agent is loading its rules" || next.Port != tc.wantPort {
				t.Errorf("saved record %+v", next)
			}
			if _, ok := next.Bags["metrics-endpoint:1 unit"]; ok || (tc.wantStatus != "" && next.Bags["logging:4 app"] != "h1") {
				t.Errorf("bags %v", next.Bags)
			}
			if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
				t.Errorf("record file %v %v", fi, err)
			}
		})
	}
	// Without a charm directory (unit tests' contexts) there is no record at all.
	c := &Context{Env: Env{Kind: "hooks", Name: "update-status"}}
	c.juju().Status = "active"
	c.juju().changed = true
	if err := c.saveJujuRecord(); err != nil {
		t.Fatal(err)
	}
}
