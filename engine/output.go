package engine

import (
	"bytes"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/falco-k8s/falco-k8s/engine/condition"
	"github.com/falco-k8s/falco-k8s/engine/k8saudit"
)

// outputPart is a literal run or a %field placeholder of a rule's output.
type outputPart struct {
	lit   string
	slot  int // -1 for literals
	width int
	time  bool // evt.time renders as a clock time
}

type outputFormat struct {
	parts []outputPart
	// fields are the output_fields entries: untransformed field key → slot, in first-use order.
	fields []outputField
}

type outputField struct {
	key  string
	slot int
}

type outputError struct {
	msg          string
	unknownField bool
}

// compileOutput compiles an output template with libsinsp's formatter rules: %[width]field with
// the field taken greedily and the longest valid prefix winning, no escape for '%', and a leading
// '*' (Falco always prepends one) meaning "render missing values as <NA>".
func compileOutput(ec *exprCompiler, text string) (*outputFormat, *outputError) {
	text = strings.TrimPrefix(text, "*")
	f := &outputFormat{}
	seen := map[string]bool{}
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			f.parts = append(f.parts, outputPart{lit: lit.String(), slot: -1})
			lit.Reset()
		}
	}
	for i := 0; i < len(text); {
		if text[i] != '%' {
			lit.WriteByte(text[i])
			i++
			continue
		}
		i++
		if i >= len(text) {
			return nil, &outputError{msg: "invalid formatting syntax: formatting cannot end with a %"}
		}
		width := 0
		for i < len(text) && text[i] >= '0' && text[i] <= '9' {
			width = width*10 + int(text[i]-'0')
			i++
		}
		if i >= len(text) {
			return nil, &outputError{msg: "invalid formatting syntax: formatting cannot end with a number"}
		}
		rest := text[i:]
		var slot, used int
		var cerr *outputError
		if op, n, err := condition.ParseOperandPrefix(rest); err == nil && n > 0 {
			slot, used, cerr = outputSlot(ec, rest, op, n)
		} else {
			// A bare name before a bracket the parser refuses ("%ka.verb[1", "%ka.uri.param[]"):
			// the formatter takes the longest prefix that is a field on its own.
			slot, used, cerr = prefixSlot(ec, rest, nameLen(rest)+1)
		}
		if cerr != nil {
			return nil, cerr
		}
		flush()
		s := ec.rs.slots[slot]
		f.parts = append(f.parts, outputPart{slot: slot, width: width, time: s.key == "evt.time"})
		if !seen[s.outKey] {
			seen[s.outKey] = true
			f.fields = append(f.fields, outputField{key: s.outKey, slot: s.outSlot})
		}
		i += used
	}
	flush()
	return f, nil
}

// outputSlot compiles the placeholder, retrying ever shorter prefixes when the greedy field is
// unknown (so "%ka.verbose" is ka.verb followed by "ose").
func outputSlot(ec *exprCompiler, rest string, op condition.Operand, n int) (slot, used int, oerr *outputError) {
	if id, err := ec.operandSlot(op); err == nil {
		return id, n, nil
	} else if ce, ok := err.(*compileError); ok && !ce.unknownField && !plainField(rest, op) {
		// Falco reports every field problem in an output (a bad or missing argument as much
		// as an unknown field) with the same words, which skip-if-unknown-filter downgrades.
		return 0, 0, &outputError{msg: errOutputUnknownField, unknownField: true}
	}
	// A plain %field whose argument libsinsp's formatter refuses is the longest prefix that
	// stands as a field without it, the rest literal text: "%ka.verb[x]" is ka.verb then "[x]",
	// "%ka.req.pod.containers.image[01]" the whole list then "[01]", "%ka.uri.param[]" ka.uri
	// then ".param[]" (observed with Falco 0.44.1). The parenthesised form stays an error.
	return prefixSlot(ec, rest, n)
}

