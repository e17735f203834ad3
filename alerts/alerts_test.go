package alerts

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/falco-k8s/falco-k8s/engine"
	"github.com/falco-k8s/falco-k8s/rules"
)

var now = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

func TestParseSince(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Time
		err  bool
	}{
		{"", time.Time{}, false},
		{"1h", now.Add(-time.Hour), false},
		{"90s", now.Add(-90 * time.Second), false},
		{"1h30m", now.Add(-90 * time.Minute), false},
		{"7d", now.Add(-7 * 24 * time.Hour), false},
		{"2025-05-31T10:00:00Z", time.Date(2025, 5, 31, 10, 0, 0, 0, time.UTC), false},
		{"2025-05-31T10:00:00.5+02:00", time.Date(2025, 5, 31, 8, 0, 0, 500e6, time.UTC), false},
		{"2025-05-31", time.Date(2025, 5, 31, 0, 0, 0, 0, time.UTC), false},
		{"-1h", time.Time{}, true},
		{"0s", time.Time{}, true},
		{"0d", time.Time{}, true},
		{"99999999d", time.Time{}, true},
		{"yesterday", time.Time{}, true},
		{"1y", time.Time{}, true},
	} {
		got, err := ParseSince(tc.in, now)
		if (err != nil) != tc.err || !got.Equal(tc.want) {
			t.Errorf("ParseSince(%q) = %v, %v; want %v, err %v", tc.in, got, err, tc.want, tc.err)
		}
	}
}

func FuzzParseSince(f *testing.F) {
	for _, s := range []string{"1h", "7d", "2025-05-31T10:00:00Z", "2025-05-31", "-5m", "9223372036854775807ns", "1e9d"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseSince(s, now)
		if err == nil && strings.TrimSpace(s) != "" && got.IsZero() {
			t.Fatalf("%q: zero time without error", s)
		}
		if err == nil && !strings.ContainsAny(s, "T-:") && got.After(now) {
			t.Fatalf("%q: a duration gave a time after now: %v", s, got)
		}
	})
}

const sample = `{"hostname":"h","output":"x","output_fields":{"evt.time":1748779200000000000,"ka.req.pod.containers.image":["reg:5000/app:1","nginx@sha256:ab","busybox"],"ka.target.name":"p","ka.target.namespace":"ns","ka.user.name":"u"},"priority":"Critical","rule":"R","source":"k8s_audit","tags":["k8s"],"time":"2025-06-01T12:00:00.000000000Z"}`

