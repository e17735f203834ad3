package charmtest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/canonical/pebble/client"

	"github.com/falco-k8s/falco-k8s/agent/apiclient"
	"github.com/falco-k8s/falco-k8s/charm"
	"github.com/falco-k8s/falco-k8s/internal/fakejuju/harness"
	"github.com/falco-k8s/falco-k8s/internal/testregistry"
)

// app is a multi-unit application: fake Juju's model (peer relation, leadership, notices) with
// one real Pebble running the real agent per unit, and the reference registry in-process.
type app struct {
	t     testing.TB
	m     *harness.Model
	units map[string]*unit
	reg   *testregistry.Registry
	repo  string // acme/k8s-rules
	ref   string // host/acme/k8s-rules:1
	// noticesOnly: converge on hooks and Pebble notices alone, no update-status (the benchmark
	// measures the notice path).
	noticesOnly bool
}

func newApp(t testing.TB, reg *testregistry.Registry) *app {
	t.Helper()
	a := &app{t: t, units: map[string]*unit{}, reg: reg, repo: "acme/k8s-rules"}
	a.ref = reg.Host + "/" + a.repo + ":1"
	a.m = harness.NewModel(t, toolBin, charmBin, repoRoot, charm.PeerEndpoint)
	a.m.Setup = func(e *harness.Env) {
		u := &unit{Env: e, tb: t, port: freePorts(t), pebble: startPebble(t)}
		u.root = filepath.Join(e.Dir, "workload")
		e.Extra = []string{"FALCO_K8S_PEBBLE_SOCKET=" + u.pebble.Socket, "FALCO_K8S_WORKLOAD_ROOT=" + u.root}
		// Each unit's own ports: in Juju every pod has its own address and the same ports; here
		// the pods share the host, so the test gives each its own (config is per unit state).
		if err := e.SetConfig(map[string]any{"webhook-port": int64(u.port)}); err != nil {
			t.Fatal(err)
		}
		a.units[e.Unit] = u
		a.m.WatchNotices(e.Unit, charm.Container, u.pebble.Socket)
	}
	a.m.OnRun = func(ev harness.Event, r harness.Run) {
		if u := a.units[ev.Unit]; u != nil {
			u.outputs.WriteString(r.Stdout + r.Stderr)
		}
	}
	return a
}

// add adds a unit with the application's configuration.
func (a *app) add() *unit {
	a.t.Helper()
	e := a.m.AddUnit(charm.Container)
	if len(a.m.Units) == 1 {
		if err := e.SetConfig(map[string]any{"rules-artifacts": a.ref, "plain-http-registries": a.reg.Host, "follow-interval": "1h"}); err != nil {
			a.t.Fatal(err)
		}
	} else {
		// Application configuration is shared; the ports stay the unit's own.
		first := a.m.Units[0].State().Config
		cfg := map[string]any{}
		for k, v := range first {
			if k != "webhook-port" {
				cfg[k] = v
			}
		}
		if err := e.SetConfig(cfg); err != nil {
			a.t.Fatal(err)
		}
	}
	return a.units[e.Unit]
}

func (a *app) leader() *unit { return a.units[a.m.Leader()] }

func (a *app) live() []*unit {
	var out []*unit
	for _, e := range a.m.Units {
		out = append(out, a.units[e.Unit])
	}
	return out
}

// converge runs hooks (Juju's queue, then every notice the agents record) until cond holds.
// Agents work in the background after a hook (a pinned agent fetches the published digest), so
// this waits on the agents' Pebble notices, never on a clock; the deadline only turns a hang
// into a failure.
func (a *app) converge(what string, cond func() bool) {
	a.t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		a.m.Settle()
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			var b strings.Builder
			for _, u := range a.live() {
				st := u.State()
				fmt.Fprintf(&b, "\n%s: %s %q app=%v running=%s", u.Unit, st.UnitStatus.Status, st.UnitStatus.Message, st.AppStatus, relBag(u)["running"])
			}
			a.t.Fatalf("not converged on %s:%s", what, b.String())
		}
		n, err := a.m.PollNotices(context.Background(), 2*time.Second)
		if err != nil {
			a.t.Fatal(err)
		}
		if n == 0 && !a.noticesOnly {
			for _, u := range a.live() {
				// update-status stands in for Juju's periodic hook when no notice comes.
				a.m.Queue(u.Unit, "update-status")
			}
		}
	}
}