// prefixSlot compiles the longest prefix of rest shorter than n that is a field on its own.
func prefixSlot(ec *exprCompiler, rest string, n int) (slot, used int, oerr *outputError) {
	for l := n - 1; l > 0; l-- {
		op2, m, err := condition.ParseOperandPrefix(rest[:l])
		if err != nil || m != l {
			continue
		}
		if id, err := ec.operandSlot(op2); err == nil {
			return id, l, nil
		}
	}
	return 0, 0, &outputError{msg: errOutputUnknownField, unknownField: true}
}

// nameLen is the length of the field-name characters rest starts with.
func nameLen(rest string) int {
	for i := 0; i < len(rest); i++ {
		c := rest[i]
		if !(c == '.' || c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return i
		}
	}
	return len(rest)
}

// plainField: the placeholder is a bare field name, maybe with an argument (no parentheses,
// no transformer).
func plainField(rest string, op condition.Operand) bool {
	_, ok := op.(*condition.FieldExpr)
	return ok && rest != "" && rest[0] != '('
}

// errOutputUnknownField is Falco 0.44's message for an output naming a field no plugin provides:
// always these words, whatever the field (libsinsp's formatter cuts its own message short).
const errOutputUnknownField = "unknown filter: unexpected token after '"

// maxListRender caps a rendered list field, as libsinsp does.
const maxListRender = 1023

// Alert is one rule match, with everything Falco puts in its text line and JSON object.
type Alert struct {
	Time     time.Time
	Rule     string
	Priority Priority
	Source   string
	Tags     []string
	Hostname string
	// Message is the rendered rule output; Output is the full text line with the time and
	// priority prefix.
	Message string
	Output  string
	// Fields are the output_fields: every placeholder's untransformed value, keyed as written,
	// sorted by key. Values are nil (missing), string, []string, uint64, bool or int64 (evt.time).
	Fields []AlertField
}

// AlertField is one output_fields entry.
type AlertField struct {
	Key   string
	Value any
}

// Alert renders r for the event passed to the current Match call.
func (e *Evaluator) Alert(r *Rule, hostname string) *Alert {
	ev := e.ev
	// libsinsp holds the time as uint64: a pre-1970 stamp renders as a date in 2554.
	u := uint64(ev.Time)
	ts := time.Unix(int64(u/1e9), int64(u%1e9))
	var b strings.Builder
	for _, p := range r.output.parts {
		if p.slot < 0 {
			b.WriteString(p.lit)
			continue
		}
		s := renderValue(e, p)
		if p.width > 0 {
			if len(s) > p.width {
				s = s[:p.width]
			} else {
				s += strings.Repeat(" ", p.width-len(s))
			}
		}
		b.WriteString(s)
	}
	msg := b.String()
	a := &Alert{
		Time: ts, Rule: r.Name, Priority: r.Priority, Source: r.Source, Tags: r.Tags, Hostname: hostname,
		Message: msg,
		Output:  ts.Local().Format("15:04:05.000000000") + ": " + r.Priority.String() + " " + msg,
	}
	a.Fields = append(a.Fields, AlertField{Key: "evt.time", Value: ev.Time})
	for _, f := range r.output.fields {
		switch f.key {
		case "evt.time":
			continue
		case "evt.time.s", "evt.time.iso8601", "evt.datetime", "evt.datetime.s":
			// libsinsp's JSON value of every formatted time field is the raw timestamp, as
			// for evt.time; only the text output shows the formatted string.
			a.Fields = append(a.Fields, AlertField{Key: f.key, Value: ev.Time})
			continue
		}
		a.Fields = append(a.Fields, AlertField{Key: f.key, Value: typedValue(e, f.slot)})
	}
	sort.Slice(a.Fields, func(i, j int) bool { return a.Fields[i].Key < a.Fields[j].Key })
	return a
}

