package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/falco-k8s/falco-k8s/alerts"

	"github.com/falco-k8s/falco-k8s/internal/testshared"
)

// corpus is the audit events the rollout test replays: the repository's examples plus, when
// ../shared is present, the falco-k8s-audit traces (read in place, never copied).
func corpus(t *testing.T) []string {
	t.Helper()
	examples := filepath.Join("..", "..", "examples", "audit-events.jsonl")
	files := []string{examples, billingEvent(t, examples)}
	dir, ok := testshared.Optional(t, "testdata", "falco-k8s-audit", "traces")
	if traces, _ := filepath.Glob(filepath.Join(dir, "*.json")); ok && len(traces) > 0 {
		files = append(files, traces...)
	} else {
		t.Logf("shared traces not present at %s: replaying the examples only", dir)
	}
	return files
}

// billingEvent writes the example's secret read by dave again, in namespace billing: the same
// user and rule in a second namespace tells namespace scope from cluster scope.
func billingEvent(t *testing.T, examples string) string {
	t.Helper()
	b, err := os.ReadFile(examples)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, `"resource":"secrets","namespace":"payments","name":"db-credentials"`) {
			l = strings.ReplaceAll(l, "payments", "billing")
			l = strings.ReplaceAll(l, "-000000000010", "-000000000b10")
			p := filepath.Join(t.TempDir(), "billing.jsonl")
			if err := os.WriteFile(p, []byte(l+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			return p
		}
	}
	t.Fatal("examples lack the db-credentials secret read")
	return ""
}

// replayAlerts evaluates the corpus with the built-in rules plus the extra rules files, every
// matching rule alerting (so an exception on one rule cannot make another one fire instead).
func replayAlerts(t *testing.T, extra ...string) []string {
	t.Helper()
	args := []string{"replay", "-r", filepath.Join("..", "..", "rules", "k8s_audit_default.yaml")}
	for _, e := range extra {
		args = append(args, "-r", e)
	}
	args = append(args, "--json", "--all-matches")
	args = append(args, corpus(t)...)
	t.Setenv("FALCO_HOSTNAME", "rollout-test")
	out, stderr, code := runCLI(t, "", args...)
	// Exit 2 only reports inputs that are not audit events (one shared trace is a plain object).
	if code != 0 && code != 2 {
		t.Fatalf("replay exit %d: %s", code, stderr)
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if l != "" {
			lines = append(lines, l)
		}
	}
	sort.Strings(lines)
	return lines
}

func writeLines(t *testing.T, path string, lines []string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
}

func parseAll(t *testing.T, lines []string) []*alerts.Alert {
	t.Helper()
	out := make([]*alerts.Alert, len(lines))
	for i, l := range lines {
		a, err := alerts.Parse([]byte(l))
		if err != nil {
			t.Fatalf("alert %d: %v", i, err)
		}
		out[i] = a
	}
	return out
}

