package alerts

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/falco-k8s/falco-k8s/engine"
	"github.com/falco-k8s/falco-k8s/internal/atomicfile"
)

// Scopes of tune.
const (
	ScopeNamespace = "namespace"
	ScopeCluster   = "cluster"
)

// ExceptionPrefix starts the name of every exception tune writes, so they cannot collide with
// exceptions of the base rules (appending fields to an existing name is a load error).
const ExceptionPrefix = "falco_k8s_tuning_"

// Value is one element of an exception's values tuple: a scalar, or a list (for `in`).
type Value struct {
	S    string   `json:"value,omitempty"`
	L    []string `json:"values,omitempty"`
	List bool     `json:"-"`
}

func (v Value) String() string {
	if v.List {
		return "[" + strings.Join(v.L, ", ") + "]"
	}
	return v.S
}

// Addition is one values tuple tune adds (or would add) to a rule's exception.
type Addition struct {
	Rule      string   `json:"rule"`
	Exception string   `json:"exception"`
	Fields    []string `json:"fields"`
	Comps     []string `json:"comps"`
	Values    []Value  `json:"values"`
	// Alerts is how many reviewed alerts the tuple covers.
	Alerts int `json:"alerts"`
}

// Skip is a group of reviewed alerts tune could not turn into an exception, with the reason.
type Skip struct {
	Rule   string `json:"rule"`
	Reason string `json:"reason"`
	Alerts int    `json:"alerts"`
}

// TuneOptions are tune's inputs besides the alerts.
type TuneOptions struct {
	Scope string
	// Base are the rules files the agent loads before the tuning file (built-in, followed,
	// local), in order; the result is validated by loading them with the new tuning file.
	Base []engine.File
	// Path is the tuning file; Existing its current content (nil when absent).
	Path     string
	Existing []byte
	// Now stamps the comments on added values.
	Now time.Time
}

// TuneResult is what Tune decided.
type TuneResult struct {
	File    string     `json:"file"`
	Scope   string     `json:"scope"`
	Added   []Addition `json:"added"`
	Present int        `json:"already_present"`
	Skipped []Skip     `json:"skipped"`
	// Content is the new tuning file (equal to the existing one when nothing is added).
	Content []byte `json:"-"`
	Changed bool   `json:"changed"`
	Written bool   `json:"written"`
}

// identity is the exception tune derives from one alert.
type identity struct {
	fields, comps []string
	values        []Value
}

func (id identity) name() string {
	var parts []string
	for _, f := range id.fields {
		parts = append(parts, shortField(f))
	}
	return ExceptionPrefix + strings.Join(parts, "_")
}

func shortField(f string) string {
	switch f {
	case FieldNamespace:
		return "namespace"
	case FieldUser:
		return "user"
	case FieldRepos:
		return "images"
	}
	return strings.NewReplacer(".", "_", "[", "_", "]", "", "/", "_").Replace(f)
}

// identify chooses the exception fields for a from what its rule's output captured: the
// namespace (namespace scope only), the user, and the pod's image repositories (compared with
// `in`, so a pod matches when every container's repository is listed). The reason is set when
// no exception can be made.
func identify(a *Alert, scope string) (identity, string) {
	var id identity
	add := func(f, c string, v Value) {
		id.fields = append(id.fields, f)
		id.comps = append(id.comps, c)
		id.values = append(id.values, v)
	}
	if scope == ScopeNamespace {
		ns, ok := a.Str(FieldNamespace)
		if !ok || ns == "" {
			return id, "no namespace in the alert (cluster-scoped object, or the rule's output lacks %ka.target.namespace): use --scope cluster"
		}
		add(FieldNamespace, "=", Value{S: ns})
	}
	if u, ok := a.Str(FieldUser); ok && u != "" {
		add(FieldUser, "=", Value{S: u})
	}
	if repos := uniqSorted(a.Repositories()); len(repos) > 0 {
		add(FieldRepos, "in", Value{L: repos, List: true})
	}
	if len(id.fields) == 0 {
		return id, "the rule's output captures neither %ka.user.name nor pod images: nothing to key a cluster-wide exception on"
	}
	for _, v := range id.values {
		vals := []string{v.S}
		if v.List {
			vals = v.L
		}
		for _, s := range vals {
			if !safeValue(s) {
				return id, fmt.Sprintf("value %q cannot be written safely into a condition (quotes, parentheses, commas, backslashes or control characters)", s)
			}
		}
	}
	return id, ""
}

