package engine_test

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"

	"github.com/falco-k8s/falco-k8s/engine/k8saudit"
)

// A seeded generator of Falco rules documents for the differential tests: every item kind, every
// override and append form, exceptions, and the YAML forms yaml-cpp and yaml.v3 might read
// differently (flow and block collections, quoting styles, anchors, multi-documents, odd plain
// scalars). Documents are mostly near-valid, so that both loaders get deep into them, with
// deliberate faults sprinkled in.

type genItem struct{ kind, name string }

type docGen struct {
	r      *rand.Rand
	prefix string
	b      strings.Builder
	items  []genItem // every (kind, name) the document may define, for the batch cleanup
	lists  []string
	macros []string
	rules  []string
	solo   bool // needs its own Falco run (required_plugin_versions are checked after loading)
	// fields are the k8s_audit field names conditions and outputs draw from.
	fields []k8saudit.Field
	// evalMode restricts the generator to valid, loadable rules for the evaluation test.
	evalMode bool
}

func newDocGen(seed uint64, prefix string) *docGen {
	g := &docGen{r: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), prefix: prefix}
	for _, f := range k8saudit.Fields() {
		if !f.Deprecated {
			g.fields = append(g.fields, f)
		}
	}
	return g
}

func (g *docGen) pct(p int) bool           { return g.r.IntN(100) < p }
func (g *docGen) pick(xs ...string) string { return xs[g.r.IntN(len(xs))] }

// name makes a fresh item name, unique to this document so batched documents cannot interact.
func (g *docGen) name(kind string) string {
	base := g.prefix + kind + strconv.Itoa(len(g.items))
	switch {
	case g.evalMode:
	case kind != "rule" && g.pct(3):
		base += g.pick("-x", "(x)", ".x", " x", "é")
	case kind == "rule" && g.pct(10):
		base += g.pick(" with spaces", ": colon", " #hash", " ünï", " 'q'", ` "dq"`)
	}
	return base
}

// scalar renders s as a YAML scalar in a random style that still reads back as s (when it can);
// flow says whether it sits inside a flow collection.
func (g *docGen) scalar(s string, flow bool) string {
	plainOK := s != "" && !strings.ContainsAny(s, "#:{}[],&*!|>'\"%@`\n") && s == strings.TrimSpace(s) && !strings.HasPrefix(s, "-") && !strings.HasPrefix(s, "?")
	switch n := g.r.IntN(10); {
	case n < 4 && plainOK:
		return s
	case n < 7 && !strings.Contains(s, "\n"):
		return "'" + strings.ReplaceAll(s, "'", "''") + "'"
	default:
		return strconv.Quote(s)
	}
}

// oddScalar returns scalars on which YAML parsers are known to disagree, inside flow context.
func (g *docGen) oddScalar() string {
	return g.pick("a:", "b::", "x: y", "c:d", "'q:'", "-", "- x", "?", "? x", "~", "null", "''", "e#f", "g #h",
		"yes", "No", "0x1F", "1e3", ".inf", "!!str 5", "&a x", "*a", "@x", "`x`", "%x", "a\tb", ":", "::", "a:b:")
}

func (g *docGen) field() k8saudit.Field {
	for {
		f := g.fields[g.r.IntN(len(g.fields))]
		// The k8saudit plugin dereferences a nil volume for this field on some hostile
		// events, which aborts Falco (docs/engine.md); the engine skips such a volume. The
		// evaluation corpus leaves it out, the plugin-fields comparison covers it.
		if g.evalMode && f.Name == "ka.req.pod.volumes.volume_type" {
			continue
		}
		return f
	}
}

