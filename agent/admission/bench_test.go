package admission

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/falco-k8s/falco-k8s/engine"
)

// BenchmarkServeReview is the agent's own cost of one AdmissionReview (parse, convert, evaluate
// every active rule, answer), without network or TLS, with the upstream ruleset when present,
// rules of priority warning and above enforcing in deny mode. Reports ns and allocations per
// review over a mix of a denied privileged pod, a plain pod and a pods/exec CONNECT.
func BenchmarkServeReview(b *testing.B) {
	rs := tunedRules(b)
	if p, err := filepath.Abs(filepath.Join("..", "..", "..", "shared", "testdata", "upstream", "k8s_audit_rules.latest.yaml")); err == nil {
		if c, err := os.ReadFile(p); err == nil {
			if up, _, err := engine.Load([]engine.File{{Name: "k8s_audit_rules.yaml", Content: c}}, engine.DefaultOptions()); err == nil {
				rs = up
				b.Log("ruleset: upstream")
			}
		}
	}
	h, _, _ := newHandler(b, Config{Mode: ModeDeny, Select: Selector{MinPriority: "warning"}, MaxInflight: 64}, rs)
	bodies := []string{
		review("CREATE", "apps", "evil", "", privilegedPod, false),
		review("CREATE", "apps", "ok", "", plainPod, false),
		review("CONNECT", "apps", "web-0", "exec", `{"kind":"PodExecOptions","apiVersion":"v1","command":["sh"],"container":"c","stdin":true,"tty":true}`, false),
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			rec := httptest.NewRecorder()
			req := httptest.NewRequest(http.MethodPost, "/k8s-admission", strings.NewReader(bodies[i%len(bodies)]))
			h.ServeHTTP(rec, req)
			if rec.Code != 200 {
				b.Fatalf("HTTP %d", rec.Code)
			}
			i++
		}
	})
}
