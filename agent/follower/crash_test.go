package follower

import (
	"context"
	"crypto/elliptic"
	"encoding/pem"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sigstore/sigstore/pkg/cryptoutils"

	"github.com/falco-k8s/falco-k8s/agent"
	"github.com/falco-k8s/falco-k8s/agent/status"
	"github.com/falco-k8s/falco-k8s/artifact/ref"
	"github.com/falco-k8s/falco-k8s/artifact/signature"
	"github.com/falco-k8s/falco-k8s/internal/atomicfile"
	"github.com/falco-k8s/falco-k8s/internal/testregistry"
)

// The crash child: the test binary re-executed with these variables runs one promotion (or
// one start-up) on a state directory and kills itself with SIGKILL at the crashAtEnv-th step
// the crash hook reports, which must be named crashNameEnv.
const (
	crashAtEnv    = "FOLLOWER_CRASH_AT"
	crashNameEnv  = "FOLLOWER_CRASH_NAME"
	crashDirEnv   = "FOLLOWER_CRASH_DIR"
	crashRefEnv   = "FOLLOWER_CRASH_REF"
	crashFilesEnv = "FOLLOWER_CRASH_FILES" // follow.rule_files, comma-separated (default crashRuleFiles)
	crashPhaseEnv = "FOLLOWER_CRASH_PHASE" // "promote" (start-up, then a check), "edit" (start-up, then the local edit) or "start"
	// crashKeysEnv holds PEM public keys (concatenated): set, every digest must be signed by
	// one of them, and the signer is committed with the set.
	crashKeysEnv = "FOLLOWER_CRASH_KEYS"
)

func TestMain(m *testing.M) {
	if os.Getenv(crashAtEnv) != "" {
		os.Exit(crashChild())
	}
	os.Exit(m.Run())
}

// crashChild returns only when the step was not reached (or misnamed): the parent fails then.
func crashChild() int {
	at, _ := strconv.Atoi(os.Getenv(crashAtEnv))
	name := os.Getenv(crashNameEnv)
	n := 0
	hook := func(step string) {
		n++
		if n != at {
			return
		}
		if step != name {
			fmt.Printf("step %d is %q, expected %q: the steps are not deterministic\n", n, step, name)
			os.Exit(3)
		}
		syscall.Kill(os.Getpid(), syscall.SIGKILL) //nolint:errcheck // dies here
		select {}
	}
	crashHook.Store(&hook)
	var files []string
	if v := os.Getenv(crashFilesEnv); v != "" {
		files = strings.Split(v, ",")
	}
	f, err := New(crashOptions(os.Getenv(crashDirEnv), os.Getenv(crashRefEnv), files...))
	if err != nil {
		fmt.Println("start:", err)
		return 2
	}
	switch os.Getenv(crashPhaseEnv) {
	case "promote":
		attach(f, &crashSink{})
		f.round(context.Background(), []int{0}, false, false)
	case "edit":
		attach(f, &crashSink{})
		f.reconcileDisk()
	}
	fmt.Printf("finished after %d steps without reaching step %d\n", n, at)
	return 4
}

var crashRuleFiles = []string{"a.yaml", "b.yaml", "nested/c.yaml"}

func crashOptions(dir, ref string, files ...string) Options {
	host, _, _ := strings.Cut(ref, "/")
	if len(files) == 0 {
		files = crashRuleFiles
	}
	o := Options{Refs: []string{ref}, RuleFiles: files, Interval: time.Hour, StateDir: dir,
		Registry: RegistryOptions{PlainHTTP: []string{host}}, DisableWatch: true}
	if keys := os.Getenv(crashKeysEnv); keys != "" {
		var checkers signature.Any
		for rest := []byte(keys); ; {
			var b *pem.Block
			if b, rest = pem.Decode(rest); b == nil {
				break
			}
			v, err := signature.NewVerifier(pem.EncodeToMemory(b))
			if err != nil {
				panic(err)
			}
			checkers = append(checkers, v)
		}
		o.Signature = SignatureOptions{Verifier: checkers}
	}
	return o
}

// crashVersion is version n of the followed artifact: every file names its version, so a mixed
// set shows.
func crashVersion(n int) map[string]string {
	out := map[string]string{}
	for _, p := range crashRuleFiles {
		out[p] = fmt.Sprintf("# version %d of %s\n%s", n, p, genRule(fmt.Sprintf("v%d", n)))
	}
	return out
}

