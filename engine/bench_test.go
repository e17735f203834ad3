package engine_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"testing"

	"github.com/falco-k8s/falco-k8s/engine"
	"github.com/falco-k8s/falco-k8s/engine/k8saudit"

	"github.com/falco-k8s/falco-k8s/internal/testshared"
)

// upstreamRules loads the upstream k8s audit ruleset from ../shared, or skips (fails in CI).
func upstreamRules(tb testing.TB) *engine.Ruleset {
	tb.Helper()
	path := testshared.Path(tb, "testdata", "upstream", "k8s_audit_rules.latest.yaml")
	content, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	rs, _, err := engine.Load([]engine.File{{Name: path, Content: content}}, engine.DefaultOptions())
	if err != nil {
		tb.Fatal(err)
	}
	return rs
}

// auditMix builds a batch of audit events shaped like a busy cluster's stream with the upstream
// audit policy: mostly get/list/watch by controllers and nodes (which match nothing), plus pod
// and configmap creates, deletes, exec, RBAC changes and secret reads.
func auditMix(n int) []byte {
	var b bytes.Buffer
	b.WriteString(`{"kind":"EventList","apiVersion":"audit.k8s.io/v1","metadata":{},"items":[`)
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		ts := fmt.Sprintf("2026-11-22T10:%02d:%02d.%06dZ", (i/60)%60, i%60, i)
		id := fmt.Sprintf("%08x-1111-4222-8333-%012x", i, i)
		switch k := i % 100; {
		case k < 80: // get/list/watch by system components
			verbs := []string{"get", "list", "watch"}
			res := []string{"pods", "nodes", "endpoints", "configmaps", "leases", "services"}[i%6]
			user := []string{"system:kube-scheduler", "system:node:worker-1", "system:serviceaccount:kube-system:coredns", "system:kube-controller-manager"}[i%4]
			fmt.Fprintf(&b, `{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"%s","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/kube-system/%s?resourceVersion=0","verb":"%s","user":{"username":"%s","groups":["system:authenticated"]},"sourceIPs":["10.0.0.%d"],"userAgent":"kube-scheduler/v1.31.4 (linux/amd64) kubernetes/a78aa47","objectRef":{"resource":"%s","namespace":"kube-system","apiVersion":"v1"},"responseStatus":{"metadata":{},"code":200},"requestReceivedTimestamp":"%s","stageTimestamp":"%s","annotations":{"authorization.k8s.io/decision":"allow","authorization.k8s.io/reason":"RBAC: allowed by ClusterRoleBinding \"system:kube-scheduler\""}}`,
				id, res, verbs[i%3], user, i%250, res, ts, ts)
		case k < 88: // pod creates, some privileged or with host mounts
			priv := "false"
			if k == 80 {
				priv = "true"
			}
			hostPath := "/var/log"
			if k == 81 {
				hostPath = "/etc"
			}
			fmt.Fprintf(&b, `{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"RequestResponse","auditID":"%s","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/team-a/pods","verb":"create","user":{"username":"system:serviceaccount:kube-system:replicaset-controller","groups":["system:serviceaccounts","system:authenticated"]},"sourceIPs":["10.0.0.2"],"userAgent":"kube-controller-manager/v1.31.4","objectRef":{"resource":"pods","namespace":"team-a","name":"web-%d","apiVersion":"v1"},"responseStatus":{"metadata":{},"code":201},"requestObject":{"kind":"Pod","apiVersion":"v1","metadata":{"name":"web-%d","namespace":"team-a","labels":{"app":"web"}},"spec":{"volumes":[{"name":"logs","hostPath":{"path":"%s","type":""}},{"name":"kube-api-access","projected":{"sources":[{"serviceAccountToken":{"expirationSeconds":3607,"path":"token"}}],"defaultMode":420}}],"containers":[{"name":"web","image":"registry.example.com/web:1.4.2","ports":[{"containerPort":8080,"protocol":"TCP"}],"resources":{},"volumeMounts":[{"name":"logs","mountPath":"/logs"}],"terminationMessagePath":"/dev/termination-log","imagePullPolicy":"IfNotPresent","securityContext":{"privileged":%s}},{"name":"sidecar","image":"busybox:1.36","command":["sh","-c","tail -f /logs/app.log"],"resources":{}}],"restartPolicy":"Always","dnsPolicy":"ClusterFirst","serviceAccountName":"default","securityContext":{},"schedulerName":"default-scheduler"},"status":{}},"responseObject":{"kind":"Pod","apiVersion":"v1","metadata":{"name":"web-%d","namespace":"team-a","uid":"%s"}},"requestReceivedTimestamp":"%s","stageTimestamp":"%s","annotations":{"authorization.k8s.io/decision":"allow","authorization.k8s.io/reason":""}}`,
				id, i, i, hostPath, priv, i, id, ts, ts)
		case k < 92: // configmap creates and deletes
			verb := "create"
			if k >= 90 {
				verb = "delete"
			}
			fmt.Fprintf(&b, `{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"RequestResponse","auditID":"%s","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/team-a/configmaps","verb":"%s","user":{"username":"alice@example.com","groups":["dev","system:authenticated"]},"sourceIPs":["192.0.2.10"],"userAgent":"kubectl/v1.31.4","objectRef":{"resource":"configmaps","namespace":"team-a","name":"app-config","apiVersion":"v1"},"responseStatus":{"metadata":{},"code":201},"requestObject":{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"app-config"},"data":{"db_password":"hunter2","mode":"prod"}},"requestReceivedTimestamp":"%s","stageTimestamp":"%s","annotations":{"authorization.k8s.io/decision":"allow","authorization.k8s.io/reason":""}}`,
				id, verb, ts, ts)
		case k < 94: // exec into a pod
			fmt.Fprintf(&b, `{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Request","auditID":"%s","stage":"ResponseStarted","requestURI":"/api/v1/namespaces/team-a/pods/web-1/exec?command=sh&container=web&stdin=true&tty=true","verb":"create","user":{"username":"alice@example.com","groups":["dev","system:authenticated"]},"sourceIPs":["192.0.2.10"],"userAgent":"kubectl/v1.31.4","objectRef":{"resource":"pods","namespace":"team-a","name":"web-1","apiVersion":"v1","subresource":"exec"},"responseStatus":{"metadata":{},"code":101},"requestReceivedTimestamp":"%s","stageTimestamp":"%s","annotations":{"authorization.k8s.io/decision":"allow","authorization.k8s.io/reason":""}}`,
				id, ts, ts)
		case k < 97: // RBAC: a wildcard cluster role and a cluster-admin binding
			fmt.Fprintf(&b, `{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"RequestResponse","auditID":"%s","stage":"ResponseComplete","requestURI":"/apis/rbac.authorization.k8s.io/v1/clusterrolebindings","verb":"create","user":{"username":"bob@example.com","groups":["ops","system:authenticated"]},"sourceIPs":["192.0.2.11"],"userAgent":"kubectl/v1.31.4","objectRef":{"resource":"clusterrolebindings","name":"bob-admin","apiGroup":"rbac.authorization.k8s.io","apiVersion":"v1"},"responseStatus":{"metadata":{},"code":201},"requestObject":{"kind":"ClusterRoleBinding","apiVersion":"rbac.authorization.k8s.io/v1","metadata":{"name":"bob-admin"},"subjects":[{"kind":"User","apiGroup":"rbac.authorization.k8s.io","name":"bob@example.com"}],"roleRef":{"apiGroup":"rbac.authorization.k8s.io","kind":"ClusterRole","name":"cluster-admin"}},"requestReceivedTimestamp":"%s","stageTimestamp":"%s","annotations":{"authorization.k8s.io/decision":"allow","authorization.k8s.io/reason":""}}`,
				id, ts, ts)
		default: // secret reads
			fmt.Fprintf(&b, `{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"%s","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/team-a/secrets/db","verb":"get","user":{"username":"alice@example.com","groups":["dev","system:authenticated"]},"sourceIPs":["192.0.2.10"],"userAgent":"kubectl/v1.31.4","objectRef":{"resource":"secrets","namespace":"team-a","name":"db","apiVersion":"v1"},"responseStatus":{"metadata":{},"code":200},"requestReceivedTimestamp":"%s","stageTimestamp":"%s","annotations":{"authorization.k8s.io/decision":"allow","authorization.k8s.io/reason":""}}`,
				id, ts, ts)
		}
	}
	b.WriteString(`]}`)
	return b.Bytes()
}

