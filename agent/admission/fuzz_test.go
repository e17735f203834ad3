package admission

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/falco-k8s/falco-k8s/engine"
	"github.com/falco-k8s/falco-k8s/engine/k8saudit"
)

// FuzzParseReview: any body either parses into a request whose audit events are valid JSON
// the engine reads and the admission path evaluates, or fails with ErrInvalidReview; nothing
// panics.
func FuzzParseReview(f *testing.F) {
	f.Add(review("CREATE", "default", "", "", privilegedPod, false))
	f.Add(review("CONNECT", "default", "web-0", "exec", `{"kind":"PodExecOptions","command":["sh"],"stdin":true}`, false))
	f.Add(review("CONNECT", "", "n1", "proxy", `{"kind":"NodeProxyOptions","path":"/exec/a/b/c"}`, false))
	f.Add(review("DELETE", "default", "x", "", "", true))
	f.Add(review("UPDATE", "default", "x", "", `[1,2]`, false))
	f.Add(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","operation":"CREATE","resource":{"resource":"pods"},"object":null}}`)
	f.Add(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}`)
	f.Add(`[]`)
	rs := tunedRules(f)
	f.Fuzz(func(t *testing.T, body string) {
		req, err := ParseReview([]byte(body))
		if err != nil {
			if !errors.Is(err, ErrInvalidReview) {
				t.Fatalf("error %v does not wrap ErrInvalidReview", err)
			}
			return
		}
		evs, err := Events(req, time.Unix(0, 0))
		if err != nil {
			if !errors.Is(err, ErrInvalidReview) {
				t.Fatalf("error %v does not wrap ErrInvalidReview", err)
			}
			return
		}
		for _, e := range evs {
			if !json.Valid(e.JSON) {
				t.Fatalf("invalid event JSON %s", e.JSON)
			}
			if _, err := k8saudit.NewEvent(e.JSON); err != nil {
				t.Fatalf("engine cannot read %s: %v", e.JSON, err)
			}
		}
		if err := Match(rs.NewEvaluator(), evs, func(string, *engine.Rule) {}); err != nil {
			t.Fatalf("the admission path cannot evaluate %s: %v", evs[0].JSON, err)
		}
		MarshalReview(Response{UID: string(req.UID), Message: body, Warnings: []string{body}})
	})
}