// safeValue rejects values Falco would splice into the condition text in a way that breaks or
// changes it (spec §3.5): exception values are not escaped.
func safeValue(s string) bool {
	if s == "" || strings.TrimSpace(s) != s {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f || strings.ContainsRune("\"'(),\\", r) {
			return false
		}
	}
	return true
}

// Tune turns alerts into exceptions merged into the tuning file content. It never removes or
// rewrites what the file has; a tuple already present (or covered: same scalars and a subset of
// an `in` list) is counted in Present, not added again. The new content is validated by loading
// Base followed by it.
func Tune(alerts []*Alert, opts TuneOptions) (*TuneResult, error) {
	if opts.Scope != ScopeNamespace && opts.Scope != ScopeCluster {
		return nil, fmt.Errorf("invalid scope %q: use namespace or cluster", opts.Scope)
	}
	res := &TuneResult{File: opts.Path, Scope: opts.Scope, Added: []Addition{}, Skipped: []Skip{}}
	base, _, err := engine.Load(opts.Base, engine.DefaultOptions())
	if err != nil {
		return nil, fmt.Errorf("the base rules do not load: %w", err)
	}
	tf, err := parseTuningFile(opts.Existing)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", opts.Path, err)
	}
	skips := map[[2]string]int{}
	type pending struct {
		add Addition
		key string
	}
	var adds []*pending
	byKey := map[string]*pending{}
	for _, a := range alerts {
		r := base.Rule(a.Rule)
		switch {
		case a.Source != "" && a.Source != engine.SourceK8sAudit:
			skips[[2]string{a.Rule, "not a k8s_audit rule (e.g. an internal alert): no exceptions possible"}]++
			continue
		case r == nil:
			skips[[2]string{a.Rule, "rule not in the base rules: pass the rules files that define it with -r"}]++
			continue
		}
		id, reason := identify(a, opts.Scope)
		if reason != "" {
			skips[[2]string{a.Rule, reason}]++
			continue
		}
		name := id.name()
		key := a.Rule + "\x00" + name + "\x00" + tupleKey(id.values)
		if p := byKey[key]; p != nil {
			p.add.Alerts++
			continue
		}
		if tf.covered(a.Rule, id) {
			res.Present++
			byKey[key] = &pending{} // count once per tuple
			continue
		}
		p := &pending{key: key, add: Addition{Rule: a.Rule, Exception: name, Fields: id.fields, Comps: id.comps, Values: id.values, Alerts: 1}}
		byKey[key] = p
		adds = append(adds, p)
	}
	// A tuple covered by another new tuple of the same exception (a smaller image set) is not
	// needed; keeping only the covering one keeps the file minimal and a re-run a no-op.
	for _, p := range adds {
		covered := false
		for _, q := range adds {
			if p != q && p.add.Rule == q.add.Rule && p.add.Exception == q.add.Exception && tupleKey(p.add.Values) != tupleKey(q.add.Values) &&
				covers(q.add.Comps, q.add.Values, p.add.Values) {
				q.add.Alerts += p.add.Alerts
				covered = true
				break
			}
		}
		if !covered {
			res.Added = append(res.Added, p.add)
		}
	}
	for k, n := range skips {
		res.Skipped = append(res.Skipped, Skip{Rule: k[0], Reason: k[1], Alerts: n})
	}
	sort.Slice(res.Skipped, func(i, j int) bool {
		if res.Skipped[i].Rule != res.Skipped[j].Rule {
			return res.Skipped[i].Rule < res.Skipped[j].Rule
		}
		return res.Skipped[i].Reason < res.Skipped[j].Reason
	})
	if len(res.Added) == 0 {
		res.Content = opts.Existing
		return res, nil
	}
	for _, ad := range res.Added {
		if err := tf.add(ad, opts.Now); err != nil {
			return nil, fmt.Errorf("%s: %w", opts.Path, err)
		}
	}
	content, err := tf.encode()
	if err != nil {
		return nil, err
	}
	if err := Validate(opts.Base, opts.Path, content, res.Added); err != nil {
		return nil, err
	}
	res.Content, res.Changed = content, true
	return res, nil
}

