package engine_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/falco-k8s/falco-k8s/engine"
	"github.com/falco-k8s/falco-k8s/engine/k8saudit"
	"github.com/falco-k8s/falco-k8s/internal/falcooracle"
)

// The evaluation differential: seeded audit events (the shared traces, the real kube-apiserver
// batches, and hostile mutations of them) evaluated by the real Falco 0.44.1 with its k8saudit
// and json plugins and by the engine, against the upstream k8s ruleset and against generated
// rules, every matching rule alerting (rule_matching=all). Alerts are compared as JSON, field by
// field.

const sharedTestdata = "../../shared/testdata"

// defaultDiffEvents keeps the run within CI's budget: Falco 0.44.1 with the k8saudit plugin
// spends 0.1-1 s of CPU per event against the upstream ruleset (the engine: microseconds), so
// the 5,000-event runs are FALCO_DIFF_EVENTS=5000 on a machine with time to spare.
const defaultDiffEvents = 120

// baseEvents returns the shared traces and apiserver batches, one JSON document per line.
func baseEvents(t *testing.T) [][]byte {
	t.Helper()
	var out [][]byte
	add := func(path string) {
		f, err := os.Open(path)
		if err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("shared test data: %v", err)
			}
			t.Skipf("shared test data: %v", err)
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			if line := bytes.TrimSpace(sc.Bytes()); len(line) > 0 {
				out = append(out, bytes.Clone(line))
			}
		}
	}
	traces, _ := filepath.Glob(filepath.Join(sharedTestdata, "falco-k8s-audit", "traces", "*.json"))
	sort.Strings(traces)
	for _, p := range traces {
		add(p)
	}
	add(filepath.Join(sharedTestdata, "apiserver-1.31", "audit-batches.jsonl"))
	return out
}

// mutator derives hostile variants of audit events.
type mutator struct{ r *rand.Rand }

func (m *mutator) pick(xs ...string) string { return xs[m.r.IntN(len(xs))] }

// paths collects pointers to every value in a decoded JSON tree.
type jsonSlot struct {
	get func() any
	set func(any)
	del func()
}

func collect(v any, out *[]jsonSlot) {
	switch x := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			*out = append(*out, jsonSlot{get: func() any { return x[k] }, set: func(n any) { x[k] = n }, del: func() { delete(x, k) }})
			collect(x[k], out)
		}
	case []any:
		for i := range x {
			*out = append(*out, jsonSlot{get: func() any { return x[i] }, set: func(n any) { x[i] = n }, del: func() { x[i] = nil }})
			collect(x[i], out)
		}
	}
}

var edgeTimestamps = []any{"1969-12-31T23:59:59.999999Z", "1970-01-01T00:00:00Z", "1970-01-01T00:00:00.000000001Z",
	"9999-12-31T23:59:59.999999999Z", "2262-04-11T23:47:16.854775807Z", "2262-04-12T00:00:00Z", "0001-01-01T00:00:00Z",
	"2024-02-29T12:00:00+02:00", "2024-01-01T00:00:00", "not a time", "", json.Number("1700000000"), nil}

// mutate returns a variant of the event line, or the line unchanged.
func (m *mutator) mutate(line []byte) []byte {
	var root any
	d := json.NewDecoder(bytes.NewReader(line))
	d.UseNumber()
	if err := d.Decode(&root); err != nil {
		return line
	}
	for range 1 + m.r.IntN(3) {
		var slots []jsonSlot
		collect(root, &slots)
		if len(slots) == 0 {
			break
		}
		s := slots[m.r.IntN(len(slots))]
		switch m.r.IntN(12) {
		case 0:
			s.del()
		case 1:
			s.set([]any{json.Number("1"), "x", nil, map[string]any{}, true}[m.r.IntN(5)])
		case 2:
			s.set([]any{})
		case 3:
			n := 1 + m.r.IntN(500)
			arr := make([]any, n)
			for i := range arr {
				arr[i] = []any{"a", json.Number("7"), "privileged", map[string]any{"privileged": true}}[i%4]
			}
			s.set(arr)
		case 4:
			var deep any = "bottom"
			for i := 0; i < 5+m.r.IntN(100); i++ {
				if i%2 == 0 {
					deep = []any{deep}
				} else {
					deep = map[string]any{"a": deep}
				}
			}
			s.set(deep)
		case 5:
			s.set(m.pick("é", "日本語", "\u00a0", "\U0001F600", "a\x00b", "\x01\x1f", "line\nbreak", "tab\there", "", " ", "<NA>", "%ka.verb", "\\", `"`))
		case 6:
			if str, ok := s.get().(string); ok {
				s.set(str + m.pick("\x00tail", "\u2028", "é", "\x7f", "/../x", "*", "0"))
			}
		case 7:
			s.set(json.Number(m.pick("0", "-1", "1.5", "1e3", "18446744073709551615", "18446744073709551616", "9223372036854775808", "-0", "1e400", "200", "403")))
		case 8:
			if obj, ok := root.(map[string]any); ok {
				obj[m.pick("requestReceivedTimestamp", "stageTimestamp")] = edgeTimestamps[m.r.IntN(len(edgeTimestamps))]
			}
		case 9:
			if obj, ok := root.(map[string]any); ok {
				delete(obj, m.pick("user", "objectRef", "requestObject", "responseObject", "responseStatus", "annotations", "sourceIPs", "verb", "impersonatedUser", "stage"))
			}
		default:
			// Field-specific values the rules look at.
			if obj, ok := root.(map[string]any); ok {
				switch m.r.IntN(5) {
				case 0:
					obj["verb"] = m.pick("create", "delete", "get", "CREATE", "cr\x00eate", "")
				case 1:
					obj["user"] = map[string]any{"username": m.pick("system:anonymous", "admin", "system:serviceaccount:kube-system:x", "é"), "groups": []any{"system:masters", json.Number("5")}}
				case 2:
					obj["objectRef"] = map[string]any{"resource": m.pick("pods", "secrets", "configmaps", "namespaces", "clusterrolebindings"), "namespace": m.pick("kube-system", "default", "foo", ""), "name": m.pick("evil", "x", ""), "subresource": m.pick("exec", "attach", "")}
				case 3:
					obj["requestObject"] = map[string]any{"spec": map[string]any{"hostNetwork": m.pick("true", "false"), "containers": []any{map[string]any{"image": m.pick("nginx", "docker.io/library/nginx:1.7.9", "falcosecurity/falco"), "securityContext": map[string]any{"privileged": true}}}}}
				case 4:
					obj["requestURI"] = m.pick("/api/v1/namespaces/default/pods?pretty=true&dryRun=All", "/api/v1/namespaces/kube-system/pods/x/exec?command=sh&command=-c", "/%zz", "/api?x=%00", "")
				}
			}
		}
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(m.r.IntN(2) == 0)
	if err := enc.Encode(root); err != nil {
		return line
	}
	out := bytes.TrimRight(b.Bytes(), "\n")
	// Textual escapes the encoder never writes: \u-escaped plain letters and slashes.
	if m.r.IntN(3) == 0 {
		out = escapeSome(m.r, out)
	}
	return out
}

// escapeSome rewrites a few ASCII letters inside JSON strings as \u00XX or "/" as "\/".
func escapeSome(r *rand.Rand, s []byte) []byte {
	var b bytes.Buffer
	in := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '\\' && in {
			b.WriteByte(c)
			if i+1 < len(s) {
				i++
				b.WriteByte(s[i])
			}
			continue
		}
		if c == '"' {
			in = !in
		}
		if in && r.IntN(8) == 0 && (c >= 'a' && c <= 'z' || c == '/') {
			if c == '/' {
				b.WriteString(`\/`)
			} else {
				fmt.Fprintf(&b, `\u%04x`, c)
			}
			continue
		}
		b.WriteByte(c)
	}
	return b.Bytes()
}

// genEvents returns n event lines: the base events first, then mutations.
func genEvents(t *testing.T, n int, seed uint64) [][]byte {
	base := baseEvents(t)
	m := &mutator{r: rand.New(rand.NewPCG(seed, 7))}
	out := append([][]byte(nil), base...)
	for len(out) < n {
		l := m.mutate(base[m.r.IntN(len(base))])
		// The k8saudit file reader stops at a line over 64 KiB: keep under it.
		if len(l) < 60<<10 && !bytes.ContainsAny(l, "\n\r") {
			out = append(out, l)
		}
	}
	return out
}

// engineAlerts evaluates the event lines as replay does, every matching rule alerting.
func engineAlerts(rs *engine.Ruleset, lines [][]byte, hostname string) []string {
	ev := rs.NewEvaluator()
	dec := k8saudit.Decoder{MaxEventSize: k8saudit.DefaultMaxEventSize, Hostname: hostname}
	var out []string
	for _, l := range lines {
		dec.Decode(l, func(e *k8saudit.Event) error { //nolint:errcheck // Falco logs and skips such lines too
			ev.Match(e, true, func(r *engine.Rule) {
				out = append(out, string(ev.Alert(r, hostname).JSON()))
			})
			return nil
		})
	}
	return out
}

// canon re-encodes an alert with sorted keys so that field order does not matter.
func canon(s string) string {
	var v any
	d := json.NewDecoder(strings.NewReader(s))
	d.UseNumber()
	if err := d.Decode(&v); err != nil {
		return "undecodable: " + s
	}
	// An event stamped with Go's zero time takes the time it is read (see stageTimestamp): the
	// two runs read it at different moments.
	if m, ok := v.(map[string]any); ok {
		if f, ok := m["output_fields"].(map[string]any); ok {
			if n, ok := f["evt.time"].(json.Number); ok {
				if t, err := strconv.ParseInt(string(n), 10, 64); err == nil && time.Since(time.Unix(0, t)).Abs() < time.Hour {
					f["evt.time"], m["time"] = "now", "now"
					if out, ok := m["output"].(string); ok {
						if i := strings.Index(out, ": "); i >= 0 {
							m["output"] = "now" + out[i:]
						}
					}
				}
			}
		}
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// diffAlerts compares the two alert streams in order and returns readable differences.
func diffAlerts(falco, ours []string) (diffs []string) {
	n := max(len(falco), len(ours))
	for i := 0; i < n; i++ {
		switch {
		case i >= len(falco):
			diffs = append(diffs, fmt.Sprintf("alert %d: engine only: %s", i, ours[i]))
		case i >= len(ours):
			diffs = append(diffs, fmt.Sprintf("alert %d: falco only: %s", i, falco[i]))
		default:
			f, o := canon(falco[i]), canon(ours[i])
			if f != o {
				diffs = append(diffs, fmt.Sprintf("alert %d:\n  falco:  %s\n  engine: %s", i, f, o))
			}
		}
	}
	return diffs
}

// runEvalDiff runs one rules file over the events in both and compares the alerts.
func runEvalDiff(t *testing.T, o *falcooracle.Oracle, rulesName string, rules []byte, lines [][]byte) (alerts int, diffs []string) {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "rules.yaml"), rules, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "events.jsonl"), append(bytes.Join(lines, []byte("\n")), '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
	hostname, _ := os.Hostname()
	start := time.Now()
	run, err := o.Evaluate(context.Background(), dir, []string{"rules.yaml"}, "events.jsonl", "rule_matching=all")
	if err != nil {
		t.Fatalf("%s: %v", rulesName, err)
	}
	t.Logf("%s: falco ran %d events in %v", rulesName, len(lines), time.Since(start).Round(time.Millisecond))
	defer func(start time.Time) {
		t.Logf("%s: engine ran them in %v", rulesName, time.Since(start).Round(time.Millisecond))
	}(time.Now())
	rs, _, err := engine.Load([]engine.File{{Name: "rules.yaml", Content: rules}}, engine.DefaultOptions())
	if err != nil {
		t.Fatalf("%s: engine: %v", rulesName, err)
	}
	falco := make([]string, len(run.Alerts))
	for i, a := range run.Alerts {
		falco[i] = string(a)
	}
	return len(falco), diffAlerts(falco, engineAlerts(rs, lines, hostname))
}

// TestFalcoDiffEvalUpstream: the upstream k8s ruleset over the base and mutated events.
func TestFalcoDiffEvalUpstream(t *testing.T) {
	t.Parallel() // each test waits on its own Falco process: let them overlap
	o := falcooracle.Require(t)
	rules, err := os.ReadFile(filepath.Join(sharedTestdata, "upstream", "k8s_audit_rules.latest.yaml"))
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	lines := genEvents(t, envInt("FALCO_DIFF_EVENTS", defaultDiffEvents), uint64(envInt("FALCO_DIFF_SEED", 15)))
	alerts, diffs := runEvalDiff(t, o, "upstream", rules, lines)
	reportEvalDiffs(t, diffs)
	t.Logf("%d events, %d Falco alerts, %d differences", len(lines), alerts, len(diffs))
}

// TestFalcoDiffEvalGenerated: generated rules (every field, operator, transformer, lists,
// macros, exceptions, outputs) over the same events.
func TestFalcoDiffEvalGenerated(t *testing.T) {
	t.Parallel() // each test waits on its own Falco process: let them overlap
	o := falcooracle.Require(t)
	seed := uint64(envInt("FALCO_DIFF_SEED", 15))
	lines := genEvents(t, envInt("FALCO_DIFF_EVENTS", defaultDiffEvents), seed+1)
	// Documents valid for both Falco and the engine: judged in one Falco run, each followed by
	// its cleanup file (see diffBatch), names unique per document.
	var files []engine.File
	var names []string
	dir := t.TempDir()
	ndocs := envInt("FALCO_DIFF_RULEDOCS", 400)
	for i := range ndocs {
		g := newDocGen(seed*7_000_003+uint64(i), fmt.Sprintf("e%d_", i))
		g.evalMode = true
		doc := g.document()
		files = append(files, engine.File{Name: fmt.Sprintf("e%05d.yaml", i), Content: doc},
			engine.File{Name: fmt.Sprintf("e%05d.cleanup.yaml", i), Content: cleanupDoc(g.items)})
	}
	for _, f := range files {
		names = append(names, f.Name)
		if err := os.WriteFile(filepath.Join(dir, f.Name), f.Content, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var kept [][]byte
	const chunk = 80 // 40 documents and their cleanup files per Falco run
	for c := 0; c < len(files); c += chunk {
		end := min(c+chunk, len(files))
		res, err := o.Validate(context.Background(), dir, names[c:end])
		if err != nil {
			t.Fatal(err)
		}
		_, ours, _ := engine.Load(files[c:end], engine.DefaultOptions())
		for i := 0; i < end-c; i += 2 {
			if !res[i+1].Successful {
				t.Fatalf("falco refused cleanup file %s", files[c+i+1].Name)
			}
			if res[i].Successful && ours[i].Successful {
				kept = append(kept, files[c+i].Content)
			}
		}
	}
	if len(kept) < ndocs/10 {
		t.Fatalf("only %d of %d generated rule documents load in both", len(kept), ndocs)
	}
	rules := bytes.Join(kept, nil)
	alerts, diffs := runEvalDiff(t, o, "generated", rules, lines)
	reportEvalDiffs(t, diffs)
	t.Logf("%d events, %d generated rule documents, %d Falco alerts, %d differences", len(lines), len(kept), alerts, len(diffs))
}

func reportEvalDiffs(t *testing.T, diffs []string) {
	t.Helper()
	if out := os.Getenv("FALCO_DIFF_OUT"); out != "" {
		os.WriteFile(out, []byte(strings.Join(diffs, "\n")), 0o644) //nolint:errcheck // debugging aid
	}
	for i, d := range diffs {
		if i == 30 {
			t.Errorf("... and %d more", len(diffs)-i)
			break
		}
		t.Error(d)
	}
}