func relBag(u *unit) map[string]string {
	for _, r := range u.State().Relations {
		if r.Endpoint == charm.PeerEndpoint {
			return r.LocalUnit
		}
	}
	return nil
}

func (a *app) appStatus() (string, string) {
	st := a.leader().State().AppStatus
	return st.Status, st.Message
}

// allOn reports whether every unit's agent runs digest and the leader's application status
// says every unit does.
func (a *app) allOn(digest string) bool {
	short := digest[:len("sha256:")+12]
	for _, u := range a.live() {
		st := u.State().UnitStatus
		if st.Status != "active" || !strings.Contains(st.Message, short) {
			return false
		}
	}
	s, msg := a.appStatus()
	return s == "active" && strings.HasPrefix(msg, fmt.Sprintf("%d/%d units on k8s-rules@%s", len(a.m.Units), len(a.m.Units), short))
}

// running is the digest a unit's agent runs for the followed reference.
func running(t testing.TB, u *unit) string {
	t.Helper()
	for _, s := range u.agentStatus().Sources {
		if s.Digest != "" {
			return s.Digest
		}
	}
	return ""
}

// tagChecks counts the registry's manifest requests by tag (the follower's checks), as opposed
// to pulls by digest.
func (a *app) tagChecks() int {
	n := 0
	for _, l := range a.reg.Log() {
		if strings.HasSuffix(l, "/v2/"+a.repo+"/manifests/1") {
			n++
		}
	}
	return n
}

// tick makes every agent do what its follow timer does when it fires: POST /sync (a poller
// checks the registry; a pinned agent re-reads its pins).
func (a *app) tick() {
	a.t.Helper()
	for _, u := range a.live() {
		if _, err := apiclient.Local(u.port+1).Sync(context.Background(), false); err != nil {
			a.t.Fatalf("%s /sync: %v", u.Unit, err)
		}
	}
}

// action runs an action through the model (what it writes reaches the other units).
func (a *app) action(u *unit, name string, params map[string]any) map[string]any {
	a.t.Helper()
	r, res, err := a.m.Action(u.Unit, name, params)
	if err != nil {
		a.t.Fatal(err)
	}
	u.outputs.WriteString(r.Stdout + r.Stderr)
	if r.Code != 0 || res.Failed {
		a.t.Fatalf("action %s on %s failed: %q\n%s", name, u.Unit, res.Message, r)
	}
	return res.Results
}

func (a *app) actionFails(u *unit, name string, params map[string]any) string {
	a.t.Helper()
	_, res, err := a.m.Action(u.Unit, name, params)
	if err != nil {
		a.t.Fatal(err)
	}
	if !res.Failed {
		a.t.Fatalf("%s on %s succeeded: %v", name, u.Unit, res.Results)
	}
	return res.Message
}

func (a *app) reviewCount(u *unit, ns, since string) (int, map[string]any) {
	a.t.Helper()
	res := a.action(u, "review-alerts", map[string]any{"rule": "Privileged Container Started in Pod", "namespace": ns, "since": since})
	var n int
	fmt.Sscan(fmt.Sprint(res["alerts"]), &n) //nolint:errcheck // checked by the caller's comparison
	return n, res
}

func pebbleClient(t testing.TB, u *unit) *client.Client {
	c, err := client.New(&client.Config{Socket: u.pebble.Socket})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func stopAgent(t testing.TB, u *unit) {
	t.Helper()
	c := pebbleClient(t, u)
	id, err := c.Stop(&client.ServiceOptions{Names: []string{charm.ServiceName}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.WaitChange(id, &client.WaitChangeOptions{Timeout: 60 * time.Second}); err != nil {
		t.Fatal(err)
	}
}

// TestScaleOutOneDetection is issue 12's "done means": three units behave as one.
func TestScaleOutOneDetection(t *testing.T) {
	reg := testregistry.New(t, testregistry.Options{})
	v1 := pushRules(t, reg, "", "", "acme/k8s-rules:1", map[string]string{"k8s_audit_rules.yaml": rulesArtifact})
	a := newApp(t, reg)
	for range 3 {
		a.add()
	}
	a.converge("v1 on 3 units", func() bool { return a.allOn(v1) })
	u0, u1, u2 := a.units["falco-k8s/0"], a.units["falco-k8s/1"], a.units["falco-k8s/2"]
	if a.m.Leader() != u0.Unit {
		t.Fatalf("leader %s", a.m.Leader())
	}

	// Push v2: the leader's follower accepts it (its timer firing is POST /sync), its Pebble
	// notice runs the hook that publishes, and the others pull exactly that digest.
	v2 := pushRules(t, reg, "", "", "acme/k8s-rules:1", map[string]string{"k8s_audit_rules.yaml": strings.ReplaceAll(rulesArtifact, "charm-test", "charm-test-2")})
	if _, err := apiclient.Local(u0.port+1).Sync(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	if err := a.m.WaitNotice(context.Background(), u0.Unit, charm.NoticeKey, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	a.converge("v2 on 3 units", func() bool { return a.allOn(v2) })
	for _, u := range a.live() {
		if d := running(t, u); d != v2 {
			t.Errorf("%s runs %s, want v2 %s", u.Unit, d, v2)
		}
	}
	// Exactly one poller: every agent's timer fires once; the registry sees one tag check.
	reg.Reset()
	a.tick()
	if n := a.tagChecks(); n != 1 {
		t.Errorf("one interval of 3 units: %d tag checks, want 1 (log %v)", n, reg.Log())
	}

	// An invalid v3: ignored by the leader, nobody moves, the application status says why.
	pushRules(t, reg, "", "", "acme/k8s-rules:1", map[string]string{"k8s_audit_rules.yaml": "- rule: broken\n  condition: ka.verb=\n"})
	if res, err := apiclient.Local(u0.port+1).Sync(context.Background(), false); err != nil || res[0].Result != "ignored" {
		t.Fatalf("v3 sync %v %v", res, err)
	}
	a.converge("v3 ignored", func() bool { _, msg := a.appStatus(); return strings.Contains(msg, "ignored") })
	t.Logf("application status after v3: %v", a.leader().State().AppStatus)
	if s, msg := a.appStatus(); s != "active" || !strings.HasPrefix(msg, "3/3 units on k8s-rules@"+v2[:len("sha256:")+12]) || !strings.Contains(msg, "k8s_audit_rules.yaml") {
		t.Errorf("app status after v3: %s %q", s, msg)
	}
	for _, u := range a.live() {
		if d := running(t, u); d != v2 {
			t.Errorf("%s runs %s after v3, want v2", u.Unit, d)
		}
	}

	// Audit batches round-robin: one privileged pod per namespace per unit.
	post := func(round string) {
		for i, u := range a.live() {
			postPrivilegedPod(t, u, "team-a", fmt.Sprintf("%s-a-%d", round, i))
			postPrivilegedPod(t, u, "team-b", fmt.Sprintf("%s-b-%d", round, i))
		}
	}
	post("r1")
	// Review on a non-leader: the whole application's alerts.
	waitCount := func(u *unit, ns, since string, want int) map[string]any {
		t.Helper()
		var res map[string]any
		var n int
		for range 100 { // the journal is written just after the webhook acknowledges
			if n, res = a.reviewCount(u, ns, since); n == want {
				return res
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatalf("review on %s (%s since %s): %d alerts, want %d: %v", u.Unit, ns, since, n, want, res)
		return nil
	}
	res := waitCount(u1, "team-a", "24h", 3)
	if res["units"] != "falco-k8s/1,falco-k8s/0,falco-k8s/2" || res["not-answering"] != nil {
		t.Errorf("review units %v not-answering %v", res["units"], res["not-answering"])
	}
	waitCount(u2, "", "24h", 6)
	// That review went over https: every unit publishes an https peer URL (its certificate
	// names its address and is signed by the application's CA; the client trusts that CA only),
	// and the agents serve the peer API with TLS.
	for _, u := range a.live() {
		for _, r := range u.State().Relations {
			if r.Peer {
				if addr := r.LocalUnit["peer-address"]; !strings.HasPrefix(addr, "https://") {
					t.Errorf("%s publishes peer address %q, want https://", u.Unit, addr)
				}
			}
		}
		cfg, err := os.ReadFile(filepath.Join(u.root, charm.AgentConfigPath))
		if err != nil || !strings.Contains(string(cfg), charm.PeerTLSCertPath) {
			t.Errorf("%s agent config without peer.tls: %v", u.Unit, err)
		}
	}

	// Tune: refused off the leader with the command to run; on the leader it reaches everyone.
	if msg := a.actionFails(u1, "tune-rules", map[string]any{"scope": "namespace", "namespace": "team-a"}); !strings.Contains(msg, "juju run falco-k8s/leader tune-rules") {
		t.Errorf("tune-rules on a non-leader: %q", msg)
	}
	tuned := a.action(u0, "tune-rules", map[string]any{"scope": "namespace", "namespace": "team-a"})
	if tuned["written"] != "true" || tuned["shared"] != "true" {
		t.Fatalf("tune-rules on the leader: %v", tuned)
	}
	a.m.Settle()
	tuning := readFile(t, u0, charm.TuningPath)
	for _, u := range a.live() {
		if got := readFile(t, u, charm.TuningPath); got != tuning {
			t.Errorf("%s tuning differs from the leader's", u.Unit)
		}
	}
	mark := time.Now().UTC().Format(time.RFC3339Nano)
	post("r2")
	waitCount(u2, "team-b", mark, 3) // other alerts continue on every unit...
	if n, _ := a.reviewCount(u2, "team-a", mark); n != 0 {
		t.Errorf("tuned alerts after tuning: %d, want 0", n) // ...tuned ones stop on every unit
	}

	// One agent down: review names it and still sums the others.
	stopAgent(t, u2)
	_, res = a.reviewCount(u1, "", "24h")
	// r1: 6 alerts, r2: 3 (team-a tuned), less falco-k8s/2's share (3).
	if !strings.Contains(fmt.Sprint(res["not-answering"]), "falco-k8s/2") || res["alerts"] != "6" {
		t.Errorf("review with falco-k8s/2 stopped: alerts %v not-answering %v", res["alerts"], res["not-answering"])
	}
	a.m.Queue(u2.Unit, "update-status") // Pebble's restart, by the charm's replan
	a.m.Settle()

	// Kill the leader's agent and move leadership: nothing changes, the new leader polls.
	stopAgent(t, u0)
	published := relApp(u1)["published"]
	reg.Reset()
	a.m.SetLeader(u1.Unit)
	a.m.Settle()
	// The old leader's pod comes back (its next hook replans the agent, now pinned).
	a.m.Queue(u0.Unit, "update-status")
	a.converge("new leader", func() bool { return a.allOn(v2) && running(t, u1) == v2 })
	if relApp(u1)["published"] != published {
		t.Errorf("new leader re-published: %s, was %s", relApp(u1)["published"], published)
	}
	for _, l := range reg.Log() {
		if strings.Contains(l, "/blobs/") {
			t.Errorf("leadership change downloaded again: %s", l)
		}
	}
	for _, u := range a.live() {
		if got := readFile(t, u, charm.TuningPath); got != tuning {
			t.Errorf("%s tuning changed with leadership", u.Unit)
		}
	}
	reg.Reset()
	a.tick()
	if n := a.tagChecks(); n != 1 {
		t.Errorf("after the leadership change: %d tag checks, want 1", n)
	}
	if mode := u1.agentStatus().Sources[0].Mode; mode != "poll" {
		t.Errorf("new leader's follower mode %q", mode)
	}
	if mode := u0.agentStatus().Sources[0].Mode; mode != "pinned" {
		t.Errorf("old leader's follower mode %q", mode)
	}

	// A fourth unit converges before it reports active.
	u3 := a.add()
	a.converge("4 units", func() bool { return a.allOn(v2) })
	for _, s := range u3.State().StatusHistory {
		if s.Status == "active" && !strings.Contains(s.Message, v2[:len("sha256:")+12]) {
			t.Errorf("falco-k8s/3 was active before converging: %q", s.Message)
		}
	}
	if got := readFile(t, u3, charm.TuningPath); got != tuning {
		t.Errorf("falco-k8s/3 has not the shared tuning")
	}
	// Remove one: nothing lost.
	a.m.RemoveUnit(u2.Unit)
	a.converge("3 units after removal", func() bool { return a.allOn(v2) })
	if relApp(u1)["published"] != published {
		t.Errorf("published set changed on removal")
	}
	for _, u := range a.live() {
		if got := readFile(t, u, charm.TuningPath); got != tuning {
			t.Errorf("%s tuning changed on removal", u.Unit)
		}
	}

	// A published digest a unit cannot fetch: it keeps its last good set and says so, the
	// application status names it; once the registry is back, it converges.
	leader := a.leader()
	v4 := pushRules(t, reg, "", "", "acme/k8s-rules:1", map[string]string{"k8s_audit_rules.yaml": strings.ReplaceAll(rulesArtifact, "charm-test", "charm-test-4")})
	if res, err := apiclient.Local(leader.port+1).Sync(context.Background(), false); err != nil || res[0].Result != "accepted" {
		t.Fatalf("v4 sync %v %v", res, err)
	}
	reg.Fail(503, "")
	a.converge("registry down", func() bool {
		s, msg := a.appStatus()
		return s == "waiting" && strings.Contains(msg, "keeps k8s-rules@"+v2[:len("sha256:")+12])
	})
	t.Logf("application status with the registry down: %v", a.leader().State().AppStatus)
	for _, u := range a.live() {
		if u == leader {
			continue
		}
		if st := u.State().UnitStatus; st.Status != "waiting" || !strings.Contains(st.Message, "keeping k8s-rules@"+v2[:len("sha256:")+12]) {
			t.Errorf("%s with the registry down: %s %q", u.Unit, st.Status, st.Message)
		}
		if d := running(t, u); d != v2 {
			t.Errorf("%s runs %s with the registry down, want the last good v2", u.Unit, d)
		}
	}
	reg.Recover()
	a.converge("registry back", func() bool { return a.allOn(v4) })

	// sync-rules: the leader checks and publishes; another unit reports its pins and their source.
	var other *unit
	for _, u := range a.live() {
		if u != leader {
			other = u
		}
	}
	res = a.action(leader, "sync-rules", nil)
	if r := res["references"].(map[string]any)["ref-1"].(map[string]any); r["result"] != "unchanged" || r["digest"] != v4 ||
		!strings.Contains(fmt.Sprint(res["published"]), "published by "+leader.Unit+" (leader)") {
		t.Errorf("sync-rules on the leader: %v", res)
	}
	res = a.action(other, "sync-rules", nil)
	if res["mode"] != "pinned" || !strings.Contains(fmt.Sprint(res["source"]), "published by "+leader.Unit) ||
		!strings.HasPrefix(fmt.Sprint(res["summary"]), "running the published rules") ||
		res["pins"].(map[string]any)["pin-1"].(map[string]any)["digest"] != v4 {
		t.Errorf("sync-rules on %s: %v", other.Unit, res)
	}
	// reset-tuning: leader only; every unit drops the shared tuning.
	if msg := a.actionFails(other, "reset-tuning", nil); !strings.Contains(msg, "juju run falco-k8s/leader reset-tuning") {
		t.Errorf("reset-tuning on a non-leader: %q", msg)
	}
	a.action(leader, "reset-tuning", nil)
	a.m.Settle()
	for _, u := range a.live() {
		if _, err := os.Stat(u.root + charm.TuningPath); !os.IsNotExist(err) {
			t.Errorf("%s still has a tuning file after reset: %v", u.Unit, err)
		}
	}

	// The peer token never leaves its secret and the 0600 file in the workload.
	lst := leader.State()
	token := lst.Secrets[lst.SecretLabels[charm.PeerTokenLabel]]["token"]
	if len(token) < 32 {
		t.Fatalf("peer token %q", token)
	}
	for _, u := range a.live() {
		st := u.State()
		leak := u.outputs.String() + u.pebble.logs.String() + st.UnitStatus.Message + st.AppStatus.Message + fmt.Sprint(st.Logs) + fmt.Sprint(st.Relations)
		if strings.Contains(leak, token) {
			t.Errorf("%s: the peer token leaked", u.Unit)
		}
		if fi, err := os.Stat(u.root + charm.PeerTokenPath); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s token file: %v %v", u.Unit, fi, err)
		}
	}
}

func relApp(u *unit) map[string]string {
	for _, r := range u.State().Relations {
		if r.Endpoint == charm.PeerEndpoint {
			return r.LocalApp
		}
	}
	return nil
}

func readFile(t testing.TB, u *unit, path string) string {
	t.Helper()
	b, err := os.ReadFile(u.root + path)
	if err != nil {
		t.Fatalf("%s %s: %v", u.Unit, path, err)
	}
	return string(b)
}
