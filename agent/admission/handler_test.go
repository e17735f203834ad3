package admission

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	admissionv1 "k8s.io/api/admission/v1"

	"github.com/falco-k8s/falco-k8s/engine"
	"github.com/falco-k8s/falco-k8s/rules"
)

// tuning is what `falco-k8s alerts tune --scope namespace` writes: the namespace "trusted" is
// excepted from the privileged-container rule.
const tuning = `
- rule: Privileged Container Started in Pod
  exceptions:
    - name: tuned_namespace
      fields: [ka.target.namespace]
      comps: [=]
      values: [[trusted]]
  override:
    exceptions: append
`

func tunedRules(t testing.TB) *engine.Ruleset {
	t.Helper()
	rs, _, err := engine.Load([]engine.File{{Name: "k8s_audit_default.yaml", Content: rules.Default()},
		{Name: "tuning.yaml", Content: []byte(tuning)}}, engine.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

const privilegedPod = `{"kind":"Pod","apiVersion":"v1","metadata":{"name":"evil","namespace":"%NS%"},
"spec":{"containers":[{"name":"c","image":"busybox","securityContext":{"privileged":true}}]}}`

const plainPod = `{"kind":"Pod","apiVersion":"v1","metadata":{"name":"ok","namespace":"%NS%"},
"spec":{"containers":[{"name":"c","image":"busybox"}]}}`

func review(op, ns, name, sub, object string, dry bool) string {
	r := map[string]any{
		"uid": "7f0c-uid", "kind": map[string]string{"group": "", "version": "v1", "kind": "Pod"},
		"resource":  map[string]string{"group": "", "version": "v1", "resource": "pods"},
		"namespace": ns, "name": name, "operation": op, "dryRun": dry,
		"userInfo": map[string]any{"username": "alice", "groups": []string{"devs", "system:authenticated"}},
	}
	if sub != "" {
		r["subResource"] = sub
	}
	if object != "" {
		r["object"] = json.RawMessage(strings.ReplaceAll(object, "%NS%", ns))
	}
	b, _ := json.Marshal(map[string]any{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": r})
	return string(b)
}

type sink struct {
	mu     sync.Mutex
	alerts []*engine.Alert
}

func (s *sink) send(a *engine.Alert) { s.mu.Lock(); s.alerts = append(s.alerts, a); s.mu.Unlock() }

func newHandler(t testing.TB, cfg Config, rs *engine.Ruleset) (*Handler, *sink, *prometheus.Registry) {
	reg := prometheus.NewRegistry()
	s := &sink{}
	if cfg.MaxBodySize == 0 {
		cfg.MaxBodySize = 1 << 20
	}
	if cfg.MaxInflight == 0 {
		cfg.MaxInflight = 4
	}
	h := New(cfg, Deps{Ruleset: func() *engine.Ruleset { return rs }, Send: s.send, Registerer: reg})
	return h, s, reg
}

func post(t testing.TB, h http.Handler, body string) (*httptest.ResponseRecorder, *admissionv1.AdmissionResponse) {
	t.Helper()
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodPost, "/k8s-admission?timeout=5s", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		return rec, nil
	}
	var out admissionv1.AdmissionReview
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
		t.Fatalf("answer is not an AdmissionReview: %v: %s", err, rec.Body)
	}
	if out.APIVersion != "admission.k8s.io/v1" || out.Kind != "AdmissionReview" || out.Response == nil || out.Response.UID != "7f0c-uid" {
		t.Fatalf("bad AdmissionReview answer: %s", rec.Body)
	}
	return rec, out.Response
}

func TestDecisions(t *testing.T) {
	rs := tunedRules(t)
	privileged := Selector{Rules: []string{"Privileged Container Started in Pod"}}
	exec := `{"kind":"PodExecOptions","apiVersion":"v1","stdin":true,"tty":true,"container":"c","command":["sh","-c","id"]}`
	for _, tc := range []struct {
		name     string
		mode     Mode
		sel      Selector
		body     string
		allowed  bool
		outcome  string
		msg      []string // in the denial message
		warn     []string // in the single warning
		alertKey string   // decision recorded in the alert
		dry      bool
	}{
		{name: "off allows without evaluating", mode: ModeOff, sel: privileged, body: review("CREATE", "default", "", "", privilegedPod, false),
			allowed: true, outcome: OutcomeAllowed},
		{name: "deny refuses with rule and output", mode: ModeDeny, sel: privileged, body: review("CREATE", "default", "", "", privilegedPod, false),
			outcome: OutcomeDenied, msg: []string{`denied by falco-k8s: rule "Privileged Container Started in Pod" (Critical)`, "Pod created with a privileged container", "user=alice", "ns=default"}, alertKey: OutcomeDenied},
		{name: "warn allows with the output as warning", mode: ModeWarn, sel: privileged, body: review("CREATE", "default", "", "", privilegedPod, false),
			allowed: true, outcome: OutcomeWarned, warn: []string{`falco-k8s: rule "Privileged Container Started in Pod" (Critical): Pod created with a privileged container`}, alertKey: OutcomeWarned},
		{name: "tuning exception applies", mode: ModeDeny, sel: privileged, body: review("CREATE", "trusted", "", "", privilegedPod, false),
			allowed: true, outcome: OutcomeAllowed},
		{name: "harmless pod allowed", mode: ModeDeny, sel: privileged, body: review("CREATE", "default", "", "", plainPod, false),
			allowed: true, outcome: OutcomeAllowed},
		{name: "unselected rule only alerts from the audit log", mode: ModeDeny, sel: Selector{Rules: []string{"Pod Uses Host Network"}},
			body: review("CREATE", "default", "", "", privilegedPod, false), allowed: true, outcome: OutcomeAllowed},
		{name: "selection by tag", mode: ModeDeny, sel: Selector{Tags: []string{"mitre_privilege_escalation"}}, body: review("CREATE", "default", "", "", privilegedPod, false),
			outcome: OutcomeDenied, msg: []string{"Privileged Container Started in Pod"}, alertKey: OutcomeDenied},
		{name: "selection by priority", mode: ModeDeny, sel: Selector{MinPriority: "critical"}, body: review("CREATE", "default", "", "", privilegedPod, false),
			outcome: OutcomeDenied, msg: []string{"Privileged Container Started in Pod"}, alertKey: OutcomeDenied},
		{name: "priority above the rule's", mode: ModeDeny, sel: Selector{MinPriority: "alert"}, body: review("CREATE", "default", "", "", privilegedPod, false),
			allowed: true, outcome: OutcomeAllowed},
		{name: "dry run decided and recorded", mode: ModeDeny, sel: privileged, body: review("CREATE", "default", "", "", privilegedPod, true),
			outcome: OutcomeDenied, msg: []string{"Privileged Container Started in Pod"}, alertKey: OutcomeDenied, dry: true},
		{name: "exec CONNECT", mode: ModeDeny, sel: Selector{Rules: []string{"Exec or Attach Into Pod"}}, body: review("CONNECT", "default", "web-0", "exec", exec, false),
			outcome: OutcomeDenied, msg: []string{"Session opened into pod", "action=exec", "container=c", "command=sh"}, alertKey: OutcomeDenied},
		{name: "not decidable rule never blocks", mode: ModeDeny, sel: Selector{Rules: []string{"Secret Read by User"}, MinPriority: "emergency"},
			body: review("CREATE", "default", "", "", privilegedPod, false), allowed: true, outcome: OutcomeAllowed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, s, reg := newHandler(t, Config{Mode: tc.mode, Select: tc.sel}, rs)
			_, resp := post(t, h, tc.body)
			if resp == nil {
				t.Fatal("no AdmissionReview answer")
			}
			if resp.Allowed != tc.allowed {
				t.Fatalf("allowed = %v, want %v (%+v)", resp.Allowed, tc.allowed, resp.Result)
			}
			if !tc.allowed {
				if resp.Result == nil || resp.Result.Code != 403 || resp.Result.Reason != "Forbidden" {
					t.Fatalf("refusal status %+v: want 403 Forbidden", resp.Result)
				}
				for _, m := range tc.msg {
					if !strings.Contains(resp.Result.Message, m) {
						t.Errorf("message %q lacks %q", resp.Result.Message, m)
					}
				}
			}
			if len(tc.warn) > 0 && (len(resp.Warnings) != 1 || !strings.Contains(resp.Warnings[0], tc.warn[0])) {
				t.Errorf("warnings %q, want one containing %q", resp.Warnings, tc.warn[0])
			}
			if len(tc.warn) == 0 && len(resp.Warnings) > 0 {
				t.Errorf("unexpected warnings %q", resp.Warnings)
			}
			dry := "false"
			if tc.dry {
				dry = "true"
			}
			if n := counter(t, h.requests.WithLabelValues(tc.outcome, dry)); n != 1 {
				t.Errorf("admission_requests_total{decision=%s,dry_run=%s} = %v, want 1", tc.outcome, dry, n)
			}
			if _, err := reg.Gather(); err != nil {
				t.Fatal(err)
			}
			if tc.alertKey == "" {
				if len(s.alerts) != 0 {
					t.Fatalf("alerts %v, want none", s.alerts)
				}
				return
			}
			if len(s.alerts) != 1 {
				t.Fatalf("%d alerts, want 1", len(s.alerts))
			}
			js := string(s.alerts[0].JSON())
			for _, want := range []string{`"admission.decision":"` + tc.alertKey + `"`, `"admission.dry_run":` + dry} {
				if !strings.Contains(js, want) {
					t.Errorf("alert %s lacks %s", js, want)
				}
			}
			if !strings.Contains(s.alerts[0].Output, "admission="+tc.alertKey) {
				t.Errorf("alert text %q lacks the decision", s.alerts[0].Output)
			}
		})
	}
}

func TestFailures(t *testing.T) {
	rs := tunedRules(t)
	sel := Selector{Rules: []string{"Privileged Container Started in Pod"}}
	for _, tc := range []struct {
		name    string
		policy  FailurePolicy
		rs      *engine.Ruleset
		body    string
		method  string
		code    int    // HTTP status
		allowed bool   // when answered with a review
		text    string // in the body, message or warning
	}{
		{name: "not JSON", body: "{", code: 400, text: "invalid AdmissionReview: not JSON"},
		{name: "v1beta1", body: strings.Replace(review("CREATE", "default", "", "", plainPod, false), "admission.k8s.io/v1", "admission.k8s.io/v1beta1", 1),
			code: 400, text: "want admission.k8s.io/v1 AdmissionReview"},
		{name: "no request", body: `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}`, code: 400, text: "no request"},
		{name: "no uid", body: strings.Replace(review("CREATE", "default", "", "", plainPod, false), `"uid":"7f0c-uid",`, "", 1), code: 400, text: "request.uid is empty"},
		{name: "GET", method: http.MethodGet, code: 405, text: "method not allowed"},
		{name: "too large", body: review("CREATE", "default", "", "", `{"kind":"Pod","data":"`+strings.Repeat("x", 2<<20)+`"}`, false), code: 413, text: "admission.max_body_size"},
		{name: "unknown operation, Ignore", policy: Ignore, body: review("FROB", "default", "", "", plainPod, false), code: 200, allowed: true, text: `unknown operation "FROB"`},
		{name: "unknown operation, Fail", policy: Fail, body: review("FROB", "default", "", "", plainPod, false), code: 200, allowed: false, text: `unknown operation "FROB"`},
		{name: "no ruleset yet, Ignore", policy: Ignore, body: review("CREATE", "default", "", "", privilegedPod, false), code: 200, allowed: true, text: "no ruleset loaded yet"},
		{name: "no ruleset yet, Fail", policy: Fail, body: review("CREATE", "default", "", "", privilegedPod, false), code: 200, allowed: false, text: "no ruleset loaded yet"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			use := rs
			if strings.HasPrefix(tc.name, "no ruleset") {
				use = nil
			}
			h, _, _ := newHandler(t, Config{Mode: ModeDeny, Select: sel, FailurePolicy: tc.policy}, use)
			rec := httptest.NewRecorder()
			m := tc.method
			if m == "" {
				m = http.MethodPost
			}
			h.ServeHTTP(rec, httptest.NewRequest(m, "/k8s-admission", strings.NewReader(tc.body)))
			if rec.Code != tc.code {
				t.Fatalf("HTTP %d, want %d: %s", rec.Code, tc.code, rec.Body)
			}
			if tc.code != 200 {
				if !strings.Contains(rec.Body.String(), tc.text) {
					t.Fatalf("body %q lacks %q", rec.Body, tc.text)
				}
				return
			}
			var out admissionv1.AdmissionReview
			if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
				t.Fatal(err)
			}
			r := out.Response
			if r.Allowed != tc.allowed {
				t.Fatalf("allowed = %v, want %v", r.Allowed, tc.allowed)
			}
			got := strings.Join(r.Warnings, "|")
			if !r.Allowed {
				got = r.Result.Message
				if r.Result.Code != 400 {
					t.Errorf("code %d, want 400", r.Result.Code)
				}
			}
			if !strings.Contains(got, tc.text) {
				t.Errorf("%q lacks %q", got, tc.text)
			}
		})
	}
}