// Validate loads base followed by the tuning content and checks that every added exception is
// on its rule.
func Validate(base []engine.File, name string, content []byte, added []Addition) error {
	files := append(append([]engine.File(nil), base...), engine.File{Name: name, Content: content})
	rs, _, err := engine.Load(files, engine.DefaultOptions())
	if err != nil {
		return fmt.Errorf("the tuned rules do not load, nothing written: %w", err)
	}
	for _, ad := range added {
		r := rs.Rule(ad.Rule)
		if r == nil {
			return fmt.Errorf("rule %q missing after tuning", ad.Rule)
		}
		for _, f := range ad.Fields {
			found := false
			for _, ef := range r.ExceptionFields {
				found = found || ef == f
			}
			if !found {
				return fmt.Errorf("rule %q: exception field %s not applied after tuning", ad.Rule, f)
			}
		}
	}
	return nil
}

func tupleKey(vs []Value) string {
	var b strings.Builder
	for _, v := range vs {
		if v.List {
			b.WriteString("l:" + strings.Join(uniqSorted(v.L), "\x01"))
		} else {
			b.WriteString("s:" + v.S)
		}
		b.WriteByte(0)
	}
	return b.String()
}

// covers reports whether the existing tuple have (with comps) already excepts everything want
// does: equal scalars, and for `in` a superset of the list.
func covers(comps []string, have, want []Value) bool {
	if len(have) != len(want) || len(comps) != len(want) {
		return false
	}
	for i := range want {
		h, w := have[i], want[i]
		if h.List != w.List {
			return false
		}
		if !h.List {
			if h.S != w.S {
				return false
			}
			continue
		}
		if strings.TrimSpace(comps[i]) != "in" {
			if tupleKey([]Value{h}) != tupleKey([]Value{w}) {
				return false
			}
			continue
		}
		set := map[string]bool{}
		for _, s := range h.L {
			set[s] = true
		}
		for _, s := range w.L {
			if !set[s] {
				return false
			}
		}
	}
	return true
}

// tuningFile is the parsed tuning file, edited in place so comments and hand edits survive.
type tuningFile struct {
	doc  *yaml.Node // document node
	root *yaml.Node // top-level sequence
}

func parseTuningFile(b []byte) (*tuningFile, error) {
	tf := &tuningFile{}
	if len(bytes.TrimSpace(b)) > 0 {
		var doc yaml.Node
		if err := yaml.Unmarshal(b, &doc); err != nil {
			return nil, fmt.Errorf("parse tuning file: %w", err)
		}
		if len(doc.Content) == 1 && doc.Content[0].Kind == yaml.SequenceNode {
			tf.doc, tf.root = &doc, doc.Content[0]
			return tf, nil
		}
		if len(doc.Content) == 1 && !(doc.Content[0].Kind == yaml.ScalarNode && doc.Content[0].Tag == "!!null") {
			return nil, errors.New("parse tuning file: the top level must be a list of rules items")
		}
		tf.doc = &doc
	}
	if tf.doc == nil {
		tf.doc = &yaml.Node{Kind: yaml.DocumentNode, HeadComment: "Managed by `falco-k8s alerts tune`: exceptions for alerts reviewed during the log-only\n" +
			"rollout. The agent loads this file last (rules.tuning_file). Hand edits are kept; values are\n" +
			"only ever added. `falco-k8s alerts reset` sets the file aside."}
	}
	tf.root = &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
	tf.doc.Content = []*yaml.Node{tf.root}
	return tf, nil
}