// fieldRef renders a field with an argument when it needs or takes one.
func (g *docGen) fieldRef() string {
	f := g.field()
	name := f.Name
	switch {
	case f.Arg == k8saudit.ArgNone:
		if !g.evalMode && g.pct(2) {
			name += "[0]"
		}
	case f.Arg == k8saudit.ArgIndex || f.Arg == k8saudit.ArgIndexRequired:
		if f.Arg == k8saudit.ArgIndexRequired || g.pct(50) {
			name += "[" + g.pick("0", "1", "2", "10") + "]"
		}
		if !g.evalMode && g.pct(3) {
			name = f.Name + "[x]"
		}
	default:
		if f.Arg == k8saudit.ArgKey || g.pct(60) {
			name += "[" + g.argFor(f.Name) + "]"
		}
	}
	if !g.evalMode && g.pct(2) {
		name = g.pick("ka.nope", "evt.nope", "jevt.value", "ka.uri.param", "nope", "ka.verb.x", "json.value[", "proc.name", "k8s.ns.name")
	}
	return name
}

func (g *docGen) argFor(field string) string {
	switch {
	case strings.HasPrefix(field, "ka.uri.param"):
		return g.pick("pretty", "watch", "dryRun", "x")
	case strings.Contains(field, "label") || strings.Contains(field, "annotation"):
		return g.pick("app", "authorization.k8s.io/decision", "authorization.k8s.io/reason", "x")
	case strings.HasPrefix(field, "json") || strings.HasPrefix(field, "jevt"):
		return g.pick("/verb", "/user/username", "/objectRef/resource", "/requestObject/spec/containers/0/image",
			"/annotations", "/sourceIPs/0", "/nope", "/responseStatus/code", "/requestURI", "/user/groups",
			"/stage", "/requestReceivedTimestamp", "/objectRef", "/requestObject", "/user/extra/x~1y/0", "")
	}
	return g.pick("x", "0", "app")
}

var genValues = []string{"get", "create", "delete", "update", "patch", "list", "watch", "pods", "secrets",
	"configmaps", "default", "kube-system", "system:anonymous", "admin", "nginx", "foo", "0", "1", "200", "403",
	"true", "false", "/api", "/api/v1/namespaces/default/pods", "Pod", "exec", "*", "ku*", "[ab]*", "/", "",
	"some value", "é", "a,b", "(x)", "-1", "18446744073709551615", "99999999999999999999", "0x10", "1.5",
	"privileged", "hostNetwork", "docker.io/library/nginx", "nginx:1.7.9", "\\", "'", `"`, "ResponseComplete"}

func (g *docGen) value(num bool) string {
	if num {
		v := g.pick("0", "1", "200", "201", "403", "404", "1000", "65535", "0x10", "-1", "18446744073709551615", "3")
		if !g.evalMode && g.pct(2) {
			v = g.pick("abc", "1x", "1.5")
		}
		return v
	}
	v := genValues[g.r.IntN(len(genValues))]
	return g.quoteCond(v)
}