// TestLogOnlyRollout is the done-means test: replay an audit corpus, review, tune,
// replay again: the tuned alerts are gone, every other alert remains, a second tune is a no-op;
// at namespace scope and at cluster scope.
func TestLogOnlyRollout(t *testing.T) {
	before := replayAlerts(t)
	if len(before) < 10 {
		t.Fatalf("corpus gives only %d alerts", len(before))
	}
	dir := t.TempDir()
	alertsFile := filepath.Join(dir, "alerts.jsonl")
	writeLines(t, alertsFile, before)

	// Review: the summary names every namespace and each rule gets a table.
	out, stderr, code := runCLI(t, "", "alerts", "review", "--file", alertsFile, "-o", "json")
	if code != 0 {
		t.Fatalf("review exit %d: %s", code, stderr)
	}
	var rv alerts.Review
	if err := json.Unmarshal([]byte(out), &rv); err != nil {
		t.Fatal(err)
	}
	if rv.Alerts != len(before) || !contains(rv.Namespaces, "payments") || !contains(rv.Namespaces, "kube-system") || rv.Rules < 5 {
		t.Fatalf("review summary: %+v", rv)
	}
	table, _, _ := runCLI(t, "", "alerts", "review", "--file", alertsFile)
	for _, want := range []string{"Alerts:     " + itoa(len(before)), "NAMESPACE  TARGET", "Secret Read by User (Warning): 2 alerts", "billing", "payments"} {
		if !strings.Contains(table, want) {
			t.Errorf("review table lacks %q:\n%s", want, table)
		}
	}

	cases := []struct {
		name  string
		args  []string
		tuned func(a *alerts.Alert) bool
	}{
		{
			name: "namespace scope", args: []string{"--scope", "namespace", "--namespace", "payments"},
			// billing's secret read by the same user stays: it is another namespace.
			tuned: func(a *alerts.Alert) bool { return a.Namespace() == "payments" },
		},
		{
			// Cluster scope keys on the user (and images) only: reviewing payments' secret reads
			// and sessions excepts dave's in every namespace (billing too), other users' stay.
			name: "cluster scope", args: []string{"--scope", "cluster", "--namespace", "payments", "--rule", "Secret Read by User", "--rule", "Exec or Attach Into Pod"},
			tuned: func(a *alerts.Alert) bool {
				return (a.Rule == "Secret Read by User" || a.Rule == "Exec or Attach Into Pod") && a.User() == "dave@example.com"
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tuning := filepath.Join(t.TempDir(), "tuning.yaml")
			args := append([]string{"alerts", "tune", "--file", alertsFile, "--tuning-file", tuning}, tc.args...)

			dry, stderr, code := runCLI(t, "", append(args, "--dry-run")...)
			if code != 0 || !strings.Contains(dry, "Would add") {
				t.Fatalf("dry run exit %d: %s%s", code, dry, stderr)
			}
			if _, err := os.Stat(tuning); !os.IsNotExist(err) {
				t.Fatalf("dry run wrote the tuning file: %v", err)
			}

			out, stderr, code := runCLI(t, "", args...)
			if code != 0 || !strings.Contains(out, "Added") {
				t.Fatalf("tune exit %d: %s%s", code, out, stderr)
			}
			t.Logf("tune:\n%s", out)
			first, err := os.ReadFile(tuning)
			if err != nil {
				t.Fatal(err)
			}

			after := replayAlerts(t, tuning)
			remaining := map[string]int{}
			for _, l := range after {
				remaining[l]++
			}
			nTuned := 0
			for i, a := range parseAll(t, before) {
				if tc.tuned(a) {
					nTuned++
					if remaining[before[i]] > 0 {
						t.Errorf("tuned alert still raised: %s", before[i])
					}
					continue
				}
				if remaining[before[i]] == 0 {
					t.Errorf("untuned alert lost: %s", before[i])
				}
				remaining[before[i]]--
			}
			for l, n := range remaining {
				if n > 0 {
					t.Errorf("new alert after tuning: %s", l)
				}
			}
			if nTuned == 0 || len(after) != len(before)-nTuned {
				t.Fatalf("before %d, tuned %d, after %d", len(before), nTuned, len(after))
			}

			// A second run adds nothing and leaves the file byte for byte as it was.
			out, stderr, code = runCLI(t, "", args...)
			if code != 0 || !strings.Contains(out, "Nothing to add") {
				t.Fatalf("second tune exit %d: %s%s", code, out, stderr)
			}
			second, err := os.ReadFile(tuning)
			if err != nil {
				t.Fatal(err)
			}
			if string(first) != string(second) {
				t.Fatalf("second tune changed the file:\n%s\n---\n%s", first, second)
			}

			// Reset sets the file aside; the replay is back to the baseline.
			out, _, code = runCLI(t, "", "alerts", "reset", "--tuning-file", tuning)
			if code != 0 || !strings.Contains(out, "Moved") {
				t.Fatalf("reset: %d %s", code, out)
			}
			moved, _ := filepath.Glob(tuning + ".*.bak")
			if len(moved) != 1 {
				t.Fatalf("reset left %v", moved)
			}
			if b, _ := os.ReadFile(moved[0]); string(b) != string(first) {
				t.Fatal("the set-aside file differs from the tuning file")
			}
		})
	}
}

func TestAlertsCLIErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"alerts", "review"}, 2, "--url"},
		{[]string{"alerts", "review", "--file", "x", "--url", "http://a"}, 2, "not both"},
		{[]string{"alerts", "review", "--file", "-", "--since", "yesterday"}, 2, "invalid since"},
		{[]string{"alerts", "review", "--file", "-", "-o", "yaml"}, 2, "table or json"},
		{[]string{"alerts", "tune", "--file", "-", "--scope", "galaxy"}, 2, "namespace or cluster"},
		{[]string{"alerts", "tune", "--file", "-", "--scope", "cluster", "--tuning-file", filepath.Join(dir, "t.yaml"), "--no-builtin"}, 2, "no base rules"},
		{[]string{"alerts", "reset", "--tuning-file", filepath.Join(dir, "absent.yaml")}, 0, ""},
	} {
		out, stderr, code := runCLI(t, "", tc.args...)
		if code != tc.code || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: exit %d (want %d), stderr %q, out %q", tc.args, code, tc.code, stderr, out)
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }
