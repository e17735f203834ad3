// Package auditgen generates the audit events of the engine's differential tests against the
// real Falco and the real plugins: the shared traces and real kube-apiserver batches, and
// seeded hostile mutations of them (escapes, control characters, NULs, wrong JSON types, empty
// and huge arrays, missing sections, non-ASCII, deep nesting, timestamps at the edges). One
// generator serves the engine's tests and the plugin-fields tools module, so both judge the
// same inputs.
package auditgen

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
)

// BaseEvents reads the shared traces (testdata/falco-k8s-audit/traces/*.json) and the real
// kube-apiserver batches (testdata/apiserver-1.31/audit-batches.jsonl) under testdata, one
// JSON document per line.
func BaseEvents(testdata string) ([][]byte, error) {
	var out [][]byte
	add := func(path string) error {
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			if line := bytes.TrimSpace(sc.Bytes()); len(line) > 0 {
				out = append(out, bytes.Clone(line))
			}
		}
		return sc.Err()
	}
	traces, err := filepath.Glob(filepath.Join(testdata, "falco-k8s-audit", "traces", "*.json"))
	if err != nil {
		return nil, err
	}
	if len(traces) == 0 {
		return nil, fmt.Errorf("no traces in %s", filepath.Join(testdata, "falco-k8s-audit", "traces"))
	}
	sort.Strings(traces)
	for _, p := range append(traces, filepath.Join(testdata, "apiserver-1.31", "audit-batches.jsonl")) {
		if err := add(p); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Mutator derives hostile variants of audit events from a seeded random source.
type Mutator struct{ r *rand.Rand }

// NewMutator returns a Mutator whose variants depend only on seed.
func NewMutator(seed uint64) *Mutator { return &Mutator{r: rand.New(rand.NewPCG(seed, 7))} }

func (m *Mutator) pick(xs ...string) string { return xs[m.r.IntN(len(xs))] }

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

// Mutate returns a variant of the event line (one JSON document), or the line unchanged when
// it does not decode: 1-3 of deletions, wrong JSON types, empty and huge arrays, deep nesting,
// non-ASCII, NULs and control characters, edge numbers and timestamps, missing sections and
// rule-relevant values, then optionally textual escapes (\u0074, \/) the encoder never writes.
func (m *Mutator) Mutate(line []byte) []byte {
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

// Generate returns n event lines: base first, then mutations of randomly chosen base lines,
// each kept under 60 KiB and on one line (the k8saudit file reader stops at a line over
// 64 KiB). The result depends only on base, n and seed.
func Generate(base [][]byte, n int, seed uint64) [][]byte {
	m := NewMutator(seed)
	out := append([][]byte(nil), base...)
	for len(out) < n && len(base) > 0 {
		l := m.Mutate(base[m.r.IntN(len(base))])
		if len(l) < 60<<10 && !bytes.ContainsAny(l, "\n\r") {
			out = append(out, l)
		}
	}
	return out
}