// quoteCond renders a value in condition syntax: bare when it is a bare word, else quoted.
func (g *docGen) quoteCond(v string) string {
	bare := v != "" && !strings.ContainsAny(v, " ()\",'=<>!\\\t") && !strings.HasPrefix(v, "-") && v != "and" && v != "or" && v != "not"
	if bare && g.pct(70) {
		return v
	}
	if !strings.Contains(v, `"`) && !strings.Contains(v, `\`) && g.pct(60) {
		return `"` + v + `"`
	}
	if !strings.Contains(v, "'") && !strings.Contains(v, `\`) {
		return "'" + v + "'"
	}
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(v) + `"`
}

var (
	strOps  = []string{"=", "!=", "contains", "icontains", "startswith", "endswith", "glob", "iglob", "regex", "<", ">", "<=", ">=", "bcontains", "bstartswith", "=="}
	setOps  = []string{"in", "intersects", "pmatch"}
	numOps  = []string{"=", "!=", "<", ">", "<=", ">=", "in", "=="}
	boolOps = []string{"=", "!="}
)

// lhs is a field, or sometimes a transformer over one.
func (g *docGen) lhs() (text string, t k8saudit.Type, list bool) {
	ref := g.fieldRef()
	f, _ := k8saudit.LookupField(strings.SplitN(ref, "[", 2)[0])
	t, list = f.Type, f.List
	if g.pct(15) {
		tr := g.pick("tolower", "toupper", "b64", "basename", "len", "val")
		if tr == "len" {
			t = k8saudit.TypeUint64
			list = false
		}
		if (tr == "tolower" || tr == "toupper" || tr == "b64" || tr == "basename") && t != k8saudit.TypeString && g.evalMode {
			tr = "val"
		}
		return tr + "(" + ref + ")", t, list
	}
	return ref, t, list
}

// check renders one field comparison.
func (g *docGen) check() string {
	l, t, list := g.lhs()
	if g.pct(8) {
		return l + " exists"
	}
	switch t {
	case k8saudit.TypeUint64, k8saudit.TypeAbsTime:
		op := numOps[g.r.IntN(len(numOps))]
		if op == "in" {
			return l + " in (" + g.value(true) + ", " + g.value(true) + ")"
		}
		return l + " " + op + " " + g.value(true)
	case k8saudit.TypeBool:
		return l + " " + boolOps[g.r.IntN(len(boolOps))] + " " + g.pick("true", "false")
	}
	if g.pct(25) || list && g.pct(40) {
		op := setOps[g.r.IntN(len(setOps))]
		n := g.r.IntN(4)
		if g.evalMode && n == 0 {
			n = 1
		}
		vals := make([]string, 0, n)
		for range n {
			if op == "pmatch" {
				vals = append(vals, g.quoteCond(g.pick("/api", "/api/v1", "/", "/etc", "/api/v1/namespaces")))
			} else {
				vals = append(vals, g.value(false))
			}
		}
		if len(g.lists) > 0 && g.pct(30) {
			vals = append(vals, g.lists[g.r.IntN(len(g.lists))])
		}
		return l + " " + op + " (" + strings.Join(vals, ", ") + ")"
	}
	op := strOps[g.r.IntN(len(strOps))]
	if g.evalMode && (op == "bcontains" || op == "bstartswith") {
		op = "contains"
	}
	v := g.value(false)
	switch {
	case op == "regex":
		v = g.quoteCond(g.pick("get", "^cr.*", "(create|delete)", "[a-z]+", ".*", "a|b", "k.*-system", "\\d+"))
		if !g.evalMode && g.pct(10) {
			v = g.quoteCond(g.pick("(", "[", "a{2,1}", "*"))
		}
	case op == "bcontains" || op == "bstartswith":
		v = g.pick("6765", "67", "zz", "0A")
	case g.pct(10):
		v = g.pick("val(", "tolower(", "toupper(") + g.fieldRef() + ")"
		if g.evalMode {
			v = "val(" + g.pick("ka.verb", "ka.user.name", "ka.target.namespace") + ")"
		}
	}
	return l + " " + op + " " + v
}

// cond renders a condition of bounded depth.
func (g *docGen) cond(depth int) string {
	if depth <= 0 || g.pct(35) {
		if len(g.macros) > 0 && g.pct(20) {
			return g.macros[g.r.IntN(len(g.macros))]
		}
		if !g.evalMode && g.pct(3) {
			return g.pick("undefined_macro", "ka.verb =", "(ka.verb = get", "ka.verb = get)", "ka.verb = get AND ka.verb = x",
				"ka.verb contains", "not", "ka.verb in ()", "ka.verb = get and ka.verb in (ka.uri)", "ka.verb = 'unterminated")
		}
		return g.check()
	}
	switch g.r.IntN(5) {
	case 0:
		return "not " + g.cond(depth-1)
	case 1:
		return "(" + g.cond(depth-1) + ")"
	case 2:
		return g.cond(depth-1) + " or " + g.cond(depth-1)
	default:
		return g.cond(depth-1) + " and " + g.cond(depth-1)
	}
}

// output renders an output string with fields in every form.
func (g *docGen) output() string {
	var parts []string
	for range 1 + g.r.IntN(5) {
		switch g.r.IntN(6) {
		case 0:
			parts = append(parts, g.pick("text", "user", "a=b", "(x)", "é", "100%%"))
		case 1:
			parts = append(parts, "%("+g.fieldRef()+")")
		default:
			parts = append(parts, g.pick("f=", "", "[", "x:")+"%"+g.fieldRef())
		}
	}
	if !g.evalMode && g.pct(3) {
		parts = append(parts, g.pick("%", "%1", "%ka.nope", "%(ka.verb", "%evt.nope"))
	}
	if g.pct(20) {
		parts = append(parts, g.pick("%ka.verbose", "%evt.time", "%evt.time.iso8601", "%jevt.obj", "%json.obj", "%ka.auditid"))
	}
	return strings.Join(parts, " ")
}

// value lines of a mapping item: key then a rendered value, block or flow.
type kv struct{ k, v string }

// emitItem writes one sequence item whose mapping holds pairs, in block or flow form.
func (g *docGen) emitItem(pairs []kv) {
	if g.pct(12) && !g.evalMode {
		// Flow mapping on one line.
		var ps []string
		for _, p := range pairs {
			ps = append(ps, p.k+": "+p.v)
		}
		g.b.WriteString("- {" + strings.Join(ps, ", ") + "}\n")
		return
	}
	for i, p := range pairs {
		lead := "  "
		if i == 0 {
			lead = "- "
		}
		if strings.HasPrefix(p.v, "\n") {
			g.b.WriteString(lead + p.k + ":" + p.v + "\n")
			continue
		}
		g.b.WriteString(lead + p.k + ": " + p.v + "\n")
	}
}

// text renders a free string (condition, output, desc) in a random YAML style.
func (g *docGen) text(s string) string {
	if g.pct(12) && !strings.Contains(s, "\n") {
		return g.pick("|", ">", "|-", ">-") + "\n    " + s
	}
	if g.pct(6) && !g.evalMode {
		return "&a" + strconv.Itoa(g.r.IntN(3)) + " " + g.scalar(s, false)
	}
	return g.scalar(s, false)
}

// seq renders a sequence of strings in flow or block form.
func (g *docGen) seq(xs []string) string {
	if len(xs) == 0 {
		return "[]"
	}
	if g.pct(50) {
		var ps []string
		for _, x := range xs {
			ps = append(ps, g.scalar(x, true))
		}
		if !g.evalMode && g.pct(4) {
			ps = append(ps, g.oddScalar())
		}
		return "[" + strings.Join(ps, ", ") + "]"
	}
	var b strings.Builder
	for _, x := range xs {
		b.WriteString("\n    - " + g.scalar(x, false))
	}
	if !g.evalMode && g.pct(4) {
		b.WriteString("\n    - " + g.oddScalar())
	}
	return b.String()
}

func (g *docGen) list() {
	name := g.name("list")
	g.items = append(g.items, genItem{"list", name})
	n := g.r.IntN(4)
	items := make([]string, 0, n)
	for range n {
		items = append(items, genValues[g.r.IntN(len(genValues))])
	}
	if len(g.lists) > 0 && g.pct(20) {
		items = append(items, g.lists[g.r.IntN(len(g.lists))])
	}
	pairs := []kv{{"list", g.scalar(name, false)}, {"items", g.seq(items)}}
	if !g.evalMode {
		switch g.r.IntN(20) {
		case 0:
			pairs = pairs[:1]
		case 1:
			pairs[1].v = g.pick("x", "~", "{a: b}", "[[a]]")
		case 2:
			pairs = append(pairs, kv{"append", g.pick("true", "false", "yes", "maybe")})
		case 3:
			pairs = append(pairs, kv{"override", "{items: " + g.pick("append", "replace", "prepend") + "}"})
		case 4:
			pairs = append(pairs, kv{g.pick("macro", "desc", "condition"), "x"})
		}
		if len(g.lists) > 0 && g.pct(20) {
			// Append to (or replace) an earlier list.
			pairs[0].v = g.scalar(g.lists[g.r.IntN(len(g.lists))], false)
			if g.pct(50) {
				pairs = append(pairs, kv{"append", "true"})
			} else {
				pairs = append(pairs, kv{"override", "{items: " + g.pick("append", "replace") + "}"})
			}
		}
	}
	g.emitItem(pairs)
	g.lists = append(g.lists, name)
}

func (g *docGen) macro() {
	name := g.name("macro")
	g.items = append(g.items, genItem{"macro", name})
	pairs := []kv{{"macro", g.scalar(name, false)}, {"condition", g.text(g.cond(2))}}
	if !g.evalMode {
		switch g.r.IntN(20) {
		case 0:
			pairs = pairs[:1]
		case 1:
			pairs[1].v = g.pick("[a]", "~", "''", "{a: b}")
		case 2:
			pairs = append(pairs, kv{"append", g.pick("true", "false")})
		case 3:
			pairs = append(pairs, kv{"override", "{condition: " + g.pick("append", "replace", "prepend") + "}"})
		case 4:
			pairs = append(pairs, kv{g.pick("items", "output", "desc"), "x"})
		}
		if len(g.macros) > 0 && len(pairs) > 1 && g.pct(15) {
			pairs[0].v = g.scalar(g.macros[g.r.IntN(len(g.macros))], false)
			pairs[1].v = g.scalar(g.pick("or ", "and ", "")+g.check(), false)
			if g.pct(50) {
				pairs = append(pairs, kv{"append", "true"})
			} else {
				pairs = append(pairs, kv{"override", "{condition: " + g.pick("append", "replace") + "}"})
			}
		}
	}
	g.emitItem(pairs)
	g.macros = append(g.macros, name)
}

func (g *docGen) exceptions() string {
	var b strings.Builder
	for i := range 1 + g.r.IntN(2) {
		name := "ex" + strconv.Itoa(i)
		if !g.evalMode && g.pct(5) {
			name = "ex0"
		}
		single := g.pct(30)
		nf := 1 + g.r.IntN(2)
		var fields, comps []string
		for range nf {
			f := g.pick("ka.verb", "ka.user.name", "ka.target.namespace", "ka.target.resource", "ka.req.pod.containers.image", "ka.uri", "ka.target.name", "jevt.value[/verb]", "tolower(ka.user.name)")
			fields = append(fields, f)
			comps = append(comps, g.pick("=", "!=", "in", "contains", "startswith", "pmatch", "glob", "endswith", "intersects"))
		}
		b.WriteString("\n    - name: " + name)
		if single {
			b.WriteString("\n      fields: " + fields[0])
			if g.pct(60) {
				b.WriteString("\n      comps: " + g.pick("in", "pmatch", "intersects", "=", "startswith"))
			}
			b.WriteString("\n      values: " + g.seq([]string{"get", "admin", "kube-system"}))
			continue
		}
		b.WriteString("\n      fields: " + g.seqFlow(fields))
		if g.pct(70) {
			cs := comps
			if !g.evalMode && g.pct(5) {
				cs = comps[:len(comps)-1]
			}
			b.WriteString("\n      comps: " + g.seqFlow(cs))
		}
		if g.pct(85) {
			b.WriteString("\n      values:")
			for range g.r.IntN(3) {
				var tuple []string
				for k := range nf {
					if comps[min(k, len(comps)-1)] == "in" || comps[min(k, len(comps)-1)] == "intersects" || comps[min(k, len(comps)-1)] == "pmatch" || g.pct(10) {
						tuple = append(tuple, "["+g.scalar(genValues[g.r.IntN(len(genValues))], true)+"]")
					} else {
						tuple = append(tuple, g.scalar(genValues[g.r.IntN(len(genValues))], true))
					}
				}
				if !g.evalMode && g.pct(5) {
					tuple = tuple[:len(tuple)-1]
				}
				b.WriteString("\n        - [" + strings.Join(tuple, ", ") + "]")
			}
			if strings.HasSuffix(b.String(), "values:") {
				b.WriteString(" []")
			}
		}
	}
	return b.String()
}

func (g *docGen) seqFlow(xs []string) string {
	var ps []string
	for _, x := range xs {
		ps = append(ps, g.scalar(x, true))
	}
	return "[" + strings.Join(ps, ", ") + "]"
}

func (g *docGen) rule() {
	name := g.name("rule")
	g.items = append(g.items, genItem{"rule", name})
	prio := g.pick("EMERGENCY", "ALERT", "CRITICAL", "ERROR", "WARNING", "NOTICE", "INFORMATIONAL", "INFO", "DEBUG", "warning", "Critical", "notice")
	if !g.evalMode && g.pct(3) {
		prio = g.pick("WARN", "high", "5", "~")
	}
	pairs := []kv{
		{"rule", g.scalar(name, false)},
		{"desc", g.text(g.pick("a rule", "detects things", "é ü", "multi word: with colon"))},
		{"condition", g.text(g.cond(3))},
		{"output", g.text(g.output())},
		{"priority", prio},
	}
	// Rules of the syscall source (also the default when source is absent) are judged
	// differently on purpose (docs/engine.md): the loader corpus covers them.
	src := "k8s_audit"
	if !g.evalMode && g.pct(3) {
		src = g.pick("aws_cloudtrail", "k8s_audit ", "K8s_audit")
	}
	pairs = append(pairs, kv{"source", src})
	if g.pct(30) {
		pairs = append(pairs, kv{"tags", g.seq([]string{g.pick("k8s", "a", "b c", "T1234"), g.pick("mitre", "x")})})
	}
	if g.pct(25) {
		pairs = append(pairs, kv{"exceptions", g.exceptions()})
	}
	if g.pct(15) {
		pairs = append(pairs, kv{"enabled", g.pick("true", "false", "yes", "no", "on", "off", "True", "FALSE", "y", "n")})
		if g.evalMode {
			pairs[len(pairs)-1].v = "true"
		}
	}
	if !g.evalMode {
		if g.pct(8) {
			pairs = append(pairs, kv{"skip-if-unknown-filter", g.pick("true", "false")})
		}
		if g.pct(5) {
			pairs = append(pairs, kv{g.pick("warn_evttypes", "capture"), g.pick("true", "false", "maybe")})
		}
		if g.pct(3) {
			pairs = append(pairs, kv{"capture_duration", g.pick("1000", "-1", "x", "1.5")})
		}
		switch g.r.IntN(25) {
		case 0:
			pairs = append(pairs[:1+g.r.IntN(4)], pairs[5:]...)
		case 1:
			pairs[1+g.r.IntN(4)].v = g.pick("~", "''", "[a]", "{a: b}")
		case 2:
			pairs = append(pairs, kv{g.pick("description", "items", "macro", "append_x"), "x"})
		case 3:
			pairs[4].v = g.pick("WARN", "[INFO]")
		}
		if len(g.rules) > 0 && g.pct(20) {
			// Append to, override, or enable an earlier rule (or one that is not there).
			target := g.rules[g.r.IntN(len(g.rules))]
			if g.pct(10) {
				target = g.prefix + "ruleUndefined"
				g.items = append(g.items, genItem{"rule", target})
			}
			pairs = []kv{{"rule", g.scalar(target, false)}}
			switch g.r.IntN(6) {
			case 0:
				pairs = append(pairs, kv{"enabled", g.pick("false", "true")})
			case 1:
				pairs = append(pairs, kv{"condition", g.scalar("and "+g.check(), false)}, kv{"append", "true"})
			case 2:
				pairs = append(pairs, kv{"exceptions", g.exceptions()}, kv{"append", "true"})
			default:
				keys := []string{"condition", "output", "desc", "priority", "tags", "exceptions", "enabled"}
				var ov []string
				for _, k := range keys {
					if !g.pct(35) {
						continue
					}
					op := "replace"
					if (k == "condition" || k == "output" || k == "desc" || k == "tags" || k == "exceptions") && g.pct(50) {
						op = "append"
					}
					if g.pct(3) {
						op = g.pick("prepend", "append")
					}
					ov = append(ov, k+": "+op)
					switch k {
					case "condition":
						pairs = append(pairs, kv{k, g.scalar(g.pick("and ", "or ", "")+g.check(), false)})
					case "output":
						pairs = append(pairs, kv{k, g.scalar(g.output(), false)})
					case "desc":
						pairs = append(pairs, kv{k, "more"})
					case "priority":
						pairs = append(pairs, kv{k, prio})
					case "tags":
						pairs = append(pairs, kv{k, "[t2]"})
					case "exceptions":
						pairs = append(pairs, kv{k, g.exceptions()})
					case "enabled":
						pairs = append(pairs, kv{k, "false"})
					}
				}
				if g.pct(5) && len(pairs) > 1 {
					pairs = pairs[:len(pairs)-1]
				}
				pairs = append(pairs, kv{"override", "{" + strings.Join(ov, ", ") + "}"})
			}
		}
	}
	g.emitItem(pairs)
	g.rules = append(g.rules, name)
}

// document renders one rules document.
func (g *docGen) document() []byte {
	if g.pct(2) && !g.evalMode {
		// Non-sequence documents and junk.
		g.b.WriteString(g.pick("just a string\n", "rule: x\n", "", "# only a comment\n", "~\n", "- ~\n", "- [a]\n", "- x\n", "---\n---\n",
			"- rule: x\n  desc: [unclosed\n", "- rule: a\n - rule: b\n", "\t- rule: tab\n", "- rule: 'x\n", "- list: l\n  items: [a:, b]\n"))
		return []byte(g.b.String())
	}
	if g.pct(5) && !g.evalMode {
		g.b.WriteString("- required_engine_version: " + g.pick("0.10.0", "0.62.0", "0.63.0", "1.0.0", "10", "0.62", "x", "~", "'0.31.0'", "[1]") + "\n")
	}
	if g.pct(3) && !g.evalMode {
		g.solo = true
		g.b.WriteString("- required_plugin_versions:\n  - name: " + g.pick("k8saudit", "json", "container", "nope") +
			"\n    version: " + g.pick("0.1.0", "0.18.0", "0.19.0", "1.0.0", "latest", "0.7.4") + "\n")
		if g.pct(30) {
			g.b.WriteString("    alternatives:\n      - name: " + g.pick("k8saudit-eks", "json", "k8saudit") + "\n        version: 0.1.0\n")
		}
	}
	n := 1 + g.r.IntN(6)
	for i := range n {
		if g.pct(5) && !g.evalMode && i > 0 {
			g.b.WriteString(g.pick("---\n", "# comment\n", "\n", "...\n---\n"))
		}
		switch k := g.r.IntN(10); {
		case k < 2:
			g.list()
		case k < 4:
			g.macro()
		default:
			g.rule()
		}
		if !g.evalMode && g.pct(2) {
			g.b.WriteString(g.pick("- "+g.pick("unknown_item", "foo", "rule")+": x\n", "- ~\n", "- [a, b]\n", "- plain\n", "- {}\n",
				"- list: "+g.prefix+"odd\n  items: ["+g.oddScalar()+", "+g.oddScalar()+"]\n"))
			g.items = append(g.items, genItem{"list", g.prefix + "odd"})
		}
	}
	s := g.b.String()
	if !g.evalMode && g.pct(3) {
		s = strings.ReplaceAll(s, "\n", "\r\n")
	}
	return []byte(s)
}

// cleanup returns a rules file that redefines every item the document may have left behind with a
// harmless, valid definition, so that a failed document does not poison later ones in the same
// Falco run (Falco's collector keeps the items of a failed file).
func cleanupDoc(items []genItem) []byte {
	var b strings.Builder
	seen := map[genItem]bool{}
	for _, it := range items {
		if seen[it] {
			continue
		}
		seen[it] = true
		q := strconv.Quote(it.name)
		switch it.kind {
		case "list":
			fmt.Fprintf(&b, "- list: %s\n  items: []\n", q)
		case "macro":
			fmt.Fprintf(&b, "- macro: %s\n  condition: ka.verb = cleanup\n", q)
		case "rule":
			fmt.Fprintf(&b, "- rule: %s\n  desc: d\n  condition: ka.verb = cleanup\n  output: o\n  priority: DEBUG\n  source: k8s_audit\n  enabled: false\n", q)
		}
	}
	return []byte(b.String())
}