func mapGet(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// appendItems are the rule items of the file that append exceptions to rule.
func (tf *tuningFile) appendItems(rule string) []*yaml.Node {
	var out []*yaml.Node
	for _, it := range tf.root.Content {
		r := mapGet(it, "rule")
		if r == nil || r.Value != rule {
			continue
		}
		ov := mapGet(mapGet(it, "override"), "exceptions")
		ap := mapGet(it, "append")
		if ov != nil && ov.Value == "append" || ap != nil && ap.Value == "true" {
			out = append(out, it)
		}
	}
	return out
}

// exceptionOf reads an exception mapping's name, fields and comps (comps defaulted like Falco).
func exceptionOf(ex *yaml.Node) (name string, fields, comps []string) {
	if n := mapGet(ex, "name"); n != nil {
		name = n.Value
	}
	fn := mapGet(ex, "fields")
	if fn == nil || fn.Kind != yaml.SequenceNode {
		return name, nil, nil // single-field form: tune never writes it
	}
	for _, f := range fn.Content {
		fields = append(fields, f.Value)
	}
	if cn := mapGet(ex, "comps"); cn != nil && cn.Kind == yaml.SequenceNode {
		for _, c := range cn.Content {
			comps = append(comps, strings.TrimSpace(c.Value))
		}
	} else {
		for range fields {
			comps = append(comps, "=")
		}
	}
	return name, fields, comps
}

func nodeValues(n *yaml.Node) ([]Value, bool) {
	if n.Kind != yaml.SequenceNode {
		return nil, false
	}
	out := make([]Value, 0, len(n.Content))
	for _, e := range n.Content {
		switch e.Kind {
		case yaml.ScalarNode:
			out = append(out, Value{S: e.Value})
		case yaml.SequenceNode:
			v := Value{List: true}
			for _, s := range e.Content {
				v.L = append(v.L, s.Value)
			}
			out = append(out, v)
		default:
			return nil, false
		}
	}
	return out, true
}

// covered reports whether any exception of the file on rule with the same fields and comps
// already excepts id's tuple.
func (tf *tuningFile) covered(rule string, id identity) bool {
	for _, it := range tf.appendItems(rule) {
		exs := mapGet(it, "exceptions")
		if exs == nil || exs.Kind != yaml.SequenceNode {
			continue
		}
		for _, ex := range exs.Content {
			_, fields, comps := exceptionOf(ex)
			if !equalStrings(fields, id.fields) || !equalStrings(comps, id.comps) {
				continue
			}
			vals := mapGet(ex, "values")
			if vals == nil || vals.Kind != yaml.SequenceNode {
				continue
			}
			for _, t := range vals.Content {
				if have, ok := nodeValues(t); ok && covers(comps, have, id.values) {
					return true
				}
			}
		}
	}
	return false
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func scalar(s string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s} }

func flowSeq(items ...string) *yaml.Node {
	n := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Style: yaml.FlowStyle}
	for _, s := range items {
		n.Content = append(n.Content, scalar(s))
	}
	return n
}

func tupleNode(vs []Value) *yaml.Node {
	n := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Style: yaml.FlowStyle}
	for _, v := range vs {
		if v.List {
			n.Content = append(n.Content, flowSeq(v.L...))
		} else {
			n.Content = append(n.Content, scalar(v.S))
		}
	}
	return n
}

