package follower

import (
	"encoding/json"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/falco-k8s/falco-k8s/agent/status"
	"github.com/falco-k8s/falco-k8s/internal/testregistry"
)

// upstreamRules is Falco's own k8s audit ruleset from ../shared: what a rules artifact carries.
const upstreamRules = "../../../shared/testdata/upstream/k8s_audit_rules.latest.yaml"

func readUpstreamRules(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(upstreamRules)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("shared test data missing: %v", err)
		}
		t.Skipf("shared test data not present: %v", err)
	}
	return string(b)
}

const disablePrivileged = `
- rule: Create Privileged Pod
  enabled: false
`

func postSync(t *testing.T, url, query string) status.SyncResult {
	t.Helper()
	resp, err := http.Post(url+"/sync"+query, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body status.SyncResponse
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || resp.StatusCode != 200 || len(body.Results) != 1 {
		t.Fatalf("sync: %d %+v %v", resp.StatusCode, body, err)
	}
	return body.Results[0]
}

// TestGuardRefusesDisablingActiveRule: a valid candidate that disables "Create Privileged Pod"
// is ignored naming that rule (scheduled check and sync-rules, dry run included), the diff is in
// /status and the results, and it is accepted once the reference allows rule removal.
func TestGuardRefusesDisablingActiveRule(t *testing.T) {
	upstream := readUpstreamRules(t)
	reg := testregistry.New(t, testregistry.Options{})
	p := newPusher(t, reg, "", "")
	d1 := p.push("rules/k8s:1", map[string]string{"k8s.yaml": upstream})
	e := newEnv(t, envOpts{reg: reg, follow: func(o *Options) { o.Interval = time.Hour }})
	e.waitAccepted(d1)
	if la := e.a.Status().LastAccepted; la == nil || la.Diff == nil || !slices.Contains(la.Diff.Added, "Create Privileged Pod") {
		t.Fatalf("first accepted set's diff: %+v", la)
	}

	d2 := p.push("rules/k8s:1", map[string]string{"k8s.yaml": upstream + disablePrivileged})
	for _, q := range []string{"?dry_run=true", ""} {
		r := postSync(t, e.url, q)
		if r.Result != ResultIgnored || r.Digest != d2 || !strings.Contains(r.Reason, `"Create Privileged Pod" (disabled)`) ||
			!strings.Contains(r.Reason, "follow.allow_rule_removal") {
			t.Fatalf("sync%s: %+v", q, r)
		}
		if r.Diff == nil || !slices.Equal(r.Diff.Disabled, []string{"Create Privileged Pod"}) || len(r.Diff.Added)+len(r.Diff.Removed) != 0 {
			t.Fatalf("sync%s diff: %+v", q, r.Diff)
		}
	}
	st := e.a.Status()
	if e.runningDigest() != d1 || st.LastIgnored == nil || st.LastIgnored.Digest != d2 || st.LastIgnored.Diff == nil ||
		!slices.Equal(st.LastIgnored.Diff.Disabled, []string{"Create Privileged Pod"}) ||
		!strings.Contains(st.LastIgnored.Reason, `"Create Privileged Pod" (disabled)`) {
		t.Fatalf("status: running %s, last ignored %+v", e.runningDigest(), st.LastIgnored)
	}
	e.stop()

	// The reference now allows removals: the same candidate is accepted.
	e2 := newEnv(t, envOpts{reg: reg, stateDir: e.stateDir, follow: func(o *Options) {
		o.Interval = time.Hour
		o.AllowRuleRemoval = []string{e.ref}
	}})
	// The restart's first check takes it (jitter 0).
	e2.waitAccepted(d2)
	la := e2.a.Status().LastAccepted
	if e2.runningDigest() != d2 || la == nil || la.Diff == nil || len(la.Diff.SwitchedOff) != 1 {
		t.Fatalf("allowed: running %s, last accepted %+v", e2.runningDigest(), la)
	}
}
