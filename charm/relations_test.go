package charm

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"strings"
	"testing"

	"github.com/ulikunitz/xz"
	"gopkg.in/yaml.v3"
)

func TestParseEndpointURL(t *testing.T) {
	for _, tc := range []struct {
		raw, want string
		ok        bool
	}{
		{"http://10.0.0.1:2801", "http://10.0.0.1:2801", true},
		{`"https://sidekick:2801/"`, "https://sidekick:2801/", true},
		{" http://a ", "http://a", true},
		{"ftp://a", "", false},
		{"not a url", "", false},
		{`"unterminated`, "", false},
		{"http://", "", false},
	} {
		got, err := parseEndpointURL(tc.raw)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("parseEndpointURL(%q) = %q, %v", tc.raw, got, err)
		}
		if err != nil && strings.Contains(err.Error(), tc.raw) && tc.raw != "" {
			t.Errorf("error quotes the URL: %v", err)
		}
	}
}

func FuzzParseEndpointURL(f *testing.F) {
	for _, s := range []string{"http://a:1/", `"http://a"`, `"`, "", "ftp://x", "http://user:pw@h/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		u, err := parseEndpointURL(raw)
		if err == nil && checkURL(u) != nil {
			t.Fatalf("accepted %q as %q", raw, u)
		}
	})
}

func TestMetricsPortFor(t *testing.T) {
	for _, w := range []int{1, 9765, 65533, 65534, 65535} {
		m, s := metricsPortFor(w), statusPortFor(w)
		if m < 1 || m > 65535 || m == w || m == s {
			t.Errorf("webhook %d: metrics %d status %d", w, m, s)
		}
	}
}

func TestLogTargetsLayer(t *testing.T) {
	topo := Topology{Model: "m", ModelUUID: "u", App: "a", Unit: "a/0", Charm: CharmName}
	layer, known, err := logTargetsLayer([]LokiTarget{{"loki-loki-0", "http://l0/push"}}, topo, nil)
	if err != nil {
		t.Fatal(err)
	}
	var l struct {
		Targets map[string]struct {
			Type, Location string
			Services       []string
			Labels         map[string]string
		} `yaml:"log-targets"`
	}
	if err := yaml.Unmarshal(layer, &l); err != nil {
		t.Fatal(err)
	}
	tg := l.Targets["loki-loki-0"]
	if tg.Type != "loki" || tg.Location != "http://l0/push" || tg.Services[0] != ServiceName || tg.Labels["juju_unit"] != "a/0" {
		t.Fatalf("%+v", l)
	}
	// The unit departs: its target stays, disabled (Pebble cannot delete a combined entry).
	layer, _, err = logTargetsLayer(nil, topo, known)
	if err != nil {
		t.Fatal(err)
	}
	l.Targets = nil
	if err := yaml.Unmarshal(layer, &l); err != nil {
		t.Fatal(err)
	}
	if tg := l.Targets["loki-loki-0"]; tg.Services[0] != "-all" || tg.Location != "http://l0/push" {
		t.Fatalf("%+v", l)
	}
	if layer, _, _ := logTargetsLayer(nil, topo, nil); layer != nil {
		t.Errorf("layer without any target: %s", layer)
	}
}

func TestDashboardAppDataRoundTrip(t *testing.T) {
	topo := Topology{Model: "m", ModelUUID: "u", App: "a", Unit: "a/0", Charm: CharmName}
	data, err := DashboardAppData(topo)
	if err != nil {
		t.Fatal(err)
	}
	var bag struct {
		Templates map[string]struct {
			Charm          string            `json:"charm"`
			Content        string            `json:"content"`
			JujuTopology   map[string]string `json:"juju_topology"`
			InjectDropdown bool              `json:"inject_dropdowns"`
		} `json:"templates"`
		UUID string `json:"uuid"`
	}
	if err := json.Unmarshal([]byte(data["dashboards"]), &bag); err != nil {
		t.Fatal(err)
	}
	tpl, ok := bag.Templates["file:falco-k8s"]
	if !ok || tpl.Charm != CharmName || !tpl.InjectDropdown || tpl.JujuTopology["application"] != "a" || len(bag.UUID) != 36 {
		t.Fatalf("%+v", bag)
	}
	raw, err := base64.StdEncoding.DecodeString(tpl.Content)
	if err != nil {
		t.Fatal(err)
	}
	r, err := xz.NewReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	js, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	var dash map[string]any
	if err := json.Unmarshal(js, &dash); err != nil || dash["panels"] == nil {
		t.Fatalf("dashboard %s: %v", js, err)
	}
	again, _ := DashboardAppData(topo)
	if again["dashboards"] != data["dashboards"] {
		t.Errorf("dashboards not stable from one hook to the next")
	}
}

func TestBatchArgs(t *testing.T) {
	res := map[string]string{"a": strings.Repeat("x", 300), "b": strings.Repeat("y", 300), "c": "z", "d": strings.Repeat("w", 900)}
	got := batchArgs([]string{"a", "b", "c", "d"}, res, 700)
	var sizes []int
	seen := 0
	for _, g := range got {
		n := 0
		for _, a := range g {
			n += len(a) + 1
			seen++
		}
		sizes = append(sizes, n)
	}
	if seen != 4 || len(got) != 2 || len(got[0]) != 3 || sizes[0] > 700 {
		t.Fatalf("batches %d %v", len(got), sizes)
	}
}

func TestIntegrationsProblem(t *testing.T) {
	var in *Integrations
	if in.Problem() != "" {
		t.Error("nil has a problem")
	}
	in = &Integrations{Problems: []string{"logging:3 (loki) loki/0 endpoint is not JSON"}}
	if !strings.Contains(in.Problem(), "logging:3") {
		t.Error(in.Problem())
	}
}
