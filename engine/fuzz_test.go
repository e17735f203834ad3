package engine_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/falco-k8s/falco-k8s/engine"
	"github.com/falco-k8s/falco-k8s/engine/k8saudit"
)

// fuzzEvents are audit events the fuzzed rules are evaluated on: a privileged pod create with
// containers, volumes and labels (list fields, indexes), and an exec with URI parameters.
var fuzzEvents = []string{
	`{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"RequestResponse","auditID":"a1","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/team-a/pods","verb":"create","user":{"username":"alice","groups":["dev","system:authenticated"]},"impersonatedUser":{"username":"bob"},"sourceIPs":["192.0.2.10"],"userAgent":"kubectl/v1.31.4","objectRef":{"resource":"pods","namespace":"team-a","name":"web","apiVersion":"v1"},"responseStatus":{"metadata":{},"code":201},"requestObject":{"kind":"Pod","metadata":{"name":"web","labels":{"app":"web"}},"spec":{"hostNetwork":true,"securityContext":{"runAsUser":0},"volumes":[{"name":"root","hostPath":{"path":"/"}}],"containers":[{"name":"web","image":"nginx:1.27","securityContext":{"privileged":true,"capabilities":{"add":["NET_ADMIN"]}},"ports":[{"containerPort":80,"hostPort":80}]}]}},"responseObject":{"kind":"Pod"},"requestReceivedTimestamp":"2026-11-22T10:00:00.000000Z","stageTimestamp":"2026-11-22T10:00:00.100000Z","annotations":{"authorization.k8s.io/decision":"allow","authorization.k8s.io/reason":"RBAC"}}`,
	`{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Request","auditID":"a2","stage":"ResponseStarted","requestURI":"/api/v1/namespaces/team-a/pods/web/exec?command=sh&command=-c&container=web","verb":"create","user":{"username":"system:serviceaccount:team-a:default"},"sourceIPs":["10.0.0.1"],"objectRef":{"resource":"pods","namespace":"team-a","name":"web","subresource":"exec"},"responseStatus":{"code":101},"stageTimestamp":"2026-11-22T10:00:01Z"}`,
}

// fuzzSeedFiles are the loader suite and the shipped rules.
func fuzzSeedFiles(tb testing.TB) []string {
	var files []string
	for _, pattern := range []string{filepath.Join("testdata", "loader", "*"), filepath.Join("..", "rules", "*.yaml")} {
		m, err := filepath.Glob(pattern)
		if err != nil {
			tb.Fatal(err)
		}
		files = append(files, m...)
	}
	if len(files) < 45 {
		tb.Fatalf("only %d seed files", len(files))
	}
	return files
}

func FuzzLoad(f *testing.F) {
	for _, p := range fuzzSeedFiles(f) {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	var events []*k8saudit.Event
	for _, s := range fuzzEvents {
		ev, err := k8saudit.NewEvent([]byte(s))
		if err != nil {
			f.Fatal(err)
		}
		events = append(events, ev)
	}
	const name = "fuzz.yaml"
	f.Fuzz(func(t *testing.T, content []byte) {
		rs, results, err := engine.Load([]engine.File{{Name: name, Content: content}}, engine.DefaultOptions())
		if len(results) != 1 {
			t.Fatalf("%d results for one file", len(results))
		}
		res := results[0]
		if res.Successful != (len(res.Errors) == 0) || res.Successful != (err == nil) || (err == nil) != (rs != nil) {
			t.Fatalf("inconsistent result: successful=%v errors=%d err=%v ruleset=%v", res.Successful, len(res.Errors), err, rs != nil)
		}
		for _, d := range append(append([]engine.Diagnostic{}, res.Errors...), res.Warnings...) {
			if d.Code == "" || d.Message == "" || len(d.Locations) == 0 {
				t.Fatalf("incomplete diagnostic %+v", d)
			}
			if (d.Severity == engine.SeverityError) != (d.Code[:9] == "LOAD_ERR_") {
				t.Fatalf("severity %v for code %s", d.Severity, d.Code)
			}
			for _, l := range d.Locations {
				// File-level locations carry a YAML mark: 0-based, so line >= 1 in editor form.
				if l.Position.Name == name && (l.Position.Line < 0 || l.Position.Column < 0) {
					t.Fatalf("location %+v of %s has no position", l, d)
				}
			}
			_ = d.String()
			_ = d.FalcoVerbose()
		}
		if rs == nil {
			return
		}
		ev := rs.NewEvaluator()
		for _, e := range events {
			ev.Match(e, true, func(r *engine.Rule) {
				a := ev.Alert(r, "fuzz-host")
				_ = a.JSON()
			})
		}
	})
}