const batchSize = 400

// BenchmarkEngine measures the whole hot path: split the batch, parse each event once, evaluate
// the upstream k8s ruleset (Falco's first-match semantics) and render the rare alerts.
func BenchmarkEngine(b *testing.B) {
	rs := upstreamRules(b)
	payload := auditMix(batchSize)
	var dec k8saudit.Decoder
	ev := rs.NewEvaluator()
	alerts := 0
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		_, err := dec.Decode(payload, func(e *k8saudit.Event) error {
			ev.Match(e, false, func(r *engine.Rule) {
				alerts++
				_ = ev.Alert(r, "bench")
			})
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	events := float64(b.N) * batchSize
	b.ReportMetric(events/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(alerts)/float64(b.N), "alerts/batch")
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/events, "allocs/event")
}

// BenchmarkEngineEvalOnly isolates rule evaluation from decoding, and reports allocations per
// event on the path that produces no alert (the common case).
func BenchmarkEngineEvalOnly(b *testing.B) {
	rs := upstreamRules(b)
	payload := auditMix(batchSize)
	var events []*k8saudit.Event
	var split struct {
		Items []json.RawMessage `json:"items"`
	}
	if err := json.Unmarshal(payload, &split); err != nil {
		b.Fatal(err)
	}
	for _, it := range split.Items {
		e, err := k8saudit.NewEvent(it)
		if err != nil {
			b.Fatal(err)
		}
		events = append(events, e)
	}
	ev := rs.NewEvaluator()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, e := range events {
			ev.Match(e, false, nil)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)*batchSize/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(testing.AllocsPerRun(3, func() {
		for _, e := range events {
			ev.Match(e, false, nil)
		}
	}))/batchSize, "allocs/event")
}