// crashSink stands in for the agent: the crash tests are about the follower's disk state; the
// agent's validation and swap are covered by the other tests.
type crashSink struct {
	mu                sync.Mutex
	compiled, ignored int
	gen               uint64
}

func (s *crashSink) Compile(string, []agent.SourceFile) (*agent.Candidate, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.compiled++
	return &agent.Candidate{}, nil
}

func (s *crashSink) Accept(*agent.Candidate) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gen++
	return s.gen, nil
}

func (s *crashSink) Ignore(string, []agent.SourceFile, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ignored++
}

func (s *crashSink) ReportSource(status.Source) {}

// attach gives f its sink as Run would, without starting the schedule.
func attach(f *Follower, sink agent.RuleSink) {
	f.mu.Lock()
	f.sink, f.running = sink, true
	close(f.started)
	f.mu.Unlock()
}

// recordSteps runs fn with a hook recording every step.
func recordSteps(fn func()) []string {
	var steps []string
	hook := func(s string) { steps = append(steps, s) }
	crashHook.Store(&hook)
	defer crashHook.Store(nil)
	fn()
	return steps
}

func count(list []string, s string) int {
	n := 0
	for _, x := range list {
		if x == s {
			n++
		}
	}
	return n
}

func copyDir(t testing.TB, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if d.IsDir() {
			return os.MkdirAll(target, fi.Mode().Perm())
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, fi.Mode().Perm())
	})
	if err != nil {
		t.Fatal(err)
	}
}

// servedVersion returns the version every served file and every active file holds, failing
// the test on a mix, a missing file or an active file that differs from what is served.
func servedVersion(t testing.TB, f *Follower, ref string) int {
	t.Helper()
	files, err := f.Initial(context.Background())
	if err != nil || len(files) != len(f.o.RuleFiles) {
		t.Fatalf("served %d files (%v), want %d", len(files), err, len(f.o.RuleFiles))
	}
	v := -1
	for _, sf := range files {
		n, ok := versionOf(string(sf.Content))
		if !ok || (v >= 0 && n != v) {
			t.Fatalf("mixed set served: %s holds %q", sf.Name, firstLine(sf.Content))
		}
		v = n
		if want := crashVersion(n)[sf.Name]; string(sf.Content) != want {
			t.Fatalf("served %s is not version %d's", sf.Name, n)
		}
		active, err := os.ReadFile(f.ActivePath(ref, sf.Name))
		if err != nil || string(active) != string(sf.Content) {
			t.Fatalf("active file %s holds %q, the served set version %d (%v)", sf.Name, firstLine(active), n, err)
		}
	}
	return v
}

func versionOf(s string) (int, bool) {
	rest, ok := strings.CutPrefix(s, "# version ")
	if !ok {
		return 0, false
	}
	num, _, _ := strings.Cut(rest, " ")
	n, err := strconv.Atoi(num)
	return n, err == nil
}

func firstLine(b []byte) string {
	s, _, _ := strings.Cut(string(b), "\n")
	return s
}

// noRemnants fails if a temp file, a staged set or an uncommitted set is left in dir.
func noRemnants(t testing.TB, f *Follower, dir string) {
	t.Helper()
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error { //nolint:errcheck
		if err == nil && atomicfile.IsTemp(d.Name()) {
			t.Fatalf("crash remnant left: %s", p)
		}
		return nil
	})
	if e, _ := os.ReadDir(f.store.StagingDir()); len(e) != 0 {
		t.Fatalf("staging not emptied: %v", e)
	}
	st, err := f.store.Load()
	if err != nil {
		t.Fatal(err)
	}
	if e, _ := os.ReadDir(f.store.setsDir()); len(e) != len(st.Refs) {
		t.Fatalf("%d set directories for %d committed sets", len(e), len(st.Refs))
	}
}