// add appends ad's tuple to the file: to the exception of that name when the file has it, else
// as a new exception on the rule's last append item, else in a new item at the end.
func (tf *tuningFile) add(ad Addition, now time.Time) error {
	tuple := tupleNode(ad.Values)
	tuple.LineComment = fmt.Sprintf("%s, added %s", plural(ad.Alerts, "alert"), now.UTC().Format(time.RFC3339))
	items := tf.appendItems(ad.Rule)
	for _, it := range items {
		exs := mapGet(it, "exceptions")
		if exs == nil || exs.Kind != yaml.SequenceNode {
			continue
		}
		for _, ex := range exs.Content {
			name, fields, comps := exceptionOf(ex)
			if name != ad.Exception {
				continue
			}
			if fields == nil && mapGet(ex, "fields") == nil {
				// A values-only append of the same name: put ours next to it.
				fields, comps = ad.Fields, ad.Comps
			}
			if !equalStrings(fields, ad.Fields) || !equalStrings(comps, ad.Comps) {
				return fmt.Errorf("rule %q: exception %s has fields %v comps %v, not %v %v: it was edited by hand; rename it or run `falco-k8s alerts reset`",
					ad.Rule, name, fields, comps, ad.Fields, ad.Comps)
			}
			vals := mapGet(ex, "values")
			if vals == nil {
				ex.Content = append(ex.Content, scalar("values"), &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"})
				vals = ex.Content[len(ex.Content)-1]
			}
			if vals.Kind != yaml.SequenceNode {
				return fmt.Errorf("rule %q: exception %s: values is not a list", ad.Rule, name)
			}
			vals.Style = 0
			vals.Content = append(vals.Content, tuple)
			return nil
		}
	}
	ex := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Content: []*yaml.Node{
		scalar("name"), scalar(ad.Exception),
		scalar("fields"), flowSeq(ad.Fields...),
		scalar("comps"), flowSeq(ad.Comps...),
		scalar("values"), {Kind: yaml.SequenceNode, Tag: "!!seq", Content: []*yaml.Node{tuple}},
	}}
	if len(items) > 0 {
		last := items[len(items)-1]
		if exs := mapGet(last, "exceptions"); exs != nil && exs.Kind == yaml.SequenceNode {
			exs.Style = 0
			exs.Content = append(exs.Content, ex)
			return nil
		}
	}
	item := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Content: []*yaml.Node{
		scalar("rule"), scalar(ad.Rule),
		scalar("override"), {Kind: yaml.MappingNode, Tag: "!!map", Content: []*yaml.Node{scalar("exceptions"), scalar("append")}},
		scalar("exceptions"), {Kind: yaml.SequenceNode, Tag: "!!seq", Content: []*yaml.Node{ex}},
	}}
	tf.root.Content = append(tf.root.Content, item)
	return nil
}

func (tf *tuningFile) encode() ([]byte, error) {
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(tf.doc); err != nil {
		return nil, fmt.Errorf("encode tuning file: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("encode tuning file: %w", err)
	}
	return b.Bytes(), nil
}

// WriteFile replaces the tuning file at path with data atomically (internal/atomicfile), so
// the agent (or a crash) never sees half a file; the directory is created when missing and an
// existing file keeps its mode (an operator may have narrowed it).
func WriteFile(path string, data []byte, perm os.FileMode) error {
	return atomicfile.WriteFileWith(path, data, perm, atomicfile.Options{MkdirAll: true, KeepMode: true})
}

// FormatAddition renders an addition for people, e.g.
// "Secret Read by User: falco_k8s_tuning_namespace_user ka.target.namespace=payments ka.user.name=dave (1 alert)".
func FormatAddition(ad Addition) string {
	var parts []string
	for i, f := range ad.Fields {
		parts = append(parts, fmt.Sprintf("%s %s %s", f, ad.Comps[i], ad.Values[i]))
	}
	s := "s"
	if ad.Alerts == 1 {
		s = ""
	}
	return fmt.Sprintf("%s: %s: %s (%d alert%s)", ad.Rule, ad.Exception, strings.Join(parts, " and "), ad.Alerts, s)
}