// auditEvent is audit.k8s.io/v1 Event as a naive consumer would decode it.
type auditEvent struct {
	Kind       string `json:"kind"`
	APIVersion string `json:"apiVersion"`
	Level      string `json:"level"`
	AuditID    string `json:"auditID"`
	Stage      string `json:"stage"`
	RequestURI string `json:"requestURI"`
	Verb       string `json:"verb"`
	User       struct {
		Username string   `json:"username"`
		Groups   []string `json:"groups"`
	} `json:"user"`
	ImpersonatedUser *struct {
		Username string `json:"username"`
	} `json:"impersonatedUser"`
	SourceIPs []string `json:"sourceIPs"`
	UserAgent string   `json:"userAgent"`
	ObjectRef *struct {
		Resource    string `json:"resource"`
		Namespace   string `json:"namespace"`
		Name        string `json:"name"`
		APIGroup    string `json:"apiGroup"`
		APIVersion  string `json:"apiVersion"`
		Subresource string `json:"subresource"`
	} `json:"objectRef"`
	ResponseStatus           map[string]any    `json:"responseStatus"`
	RequestObject            map[string]any    `json:"requestObject"`
	ResponseObject           map[string]any    `json:"responseObject"`
	RequestReceivedTimestamp string            `json:"requestReceivedTimestamp"`
	StageTimestamp           string            `json:"stageTimestamp"`
	Annotations              map[string]string `json:"annotations"`
}

// BenchmarkDecodeOnlyEncodingJSON is the baseline: only decoding the same batch with
// encoding/json into typed audit events, no rules at all.
func BenchmarkDecodeOnlyEncodingJSON(b *testing.B) {
	payload := auditMix(batchSize)
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var list struct {
			Items []auditEvent `json:"items"`
		}
		if err := json.Unmarshal(payload, &list); err != nil {
			b.Fatal(err)
		}
		if len(list.Items) != batchSize {
			b.Fatalf("decoded %d events", len(list.Items))
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)*batchSize/b.Elapsed().Seconds(), "events/s")
}

// TestAuditMixAlerts keeps the benchmark honest: the mix must exercise the rules it claims to.
func TestAuditMixAlerts(t *testing.T) {
	rs := upstreamRules(t)
	var dec k8saudit.Decoder
	ev := rs.NewEvaluator()
	fired := map[string]int{}
	n, err := dec.Decode(auditMix(batchSize), func(e *k8saudit.Event) error {
		ev.Match(e, true, func(r *engine.Rule) { fired[r.Name]++ })
		return nil
	})
	if err != nil || n != batchSize {
		t.Fatalf("decoded %d events, err %v", n, err)
	}
	for _, want := range []string{"Create Privileged Pod", "Create Sensitive Mount Pod", "Attach/Exec Pod", "Attach to cluster-admin Role"} {
		if fired[want] == 0 {
			t.Errorf("rule %q never fired on the mix; fired: %v", want, fired)
		}
	}
}
