package agent

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/falco-k8s/falco-k8s/engine"
)

// The metrics listener (observability.metrics_listen) is for a Prometheus on the pod network:
// /metrics and the probes only, never the endpoints that reveal alerts or change state.
func TestMetricsListenerServesOnlyMetricsAndProbes(t *testing.T) {
	ta := startAgent(t, []string{"observability.metrics_listen=127.0.0.1:0"}, Options{})
	base := "http://" + ta.MetricsAddr().String()
	post(t, ta.url, batch("m", 0, 3))
	waitFor(t, func() bool { return ta.Status().Events.Evaluated == 3 })
	for _, tc := range []struct {
		method, path string
		code         int
	}{
		{"GET", "/metrics", 200}, {"GET", "/healthz", 200}, {"GET", "/readyz", 200},
		{"GET", "/status", 404}, {"GET", "/alerts", 404}, {"GET", "/rules", 404},
		{"POST", "/reload", 404}, {"POST", "/sync", 404}, {"POST", "/k8s-audit", 404},
	} {
		req, _ := http.NewRequest(tc.method, base+tc.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.code {
			t.Errorf("%s %s = %d, want %d", tc.method, tc.path, resp.StatusCode, tc.code)
		}
		if tc.path == "/metrics" && !strings.Contains(string(body), "falco_k8s_events_evaluated_total 3") {
			t.Errorf("metrics lack the evaluated counter")
		}
	}
}

// Every alert carries outputs.output_fields, and every HTTP endpoint (url and extra_urls) gets
// every alert.
func TestOutputFieldsAndExtraHTTPOutputs(t *testing.T) {
	var mu sync.Mutex
	got := map[string][]map[string]any{}
	sink := func(name string) *httptest.Server {
		return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			var a map[string]any
			json.NewDecoder(r.Body).Decode(&a) //nolint:errcheck // checked below
			mu.Lock()
			got[name] = append(got[name], a)
			mu.Unlock()
		}))
	}
	s1, s2 := sink("one"), sink("two")
	defer s1.Close()
	defer s2.Close()
	ta := startAgent(t, []string{"outputs.http.url=" + s1.URL, "outputs.http.extra_urls=[" + s2.URL + "]",
		"outputs.output_fields={juju_model: audit, juju_unit: falco-k8s/0, ka.auditid: ignored}"}, Options{})
	post(t, ta.url, batch("f", 0, 2))
	waitFor(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(got["one"]) == 2 && len(got["two"]) == 2 })
	for name, alerts := range got {
		for _, a := range alerts {
			f, _ := a["output_fields"].(map[string]any)
			if f["juju_model"] != "audit" || f["juju_unit"] != "falco-k8s/0" || !strings.HasPrefix(f["ka.auditid"].(string), "f-") {
				t.Errorf("%s: output_fields %v", name, f)
			}
		}
	}
	names := map[string]bool{}
	for _, o := range ta.Status().Outputs {
		names[o.Name] = true
	}
	if !names["http"] || !names["http-2"] {
		t.Errorf("outputs %v", names)
	}
}

func TestMergeFields(t *testing.T) {
	f := func(keys ...string) []engine.AlertField {
		var out []engine.AlertField
		for _, k := range keys {
			out = append(out, engine.AlertField{Key: k, Value: k})
		}
		return out
	}
	for _, tc := range []struct{ own, extra, want []string }{
		{[]string{"a", "c"}, []string{"b", "d"}, []string{"a", "b", "c", "d"}},
		{nil, []string{"x"}, []string{"x"}},
		{[]string{"k"}, []string{"k", "z"}, []string{"k", "z"}},
	} {
		got := mergeFields(f(tc.own...), f(tc.extra...))
		var keys []string
		for _, g := range got {
			keys = append(keys, g.Key)
		}
		if strings.Join(keys, ",") != strings.Join(tc.want, ",") {
			t.Errorf("merge %v %v = %v", tc.own, tc.extra, keys)
		}
	}
}
