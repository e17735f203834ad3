package engine_test

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/falco-k8s/falco-k8s/engine"
	"github.com/falco-k8s/falco-k8s/engine/rulesfile"
	"github.com/falco-k8s/falco-k8s/internal/testshared"
	"github.com/falco-k8s/falco-k8s/replay"
)

type falcoCase struct {
	Name         string         `json:"name"`
	Rules        []string       `json:"rules"`
	RulesModern  []string       `json:"rules_modern"`
	Trace        string         `json:"trace"`
	Detect       bool           `json:"detect"`
	DetectLevel  *string        `json:"detect_level"`
	DetectCounts map[string]int `json:"detect_counts"`
	Expect       struct {
		ExitStatus     int      `json:"exit_status"`
		StderrContains []string `json:"stderr_contains"`
	} `json:"expect"`
}

// shortPriority maps Falco's JSON priority to the regression suite's spelling.
func shortPriority(p string) string {
	if p == "Informational" {
		return "INFO"
	}
	return strings.ToUpper(p)
}

// TestFalcoK8sAuditRegressionCases runs Falco's own k8s-audit regression suite through the
// engine, loaded and replayed as `falco-k8s replay --json` does (engine/rulesfile, replay): exit
// status 1 when the rules do not load, 2 when an input cannot be read, 0 otherwise.
func TestFalcoK8sAuditRegressionCases(t *testing.T) {
	base := testshared.Path(t, "testdata", "falco-k8s-audit")
	raw, err := os.ReadFile(filepath.Join(base, "cases.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cases []falcoCase
	if err := json.Unmarshal(raw, &cases); err != nil {
		t.Fatal(err)
	}
	if len(cases) < 30 {
		t.Fatalf("expected the full suite, got %d cases", len(cases))
	}
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			rules := c.Rules
			if len(c.RulesModern) > 0 {
				rules = c.RulesModern // we implement Falco >= 0.38 semantics
			}
			var paths []string
			for _, r := range rules {
				paths = append(paths, filepath.Join(base, r))
			}
			stdout, stderr, code := replayCase(paths, filepath.Join(base, c.Trace))
			if code != c.Expect.ExitStatus {
				t.Fatalf("exit %d, want %d\nstderr:\n%s", code, c.Expect.ExitStatus, stderr)
			}
			for _, s := range c.Expect.StderrContains {
				if !strings.Contains(stderr, s) {
					t.Errorf("stderr lacks %q:\n%s", s, stderr)
				}
			}
			counts := map[string]int{}
			levels := map[string]bool{}
			total := 0
			for _, line := range strings.Split(strings.TrimSpace(stdout), "\n") {
				if line == "" {
					continue
				}
				var a struct {
					Rule     string `json:"rule"`
					Priority string `json:"priority"`
				}
				if err := json.Unmarshal([]byte(line), &a); err != nil {
					t.Fatalf("alert is not JSON: %v: %s", err, line)
				}
				counts[a.Rule]++
				levels[shortPriority(a.Priority)] = true
				total++
			}
			if !c.Detect {
				if total != 0 {
					t.Fatalf("want no alerts, got %d: %v", total, counts)
				}
				return
			}
			if total == 0 {
				t.Fatalf("want alerts, got none; stderr:\n%s", stderr)
			}
			if c.DetectLevel != nil && !levels[*c.DetectLevel] {
				t.Errorf("no alert at priority %s; got %v", *c.DetectLevel, levels)
			}
			for rule, n := range c.DetectCounts {
				if counts[rule] != n {
					t.Errorf("rule %q fired %d times, want %d (all: %v)", rule, counts[rule], n, counts)
				}
			}
		})
	}
}

// replayCase is `falco-k8s replay --json -r RULES... TRACE` without the command line around it.
func replayCase(rules []string, trace string) (stdout, stderr string, code int) {
	var out, errb strings.Builder
	rs, results, _, err := rulesfile.Load(rules, engine.DefaultOptions())
	if err != nil {
		rulesfile.WriteText(&errb, io.Discard, results)
		fmt.Fprintf(&errb, "Error: rules do not load: %s\n", rulesfile.Summary(results))
		return "", errb.String(), 1
	}
	r := replay.New(rs, replay.Options{JSON: true, Hostname: replay.Hostname()}, &out, &errb)
	if err := r.Input(nil, trace); err != nil {
		fmt.Fprintf(&errb, "Error: %v\n", err)
		code = 2
	}
	if err := r.Flush(); err != nil {
		return out.String(), errb.String(), 2
	}
	r.Summary()
	return out.String(), errb.String(), code
}
