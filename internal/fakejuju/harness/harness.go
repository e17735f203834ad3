// Package harness runs the real charm binary against the fake hook tools (package fakejuju),
// the way Juju's unit agent would: a fresh environment (nothing inherited), cwd the charm
// directory, JUJU_DISPATCH_PATH and the JUJU_* variables of spec/juju.md §1.4, the tools first
// on PATH. Config values and action parameters are validated with github.com/juju/charm/v12
// against the charm's own config.yaml and actions.yaml before anything runs, as Juju does.
// Model runs several units of one application (model.go): a shared peer relation, leadership,
// application-owned secrets, Juju's hook queue, and Pebble custom notices turned into
// <container>-pebble-custom-notice hooks (notices.go). It is a separate package so the fake
// tools binary stays small and fast to start.
package harness

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"testing"
	"time"

	jujucharm "github.com/juju/charm/v12"

	"github.com/falco-k8s/falco-k8s/internal/charmpack"
	"github.com/falco-k8s/falco-k8s/internal/fakejuju"
)

// Env is one unit of a fake model.
type Env struct {
	Dir       string // scratch directory
	StatePath string
	BinDir    string // hook tools
	CharmDir  string // what Juju unpacks: dispatch + yaml files
	Unit      string
	Model     string
	// Extra variables for every run (the charm's outside-Juju overrides).
	Extra []string

	ch *jujucharm.CharmDir
}

// New prepares a unit: tools (symlinks to toolBin), a charm directory with dispatch (a symlink
// to charmBin) and the yaml files of srcDir, and an initial state (leader, defaults).
func New(tb testing.TB, toolBin, charmBin, srcDir string) *Env {
	tb.Helper()
	dir := tb.TempDir()
	e := &Env{Dir: dir, StatePath: filepath.Join(dir, "state.json"), BinDir: filepath.Join(dir, "bin"),
		CharmDir: filepath.Join(dir, "charm"), Unit: "falco-k8s/0", Model: "audit"}
	must(tb, os.MkdirAll(e.BinDir, 0o755))
	must(tb, os.MkdirAll(e.CharmDir, 0o755))
	for _, t := range fakejuju.Tools {
		must(tb, os.Symlink(toolBin, filepath.Join(e.BinDir, t)))
	}
	for _, f := range []string{"metadata.yaml", "config.yaml", "actions.yaml"} {
		b, err := os.ReadFile(filepath.Join(srcDir, f))
		must(tb, err)
		must(tb, os.WriteFile(filepath.Join(e.CharmDir, f), b, 0o644))
	}
	must(tb, os.WriteFile(filepath.Join(e.CharmDir, "manifest.yaml"), charmpack.Manifest("amd64"), 0o644))
	must(tb, os.Symlink(charmBin, filepath.Join(e.CharmDir, "dispatch")))
	ch, err := jujucharm.ReadCharmDir(e.CharmDir)
	must(tb, err)
	e.ch = ch
	st := &fakejuju.State{Unit: e.Unit, Leader: true, Config: map[string]any{}, ConfigDefaults: map[string]any{},
		Secrets: map[string]map[string]string{}, Granted: map[string]bool{}}
	for name, opt := range ch.Config().Options {
		st.ConfigOptions = append(st.ConfigOptions, name)
		if opt.Default != nil {
			st.ConfigDefaults[name] = opt.Default
		}
	}
	sort.Strings(st.ConfigOptions)
	meta := ch.Meta()
	for _, rels := range []map[string]jujucharm.Relation{meta.Provides, meta.Requires, meta.Peers} {
		for name := range rels {
			st.Endpoints = append(st.Endpoints, name)
		}
	}
	sort.Strings(st.Endpoints)
	// Tests reach the workload on loopback, so that is the pod address network-get reports.
	st.Address = "127.0.0.1"
	must(tb, st.Save(e.StatePath))
	return e
}

func must(tb testing.TB, err error) {
	tb.Helper()
	if err != nil {
		tb.Fatal(err)
	}
}

// State reads the current state.
func (e *Env) State() *fakejuju.State {
	st, err := fakejuju.Load(e.StatePath)
	if err != nil {
		panic(err)
	}
	return st
}

func (e *Env) update(f func(*fakejuju.State)) error {
	st, err := fakejuju.Load(e.StatePath)
	if err != nil {
		return err
	}
	f(st)
	return st.Save(e.StatePath)
}

// SetConfig is `juju config APP k=v ...`: values are checked against config.yaml (unknown
// options and wrong types are errors, as in Juju); a nil value resets the option.
func (e *Env) SetConfig(values map[string]any) error {
	settings := jujucharm.Settings{}
	for k, v := range values {
		if v != nil {
			settings[k] = v
		}
	}
	for k := range values {
		if _, ok := e.ch.Config().Options[k]; !ok {
			return fmt.Errorf("unknown option %q", k)
		}
	}
	checked, err := e.ch.Config().ValidateSettings(settings)
	if err != nil {
		return err
	}
	return e.update(func(st *fakejuju.State) {
		for k, v := range values {
			if v == nil {
				delete(st.Config, k)
			} else {
				st.Config[k] = checked[k]
			}
		}
	})
}