// TestInflightBound: with every slot taken the answer is 429 once admission.wait has passed (0
// here: at once).
func TestInflightBound(t *testing.T) {
	h, _, _ := newHandler(t, Config{Mode: ModeDeny, Select: Selector{MinPriority: "debug"}, MaxInflight: 1}, tunedRules(t))
	h.sem <- struct{}{} // the only slot
	rec, _ := post(t, h, review("CREATE", "default", "", "", plainPod, false))
	if rec.Code != http.StatusTooManyRequests {
		t.Fatalf("HTTP %d, want 429", rec.Code)
	}
	<-h.sem
	if rec, _ := post(t, h, review("CREATE", "default", "", "", plainPod, false)); rec.Code != 200 {
		t.Fatalf("HTTP %d after the slot was freed", rec.Code)
	}
}

// TestEvents checks the mapping's shapes against what kube-apiserver logs.
func TestEvents(t *testing.T) {
	now := time.Date(2026, 11, 22, 12, 40, 38, 427552000, time.UTC)
	for _, tc := range []struct {
		name   string
		body   string
		stages []string
		want   []string // substrings of every event
	}{
		{"create", review("CREATE", "default", "", "", plainPod, true), []string{StageResponseComplete},
			[]string{`"verb":"create"`, `"requestURI":"/api/v1/namespaces/default/pods"`, `"objectRef":{"resource":"pods","namespace":"default","apiVersion":"v1"}`,
				`"responseStatus":{"metadata":{},"code":201}`, `"requestObject":{"kind":"Pod"`, `"responseObject":{"kind":"Pod"`, `"stageTimestamp":"2026-11-22T12:40:38.427552Z"`,
				`"user":{"username":"alice","groups":["devs","system:authenticated"]}`, `"authorization.k8s.io/decision":"allow"`}},
		{"exec", review("CONNECT", "default", "web-0", "exec", `{"kind":"PodExecOptions","apiVersion":"v1","stdin":true,"stdout":true,"tty":false,"container":"c","command":["sh","-c","id"]}`, false),
			[]string{StageResponseStarted, StageResponseComplete},
			[]string{`"verb":"create"`, `"requestURI":"/api/v1/namespaces/default/pods/web-0/exec?command=sh\u0026command=-c\u0026command=id\u0026container=c\u0026stdin=true\u0026stdout=true"`,
				`"subresource":"exec"`, `"code":101`}},
		{"update", review("UPDATE", "default", "ok", "", plainPod, false), []string{StageResponseComplete},
			[]string{`"verb":"update"`, `"requestURI":"/api/v1/namespaces/default/pods/ok"`, `"code":200`}},
		{"delete", review("DELETE", "default", "ok", "", "", false), []string{StageResponseComplete},
			[]string{`"verb":"delete"`, `"requestURI":"/api/v1/namespaces/default/pods/ok"`, `"code":200`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := ParseReview([]byte(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			evs, err := Events(req, now)
			if err != nil {
				t.Fatal(err)
			}
			if len(evs) != len(tc.stages) {
				t.Fatalf("%d events, want %d", len(evs), len(tc.stages))
			}
			for i, e := range evs {
				if e.Stage != tc.stages[i] || !bytes.Contains(e.JSON, []byte(`"stage":"`+tc.stages[i]+`"`)) {
					t.Errorf("event %d stage %s: %s", i, e.Stage, e.JSON)
				}
				for _, w := range tc.want {
					if !bytes.Contains(e.JSON, []byte(w)) {
						t.Errorf("event %d lacks %s:\n%s", i, w, e.JSON)
					}
				}
			}
		})
	}
	// Cluster-scoped and grouped resources, namespaces themselves, proxy paths.
	for _, tc := range []struct {
		group, version, resource, ns, name, sub string
		withName                                bool
		path, want                              string
	}{
		{"rbac.authorization.k8s.io", "v1", "clusterroles", "", "edit", "", true, "", "/apis/rbac.authorization.k8s.io/v1/clusterroles/edit"},
		{"apps", "v1", "deployments", "ns", "d", "scale", true, "", "/apis/apps/v1/namespaces/ns/deployments/d/scale"},
		{"", "v1", "namespaces", "foo", "foo", "", true, "", "/api/v1/namespaces/foo"},
		{"", "v1", "namespaces", "", "foo", "", false, "", "/api/v1/namespaces"},
		{"", "v1", "nodes", "", "n1", "proxy", true, "/exec/ns/p/c", "/api/v1/nodes/n1/proxy/exec/ns/p/c"},
	} {
		if got := requestURI(tc.group, tc.version, tc.resource, tc.ns, tc.name, tc.sub, tc.withName, tc.path, nil); got != tc.want {
			t.Errorf("requestURI(%s/%s) = %s, want %s", tc.resource, tc.name, got, tc.want)
		}
	}
}

func counter(t testing.TB, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

func TestWaitBudget(t *testing.T) {
	for _, tc := range []struct {
		url  string
		wait time.Duration
		want time.Duration
	}{
		{"/k8s-admission", 2 * time.Second, 2 * time.Second},
		{"/k8s-admission?timeout=5s", 2 * time.Second, 2 * time.Second},
		{"/k8s-admission?timeout=2s", 2 * time.Second, time.Second},
		{"/k8s-admission?timeout=bogus", time.Second, time.Second},
	} {
		if got := waitBudget(tc.wait, httptest.NewRequest(http.MethodPost, tc.url, nil)); got != tc.want {
			t.Errorf("%s wait %s: %s, want %s", tc.url, tc.wait, got, tc.want)
		}
	}
}
