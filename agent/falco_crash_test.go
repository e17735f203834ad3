package agent

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/falco-k8s/falco-k8s/agent/config"
	"github.com/falco-k8s/falco-k8s/engine"
)

// crashed is the panic a crash hook stops a switch with.
type crashed struct{ step string }

// TestFalcoSwitchCrashAtEveryStep stops a switch of Falco's rules directory at every write step
// in turn (the hook panics there, which leaves the disk as a kill would): Falco's directory then
// holds only whole files of the old or the new set (never a partial file or a temp file Falco
// would load), and a restart (a new falcoEngine publishing the committed set) leaves exactly
// that set and no staging remnant.
func TestFalcoSwitchCrashAtEveryStep(t *testing.T) {
	fs := newFalcoSetup(t, []string{"k8saudit", "json"}, "")
	fc := config.Falco{Binary: fs.bin, ConfigFile: fs.config, RulesDir: fs.rulesDir, ValidateTimeout: time.Minute}
	ctx := context.Background()
	oldSet := []engine.File{{Name: "macros.yaml", Content: []byte(macroFile)}, {Name: "gone.yaml", Content: []byte("- list: l\n  items: [a]\n")}}
	newSet := []engine.File{{Name: "macros.yaml", Content: []byte(macroFile + "# v2\n")}, {Name: "rules.yaml", Content: []byte(ruleFile)}}
	whole := map[string]bool{}
	for _, f := range append(falcoSet(oldSet), falcoSet(newSet)...) {
		whole[f.name+"\x00"+string(f.content)] = true
	}
	steps := 0
	for at := 1; ; at++ {
		os.RemoveAll(fs.rulesDir)
		fe, err := newFalcoEngine(ctx, fc)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := fe.publish(ctx, oldSet); err != nil {
			t.Fatal(err)
		}
		n, name := 0, ""
		fe.hook = func(step string) {
			if n++; n == at {
				name = step
				panic(crashed{step})
			}
		}
		completed := func() (done bool) {
			defer func() {
				if r := recover(); r != nil {
					if _, ok := r.(crashed); !ok {
						panic(r)
					}
				}
			}()
			fe.publish(ctx, newSet) //nolint:errcheck // the crash stops it
			return true
		}()
		if completed {
			steps = at - 1
			break
		}
		// Only whole files of either set are visible to Falco.
		ents, _ := os.ReadDir(fs.rulesDir)
		for _, e := range ents {
			b, _ := os.ReadFile(filepath.Join(fs.rulesDir, e.Name()))
			if isRulesName(e.Name()) && !whole[e.Name()+"\x00"+string(b)] {
				t.Fatalf("crash at step %d (%s): %s holds %q", at, name, e.Name(), b)
			}
		}
		// Restart: the committed set (here the new one) is published again.
		fe2, err := newFalcoEngine(ctx, fc)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := fe2.publish(ctx, newSet); err != nil {
			t.Fatalf("crash at step %d (%s): restart: %v", at, name, err)
		}
		got := dirFiles(t, fs.rulesDir)
		want := map[string]string{}
		for _, f := range falcoSet(newSet) {
			want[f.name] = string(f.content)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("crash at step %d (%s): after restart %v", at, name, sortedNames(got))
		}
		if ents, _ := os.ReadDir(fe2.staging); len(ents) != 0 {
			t.Fatalf("crash at step %d (%s): staging remnants %d", at, name, len(ents))
		}
		if !strings.Contains(name, ":") && name != "syncdir" {
			t.Fatalf("unnamed step %q", name)
		}
	}
	if steps < 8 {
		t.Fatalf("only %d steps hit", steps)
	}
	t.Logf("%d write steps, each crashed and recovered", steps)
}