// AddSecret creates a user secret or, for an existing one, adds a new revision (`juju
// update-secret`); granted says whether the application may read it. It returns the secret's URI.
func (e *Env) AddSecret(id string, content map[string]string, granted bool) string {
	if err := e.update(func(st *fakejuju.State) {
		if st.SecretRevisions == nil {
			st.SecretRevisions = map[string][]map[string]string{}
		}
		if _, ok := st.Secrets[id]; ok && len(st.SecretRevisions[id]) == 0 {
			st.SecretRevisions[id] = []map[string]string{st.Secrets[id]}
		}
		st.SecretRevisions[id] = append(st.SecretRevisions[id], content)
		st.Secrets[id] = content
		st.Granted[id] = granted
	}); err != nil {
		panic(err)
	}
	return "secret:" + id
}

// SetLeader sets leadership.
func (e *Env) SetLeader(l bool) error { return e.update(func(st *fakejuju.State) { st.Leader = l }) }

// Run is one process run.
type Run struct {
	Code           int
	Stdout, Stderr string
	Elapsed        time.Duration
}

func (r Run) String() string {
	return fmt.Sprintf("exit %d after %s\nstdout:\n%s\nstderr:\n%s", r.Code, r.Elapsed, r.Stdout, r.Stderr)
}

// Hook runs a hook (JUJU_DISPATCH_PATH=hooks/NAME) and, as Juju does, commits open-port and
// close-port only when it exits 0.
func (e *Env) Hook(name string, extra ...string) Run {
	env := append([]string{"JUJU_DISPATCH_PATH=hooks/" + name, "JUJU_HOOK_NAME=" + name}, extra...)
	return e.run(env)
}

// Action validates params against actions.yaml (defaults inserted), runs the action and returns
// the run and the action's record.
func (e *Env) Action(name string, params map[string]any) (Run, *fakejuju.Action, error) {
	if err := e.PrepareAction(name, params); err != nil {
		return Run{}, nil, err
	}
	r := e.run([]string{"JUJU_DISPATCH_PATH=actions/" + name, "JUJU_ACTION_NAME=" + name,
		"JUJU_ACTION_UUID=1f6fd7c4-0000-4000-8000-000000000001", "JUJU_ACTION_TAG=action-1"})
	a := e.State().Action
	// Juju adds the process's output to the results and fails the task on a non-zero exit with
	// "exit status N" unless action-fail gave a message (spec/juju.md §1.1, jubilant Task).
	a.Results["return-code"] = fmt.Sprint(r.Code)
	if r.Stdout != "" {
		a.Results["stdout"] = r.Stdout
	}
	if r.Stderr != "" {
		a.Results["stderr"] = r.Stderr
	}
	if r.Code != 0 && !a.Failed {
		a.Failed, a.Message = true, fmt.Sprintf("exit status %d", r.Code)
	}
	return r, a, nil
}

// PrepareAction is what `juju run` does before the unit runs an action: params are validated
// against actions.yaml and defaults inserted; the action becomes the running one.
func (e *Env) PrepareAction(name string, params map[string]any) error {
	spec, ok := e.ch.Actions().ActionSpecs[name]
	if !ok {
		return fmt.Errorf("action %q not defined in actions.yaml", name)
	}
	if params == nil {
		params = map[string]any{}
	}
	if err := spec.ValidateParams(params); err != nil {
		return err
	}
	full, err := spec.InsertDefaults(params)
	if err != nil {
		return err
	}
	return e.update(func(st *fakejuju.State) {
		st.Action = &fakejuju.Action{Name: name, Params: full, Results: map[string]any{}}
	})
}

func (e *Env) run(extra []string) Run {
	cmd := exec.Command(filepath.Join(e.CharmDir, "dispatch"))
	cmd.Dir = e.CharmDir
	cmd.Env = append([]string{
		"PATH=" + e.BinDir + ":/usr/local/bin:/usr/bin:/bin",
		"JUJU_CHARM_DIR=" + e.CharmDir, "CHARM_DIR=" + e.CharmDir,
		"JUJU_UNIT_NAME=" + e.Unit, "JUJU_MODEL_NAME=" + e.Model,
		"JUJU_MODEL_UUID=8b5d8b64-0000-4000-8000-000000000000", "JUJU_CONTEXT_ID=" + e.Unit + "-ctx",
		"JUJU_VERSION=3.6.8", "JUJU_PRINCIPAL_UNIT=", "JUJU_MACHINE_ID=", "LANG=C.UTF-8",
		"FAKE_JUJU_STATE=" + e.StatePath,
	}, e.Extra...)
	cmd.Env = append(cmd.Env, extra...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	bags := snapshotBags(e.State())
	start := time.Now()
	err := cmd.Run()
	r := Run{Elapsed: time.Since(start), Stdout: stdout.String(), Stderr: stderr.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.Code = ee.ExitCode()
	} else if err != nil {
		r.Code, r.Stderr = -1, err.Error()
	}
	commit := r.Code == 0
	if err := e.update(func(st *fakejuju.State) {
		if commit {
			for _, p := range st.PendingPorts {
				st.OpenedPorts = applyPort(st.OpenedPorts, p)
			}
		}
		st.PendingPorts = nil
		if !commit {
			for _, rel := range st.Relations {
				if b, ok := bags[rel.ID]; ok {
					rel.LocalApp, rel.LocalUnit = b[0], b[1]
				}
			}
		}
	}); err != nil {
		panic(err)
	}
	return r
}

func applyPort(ports []string, op string) []string {
	p := op[1:]
	out := ports[:0:0]
	for _, x := range ports {
		if x != p {
			out = append(out, x)
		}
	}
	if op[0] == '+' {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}