// crashRun runs the crash child on dir, expecting it to die by SIGKILL at step at (1-based).
func crashRun(t testing.TB, exe, dir, ref, phase string, at int, name string, files ...string) {
	t.Helper()
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), crashAtEnv+"="+strconv.Itoa(at), crashNameEnv+"="+name, crashDirEnv+"="+dir,
		crashRefEnv+"="+ref, crashPhaseEnv+"="+phase, crashFilesEnv+"="+strings.Join(files, ","))
	out, err := cmd.CombinedOutput()
	ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus)
	if err == nil || !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("%s step %d (%s): child was not killed there: %v\n%s", phase, at, name, err, out)
	}
}

const crashEdit = "# edited by the operator\n"

// TestCrashAtEveryPromotionStep kills the follower (SIGKILL, in a child process) at every
// write, rename, fsync and removal of a promotion, then starts it again on the same state
// directory; and for each of those crashes, kills the start-up that finishes it at some of its
// own steps, then starts again. Two promotions: v1 to v2 from the registry, and an operator's
// edit of an active file accepted as a local edit. Each time, after the restart: exactly the
// old set (killed before state.json's rename, the commit point) or exactly the new one is
// served and on disk, no remnant is left nor taken for a local edit, the operator's edit is
// never lost, and the next check converges to v2. v1 and v2 are signed with different keys:
// the signer reported (state and /status) is always the served set's, and none after an edit.
func TestCrashAtEveryPromotionStep(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns a few hundred processes")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	reg := testregistry.New(t, testregistry.Options{})
	p := newPusher(t, reg, "", "")
	sigRef, _ := ref.Parse(reg.Host + "/rules/crash:1")
	ref := reg.Host + "/rules/crash:1"
	d1 := p.push("rules/crash:1", crashVersion(1))
	var keys []byte
	var signers [3]string // by version; none for a local edit
	sign := func(v int, d string) {
		t.Helper()
		priv, pub, err := cryptoutils.GeneratePEMEncodedECDSAKeyPair(elliptic.P256(), nil)
		if err != nil {
			t.Fatal(err)
		}
		s, err := signature.NewSigner(priv, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Sign(context.Background(), p.c, sigRef, d); err != nil {
			t.Fatal(err)
		}
		keys, signers[v] = append(keys, pub...), "cosign key "+s.Key()
		t.Setenv(crashKeysEnv, string(keys))
	}
	sign(1, d1)
	// wantSigner checks the committed and reported signer of the served version v (0: an edit).
	wantSigner := func(f *Follower, v int, what string) {
		t.Helper()
		st, _ := f.store.Load()
		if rs, _ := st.Ref(ref); rs.Signer != signers[v] || f.health[0].Signer != signers[v] {
			t.Fatalf("%s: signer %q committed, %q reported, want %q", what, rs.Signer, f.health[0].Signer, signers[v])
		}
	}

	// The template: v1 accepted and on disk. Then v2 is pushed: the next check promotes it.
	tmpl := t.TempDir()
	f, err := New(crashOptions(tmpl, ref))
	if err != nil {
		t.Fatal(err)
	}
	attach(f, &crashSink{})
	if r := f.Sync(context.Background(), false); r[0].Result != ResultAccepted || r[0].Digest != d1 {
		t.Fatalf("template: %+v", r)
	}
	d2 := p.push("rules/crash:1", crashVersion(2))
	sign(2, d2)
	edited := crashEdit + crashVersion(1)["a.yaml"]
	editTmpl := t.TempDir()
	copyDir(t, tmpl, editTmpl)
	if err := os.WriteFile(filepath.Join(editTmpl, "rules", refDir(f.names[0]), "a.yaml"), []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}

	// converge checks the next check brings v2 everywhere.
	converge := func(f *Follower, dir, what string) {
		t.Helper()
		r := f.Sync(context.Background(), false)
		if r[0].Digest != d2 || (r[0].Result != ResultAccepted && r[0].Result != ResultUnchanged) || r[0].Signer != signers[2] {
			t.Fatalf("%s: next check %+v", what, r)
		}
		wantSigner(f, 2, what)
		if v := servedVersion(t, f, ref); v != 2 {
			t.Fatalf("%s: after the next check serves v%d", what, v)
		}
		st, _ := f.store.Load()
		if rs, ok := st.Ref(ref); !ok || rs.Digest != d2 || rs.LocalEdit {
			t.Fatalf("%s: committed %+v", what, st)
		}
		noRemnants(t, f, dir)
	}
	restart := func(dir, what string) *Follower {
		t.Helper()
		f, err := New(crashOptions(dir, ref))
		if err != nil {
			t.Fatalf("%s: restart: %v", what, err)
		}
		noRemnants(t, f, dir)
		return f
	}
	// verifyPull: v1 or v2, nothing taken for an edit.
	verifyPull := func(dir string, committed bool, what string) {
		t.Helper()
		f := restart(dir, what)
		want := map[bool]int{false: 1, true: 2}[committed]
		if v := servedVersion(t, f, ref); v != want {
			t.Fatalf("%s: restart serves v%d, want v%d", what, v, want)
		}
		wantSigner(f, want, what)
		sink := &crashSink{}
		attach(f, sink)
		f.reconcileDisk()
		if sink.compiled != 0 || sink.ignored != 0 {
			t.Fatalf("%s: a crash remnant was taken for a local edit", what)
		}
		converge(f, dir, what)
	}
	// verifyEdit: the edit is on disk whatever happened; committed, it is served; not
	// committed, it is still an edit and is accepted now.
	verifyEdit := func(dir string, committed bool, what string) {
		t.Helper()
		f := restart(dir, what)
		check := func(when string) {
			files, _ := f.Initial(context.Background())
			for _, sf := range files {
				want := crashVersion(1)[sf.Name]
				if sf.Name == "a.yaml" && (committed || when == "after") {
					want = edited
				}
				if string(sf.Content) != want {
					t.Fatalf("%s: %s: served %s holds %q", what, when, sf.Name, firstLine(sf.Content))
				}
				if b, _ := os.ReadFile(f.ActivePath(ref, sf.Name)); sf.Name == "a.yaml" && string(b) != edited || sf.Name != "a.yaml" && string(b) != want {
					t.Fatalf("%s: %s: active %s holds %q", what, when, sf.Name, firstLine(b))
				}
			}
		}
		check("at restart")
		wantSigner(f, map[bool]int{false: 1, true: 0}[committed], what)
		sink := &crashSink{}
		attach(f, sink)
		f.reconcileDisk()
		if committed && sink.compiled != 0 || !committed && sink.compiled != 1 {
			t.Fatalf("%s: %d validations of the edit at restart", what, sink.compiled)
		}
		check("after")
		wantSigner(f, 0, what)
		converge(f, dir, what)
	}

	kills := 0
	for _, sc := range []struct {
		name, phase string
		tmpl        string
		starts      int // start-up kills per promotion step
		verify      func(dir string, committed bool, what string)
	}{
		{"pull", "promote", tmpl, 3, verifyPull},
		{"local edit", "edit", editTmpl, 4, verifyEdit},
	} {
		// The steps of the promotion, recorded on a copy.
		rec := t.TempDir()
		copyDir(t, sc.tmpl, rec)
		steps := recordSteps(func() {
			f, err := New(crashOptions(rec, ref))
			if err != nil {
				t.Fatal(err)
			}
			attach(f, &crashSink{})
			if sc.phase == "promote" {
				f.round(context.Background(), []int{0}, false, false)
			} else {
				f.reconcileDisk()
			}
		})
		commit := -1
		for i, s := range steps {
			if s == "state.json:rename" {
				commit = i
			}
		}
		if commit < 0 || len(steps) < 20 {
			t.Fatalf("%s: promotion steps %v", sc.name, steps)
		}
		// Each accepted file is written once: a download is moved into its set and copied to
		// the active file; an edit, already on disk, is written to its set only.
		for _, file := range crashRuleFiles {
			rel := refDir(f.names[0]) + "/" + file
			setWrites, activeWrites := count(steps, "set:"+file+":write"), count(steps, "active:"+rel+":write")
			want := [2]int{0, 1}
			if sc.phase == "edit" {
				want = [2]int{1, 0}
			}
			if [2]int{setWrites, activeWrites} != want {
				t.Fatalf("%s: %s written %d times to its set and %d times to the active file, want %v", sc.name, file, setWrites, activeWrites, want)
			}
		}
		for k, name := range steps {
			what := fmt.Sprintf("%s: killed at step %d (%s)", sc.name, k+1, name)
			dir := t.TempDir()
			copyDir(t, sc.tmpl, dir)
			crashRun(t, exe, dir, ref, sc.phase, k+1, name)
			kills++
			// The start-ups that finish this crash, killed at some of their own steps.
			probe := t.TempDir()
			copyDir(t, dir, probe)
			startSteps := recordSteps(func() {
				if _, err := New(crashOptions(probe, ref)); err != nil {
					t.Fatal(err)
				}
			})
			for r := range min(sc.starts, len(startSteps)) {
				j := (k + r*len(startSteps)/min(sc.starts, len(startSteps))) % len(startSteps)
				again := t.TempDir()
				copyDir(t, dir, again)
				crashRun(t, exe, again, ref, "start", j+1, startSteps[j])
				kills++
				sc.verify(again, k > commit, fmt.Sprintf("%s, then at start-up step %d (%s)", what, j+1, startSteps[j]))
			}
			sc.verify(dir, k > commit, what)
		}
		t.Logf("%s: %d promotion steps", sc.name, len(steps))
	}
	t.Logf("%d kills", kills)
	if kills < 200 {
		t.Fatalf("only %d kills", kills)
	}
}

// TestCrashWhileDroppingFiles: follow.rule_files loses a file across a restart, and the
// start-up that removes its active copy (and records that) is killed at each of its steps. The
// next start finishes it: the dropped file is gone, the others serve v1 untouched, nothing is
// taken for an edit, and the next check converges to v2.
func TestCrashWhileDroppingFiles(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	reg := testregistry.New(t, testregistry.Options{})
	p := newPusher(t, reg, "", "")
	ref := reg.Host + "/rules/crash:1"
	p.push("rules/crash:1", crashVersion(1))
	tmpl := t.TempDir()
	f, err := New(crashOptions(tmpl, ref))
	if err != nil {
		t.Fatal(err)
	}
	attach(f, &crashSink{})
	if r := f.Sync(context.Background(), false); r[0].Result != ResultAccepted {
		t.Fatalf("template: %+v", r)
	}
	dropped := f.ActivePath(ref, "nested/c.yaml")[len(tmpl):]
	d2 := p.push("rules/crash:1", crashVersion(2))
	kept := crashRuleFiles[:2]

	rec := t.TempDir()
	copyDir(t, tmpl, rec)
	steps := recordSteps(func() {
		if _, err := New(crashOptions(rec, ref, kept...)); err != nil {
			t.Fatal(err)
		}
	})
	if count(steps, "active:"+refDir(f.names[0])+"/nested/c.yaml:remove") != 1 {
		t.Fatalf("start-up steps %v", steps)
	}
	for k, name := range steps {
		what := fmt.Sprintf("killed at start-up step %d (%s)", k+1, name)
		dir := t.TempDir()
		copyDir(t, tmpl, dir)
		crashRun(t, exe, dir, ref, "start", k+1, name, kept...)
		f, err := New(crashOptions(dir, ref, kept...))
		if err != nil {
			t.Fatalf("%s: restart: %v", what, err)
		}
		if v := servedVersion(t, f, ref); v != 1 {
			t.Fatalf("%s: serves v%d", what, v)
		}
		if _, err := os.Stat(filepath.Join(dir, dropped)); !os.IsNotExist(err) {
			t.Fatalf("%s: dropped file still there (%v)", what, err)
		}
		noRemnants(t, f, dir)
		sink := &crashSink{}
		attach(f, sink)
		f.reconcileDisk()
		if sink.compiled != 0 {
			t.Fatalf("%s: taken for a local edit", what)
		}
		if r := f.Sync(context.Background(), false); r[0].Result != ResultAccepted || r[0].Digest != d2 {
			t.Fatalf("%s: next check %+v", what, r)
		}
		if v := servedVersion(t, f, ref); v != 2 {
			t.Fatalf("%s: after the next check serves v%d", what, v)
		}
	}
	t.Logf("%d kills", len(steps))

	// A dropped file the operator changed is theirs: left in place.
	dir := t.TempDir()
	copyDir(t, tmpl, dir)
	if err := os.WriteFile(filepath.Join(dir, dropped), []byte(crashEdit), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := New(crashOptions(dir, ref, kept...)); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, dropped)); err != nil || string(b) != crashEdit {
		t.Fatalf("operator's file removed or changed: %q %v", b, err)
	}
}