func renderValue(e *Evaluator, p outputPart) string {
	vals, ok := e.fresh(p.slot)
	if !ok {
		return "<NA>"
	}
	s := e.rs.slots[p.slot]
	if p.time {
		if ns, ok := parseUint(vals[0]); ok {
			// Seconds and nanoseconds apart: a stamp past 2262 does not fit int64 nanoseconds.
			return time.Unix(int64(ns/1e9), int64(ns%1e9)).Local().Format("15:04:05.000000000")
		}
	}
	if !s.list {
		return string(vals[0])
	}
	var b strings.Builder
	b.WriteByte('(')
	for _, v := range vals {
		// libsinsp puts the comma only once something has been written: leading empty
		// values vanish from the text (["", "x"] is "(x)", ["a", "", ""] is "(a,,)").
		if b.Len() > 1 {
			b.WriteByte(',')
		}
		b.Write(v)
	}
	b.WriteByte(')')
	out := b.String()
	if len(out) > maxListRender {
		out = out[:maxListRender]
	}
	return out
}

func typedValue(e *Evaluator, slot int) any {
	vals, ok := e.fresh(slot)
	if !ok {
		return nil
	}
	s := e.rs.slots[slot]
	if s.list {
		out := make([]string, len(vals))
		for i, v := range vals {
			out[i] = string(v)
		}
		return out
	}
	switch s.typ {
	case k8saudit.TypeUint64:
		if n, ok := parseUint(vals[0]); ok {
			return n
		}
	case k8saudit.TypeAbsTime:
		if n, ok := parseUint(vals[0]); ok {
			return int64(n)
		}
	case k8saudit.TypeBool:
		return string(vals[0]) == "true"
	}
	return string(vals[0])
}

// JSON renders Falco's JSON alert: one line, keys sorted as nlohmann::json prints them, invalid
// UTF-8 replaced.
func (a *Alert) JSON() []byte {
	var b bytes.Buffer
	b.WriteString(`{"hostname":`)
	writeJSONString(&b, a.Hostname)
	b.WriteString(`,"output":`)
	writeJSONString(&b, a.Output)
	b.WriteString(`,"output_fields":{`)
	for i, f := range a.Fields {
		if i > 0 {
			b.WriteByte(',')
		}
		writeJSONString(&b, f.Key)
		b.WriteByte(':')
		switch v := f.Value.(type) {
		case nil:
			b.WriteString("null")
		case string:
			writeJSONString(&b, v)
		case []string:
			b.WriteByte('[')
			for j, s := range v {
				if j > 0 {
					b.WriteByte(',')
				}
				writeJSONString(&b, s)
			}
			b.WriteByte(']')
		case uint64:
			b.WriteString(strconv.FormatUint(v, 10))
		case int64:
			b.WriteString(strconv.FormatInt(v, 10))
		case bool:
			b.WriteString(strconv.FormatBool(v))
		}
	}
	b.WriteString(`},"priority":`)
	writeJSONString(&b, a.Priority.String())
	b.WriteString(`,"rule":`)
	writeJSONString(&b, a.Rule)
	b.WriteString(`,"source":`)
	writeJSONString(&b, a.Source)
	b.WriteString(`,"tags":[`)
	for i, t := range a.Tags {
		if i > 0 {
			b.WriteByte(',')
		}
		writeJSONString(&b, t)
	}
	b.WriteString(`],"time":`)
	writeJSONString(&b, a.Time.UTC().Format(AlertTimeLayout))
	b.WriteByte('}')
	return b.Bytes()
}

func writeJSONString(b *bytes.Buffer, s string) {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	// nlohmann's dump (Falco's JSON writer): only '"', '\\' and control characters are escaped;
	// <, >, & and U+2028/U+2029 are written as they are, unlike encoding/json. Written by hand
	// because alert rendering is on the hot path of every matching event.
	const hex = "0123456789abcdef"
	b.WriteByte('"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		b.WriteString(s[start:i])
		switch c {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		case '\b':
			b.WriteString(`\b`)
		case '\f':
			b.WriteString(`\f`)
		default:
			b.WriteString(`\u00`)
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&0xf])
		}
		start = i + 1
	}
	b.WriteString(s[start:])
	b.WriteByte('"')
}