func TestParseAndAccessors(t *testing.T) {
	a, err := Parse([]byte(sample))
	if err != nil {
		t.Fatal(err)
	}
	if a.Rule != "R" || a.Priority != engine.PriorityCritical || a.Namespace() != "ns" || a.User() != "u" || a.Target() != "pods/p" {
		t.Fatalf("%+v target %q", a, a.Target())
	}
	// Must agree with the engine's ka.req.pod.containers.image.repository.
	if got := strings.Join(a.Repositories(), ","); got != "reg,nginx,busybox" {
		t.Fatalf("repositories %q", got)
	}
	for _, bad := range []string{``, `{}`, `{"rule":"R","priority":"loud","time":"2025-06-01T12:00:00Z"}`,
		`{"rule":"R","priority":"Warning","time":"noon"}`, sample + `{}`, `12:00:00.000: Warning text alert`} {
		if _, err := Parse([]byte(bad)); err == nil {
			t.Errorf("Parse(%q) accepted", bad)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(sample))
	f.Add([]byte(`{"rule":"R","priority":"info","time":"2025-06-01T12:00:00Z","output_fields":{"ka.target.namespace":null}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := Parse(b)
		if err != nil {
			return
		}
		// The accessors never panic on whatever output_fields hold.
		_, _, _, _, _ = a.Namespace(), a.User(), a.Target(), a.Images(), a.Container()
		_ = a.Repositories()
		_, _ = identify(a, ScopeNamespace)
		_, _ = identify(a, ScopeCluster)
		NewReview([]*Alert{a}).WriteTable(&strings.Builder{}) //nolint:errcheck
	})
}

func TestReadJSONLFilters(t *testing.T) {
	in := strings.Join([]string{
		sample,
		"not an alert",
		"",
		strings.Replace(sample, `"ka.target.namespace":"ns"`, `"ka.target.namespace":"other"`, 1),
		strings.Replace(sample, `"priority":"Critical"`, `"priority":"Notice"`, 1),
		strings.Replace(sample, `12:00:00.000000000Z`, `10:00:00.000000000Z`, 1),
	}, "\n")
	for _, tc := range []struct {
		f    Filter
		want int
	}{
		{Filter{}, 4},
		{Filter{Namespace: "ns"}, 3},
		{Filter{Priority: engine.PriorityWarning, HasPriority: true}, 3},
		{Filter{Since: now.Add(-time.Hour)}, 3},
		{Filter{Rule: "other"}, 0},
		{Filter{Limit: 1}, 1},
	} {
		got, skipped, err := ReadJSONL(context.Background(), strings.NewReader(in), tc.f)
		if err != nil || skipped != 1 || len(got) != tc.want {
			t.Errorf("%+v: %d alerts, %d skipped, %v; want %d", tc.f, len(got), skipped, err, tc.want)
		}
	}
}

func base() []engine.File {
	return []engine.File{{Name: rules.DefaultName, Content: rules.Default()}}
}

func alertFor(t *testing.T, rule, ns, user string, images ...string) *Alert {
	t.Helper()
	fields := map[string]any{FieldUser: user}
	if ns != "" {
		fields[FieldNamespace] = ns
	} else {
		fields[FieldNamespace] = nil
	}
	if images != nil {
		l := make([]any, len(images))
		for i, s := range images {
			l[i] = s
		}
		fields[FieldImages] = l
	}
	return &Alert{Rule: rule, Source: "k8s_audit", Priority: engine.PriorityWarning, Time: now, Fields: fields}
}

// TestTuneKeepsHandEdits: an existing file's items, comments and values stay; tune only adds,
// and a covered tuple (a subset of an `in` list) is not added again.
func TestTuneKeepsHandEdits(t *testing.T) {
	existing := []byte(`# my notes
- list: user_known_secret_readers
  items: [alice]

- rule: Privileged Container Started in Pod
  override:
    exceptions: append
  exceptions:
    - name: falco_k8s_tuning_namespace_user_images
      fields: [ka.target.namespace, ka.user.name, ka.req.pod.containers.image.repository]
      comps: [=, =, in]
      values:
        - [ci, bob, [nginx, mysql]] # reviewed by carol
`)
	list := []*Alert{
		alertFor(t, "Privileged Container Started in Pod", "ci", "bob", "nginx:1"),                  // covered
		alertFor(t, "Privileged Container Started in Pod", "ci", "bob", "nginx:1", "x"),             // new
		alertFor(t, "Secret Read by User", "ci", "bob"),                                             // new rule
		alertFor(t, "Secret Read by User", "", "bob"),                                               // no namespace
		alertFor(t, "No Such Rule", "ci", "bob"),                                                    // not in base
		alertFor(t, "Secret Read by User", "ci", `eve"or"1`),                                        // unsafe
		{Rule: "Falco internal: hot restart failure", Source: "internal", Fields: map[string]any{}}, // internal
	}
	res, err := Tune(list, TuneOptions{Scope: ScopeNamespace, Base: base(), Path: "tuning.yaml", Existing: existing, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Added) != 2 || res.Present != 1 || len(res.Skipped) != 4 {
		t.Fatalf("added %+v present %d skipped %+v", res.Added, res.Present, res.Skipped)
	}
	out := string(res.Content)
	for _, want := range []string{"# my notes", "items: [alice]", "[ci, bob, [nginx, mysql]] # reviewed by carol", "[ci, bob, [nginx, x]]", "rule: Secret Read by User"} {
		if !strings.Contains(out, want) {
			t.Errorf("tuned file lacks %q:\n%s", want, out)
		}
	}
	again, err := Tune(list, TuneOptions{Scope: ScopeNamespace, Base: base(), Path: "tuning.yaml", Existing: res.Content, Now: now})
	if err != nil || again.Changed || len(again.Added) != 0 {
		t.Fatalf("second tune: %+v %v", again, err)
	}
}

func TestTuneRejectsConflictsAndInvalidResults(t *testing.T) {
	// Same exception name with other fields: a hand edit tune must not override.
	existing := []byte(`- rule: Secret Read by User
  override:
    exceptions: append
  exceptions:
    - name: falco_k8s_tuning_namespace_user
      fields: [ka.target.namespace]
      values: [[ci]]
`)
	list := []*Alert{alertFor(t, "Secret Read by User", "ci", "bob")}
	if _, err := Tune(list, TuneOptions{Scope: ScopeNamespace, Base: base(), Path: "t.yaml", Existing: existing, Now: now}); err == nil || !strings.Contains(err.Error(), "edited by hand") {
		t.Fatalf("conflict: %v", err)
	}
	if _, err := Tune(list, TuneOptions{Scope: ScopeNamespace, Base: base(), Path: "t.yaml", Existing: []byte("rule: x"), Now: now}); err == nil {
		t.Fatal("a mapping at the top level was accepted")
	}
	// A base without the rule's macros cannot load the tuned file: nothing is returned.
	broken := []byte("- rule: Secret Read by User\n  override: {condition: append}\n  condition: and (\n")
	if _, err := Tune(list, TuneOptions{Scope: ScopeNamespace, Base: base(), Path: "t.yaml", Existing: broken, Now: now}); err == nil {
		t.Fatal("an invalid result was accepted")
	}
}

// FuzzTuneExisting: whatever the existing tuning file holds, tune either fails cleanly or
// produces a file that loads and is a fixed point.
func FuzzTuneExisting(f *testing.F) {
	f.Add([]byte(""))
	f.Add([]byte("- rule: Secret Read by User\n  override:\n    exceptions: append\n  exceptions:\n    - name: falco_k8s_tuning_namespace_user\n      fields: [ka.target.namespace, ka.user.name]\n      comps: [=, =]\n      values: [[a, b]]\n"))
	f.Add([]byte("- rule: Secret Read by User\n  append: true\n  exceptions: []\n"))
	f.Add([]byte("# only a comment\n"))
	list := []*Alert{
		{Rule: "Secret Read by User", Source: "k8s_audit", Fields: map[string]any{FieldNamespace: "ns", FieldUser: "u"}},
		{Rule: "Pod Uses Host Network", Source: "k8s_audit", Fields: map[string]any{FieldNamespace: "ns", FieldUser: "u", FieldImages: []any{"nginx:1"}}},
	}
	b := base()
	f.Fuzz(func(t *testing.T, existing []byte) {
		res, err := Tune(list, TuneOptions{Scope: ScopeNamespace, Base: b, Path: "t.yaml", Existing: existing, Now: now})
		if err != nil || !res.Changed {
			return
		}
		again, err := Tune(list, TuneOptions{Scope: ScopeNamespace, Base: b, Path: "t.yaml", Existing: res.Content, Now: now})
		if err != nil || again.Changed {
			t.Fatalf("not a fixed point: %v\n%s", err, res.Content)
		}
	})
}

func TestResetNeverOverwrites(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "tuning.yaml")
	for i := range 3 {
		if err := WriteFile(p, []byte{byte('a' + i)}, 0o644); err != nil {
			t.Fatal(err)
		}
		moved, err := Reset(p, now)
		if err != nil || moved == "" {
			t.Fatalf("reset %d: %q %v", i, moved, err)
		}
	}
	baks, _ := filepath.Glob(p + ".*.bak")
	if len(baks) != 3 {
		t.Fatalf("backups %v", baks)
	}
	if moved, err := Reset(p, now); moved != "" || err != nil {
		t.Fatalf("reset without a file: %q %v", moved, err)
	}
	if _, err := os.Stat(p); !os.IsNotExist(err) {
		t.Fatal("tuning file still there")
	}
}
