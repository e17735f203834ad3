// Package plugindiff compares the engine's field extraction (engine/k8saudit) with the real
// k8saudit 0.18.0 and json 0.7.4 plugins, whose Go code it calls in-process: for one payload,
// both split it into events, and for every event every field the plugins declare is extracted
// by both, with the arguments a rule could give it, and the values compared.
//
// What stands between a plugin and a Falco rule is reproduced here as libsinsp does it: the
// plugin's own payload splitting (ParseAuditEventsPayload, each event re-serialised and size
// checked), one parse per event shared by every extraction of that event (so the plugin's
// in-place unescaping carries from one field to the next, in the same order on both sides),
// an extraction error or an empty list meaning "missing", and strings read up to their first
// NUL. A plugin panic aborts Falco; it is counted, not compared (docs/engine.md).
package plugindiff

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"net/url"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/falco-k8s/falco-k8s/engine/k8saudit"
	"github.com/falcosecurity/plugin-sdk-go/pkg/sdk"
	"github.com/falcosecurity/plugin-sdk-go/pkg/sdk/plugins/source"
	jsonplugin "github.com/falcosecurity/plugins/plugins/json/pkg/json"
	kaplugin "github.com/falcosecurity/plugins/plugins/k8saudit/pkg/k8saudit"
	"github.com/valyala/fastjson"
)

// Diff is one field whose values differ.
type Diff struct {
	Event  int    // 1-based event number within the payload; 0 for the event split itself
	Field  string // field with its argument, as a rule writes it
	Plugin string // the plugin's values (quoted, "<missing>" when none)
	Engine string
}

func (d Diff) String() string {
	return fmt.Sprintf("event %d %s: plugin %s, engine %s", d.Event, d.Field, d.Plugin, d.Engine)
}

// Result counts what one Compare did.
type Result struct {
	Events      int // events both sides produced
	Extractions int // field extractions compared
	Panics      int // plugin extractions that panicked (Falco aborts; not compared)
	// PanicFields counts the panics by field name.
	PanicFields map[string]int
	Diffs       []Diff
}

// Add accumulates r2 into r.
func (r *Result) Add(r2 Result) {
	r.Events += r2.Events
	r.Extractions += r2.Extractions
	r.Panics += r2.Panics
	for k, v := range r2.PanicFields {
		if r.PanicFields == nil {
			r.PanicFields = map[string]int{}
		}
		r.PanicFields[k] += v
	}
	r.Diffs = append(r.Diffs, r2.Diffs...)
}

// decode runs the engine's decoder. A refused payload is 0 events, compared by the caller.
// Built here with the fastjson fork the plugin uses, the parser panics on some truncated
// documents (`{"":[0`) where the engine's own fastjson v1.6.4 returns an error; the plugin
// recovers such a panic and drops the payload, which is what the engine does with the error.
func decode(dec *k8saudit.Decoder, payload []byte, fn func(*k8saudit.Event) error) {
	defer func() {
		if r := recover(); r != nil && !isParserPanic(r) {
			panic(r)
		}
	}()
	dec.Decode(payload, fn) //nolint:errcheck // see above
}

// isParserPanic: a runtime error raised inside fastjson's parser, not the engine's.
func isParserPanic(r any) bool {
	if _, ok := r.(runtime.Error); !ok {
		return false
	}
	pc := make([]uintptr, 32)
	n := runtime.Callers(4, pc)
	frames := runtime.CallersFrames(pc[:n])
	for {
		f, more := frames.Next()
		if strings.HasPrefix(f.Function, "github.com/valyala/fastjson.") {
			return true
		}
		if strings.Contains(f.Function, "engine/k8saudit.") || !more {
			return false
		}
	}
}

// field is one declared plugin field.
type field struct {
	id     uint64
	entry  sdk.FieldEntry
	plugin sdk.Extractor
}

// Compare runs one payload (what a webhook POST or one line of an audit log holds) through the
// plugins and the engine and returns the differences.
func Compare(payload []byte) Result {
	var res Result
	kp := &kaplugin.Plugin{}
	if err := kp.Init("{}"); err != nil {
		panic(err) // the plugin's defaults: cannot fail
	}
	jp := &jsonplugin.Plugin{}
	if err := jp.Init("{}"); err != nil {
		panic(err)
	}
	fields := declared(kp, jp)

	// The plugin's source side: as parseAuditEventsAndPush, a payload error drops every event
	// and an event error (no or bad stageTimestamp, too large) drops that event.
	var pevts []*source.PushEvent
	if evts, err := kp.ParseAuditEventsPayload(payload); err == nil {
		for _, e := range evts {
			if e.Err == nil {
				pevts = append(pevts, e)
			}
		}
	}

	dec := k8saudit.Decoder{MaxEventSize: k8saudit.DefaultMaxEventSize}
	n := 0
	decode(&dec, payload, func(ev *k8saudit.Event) error {
		n++
		if n > len(pevts) {
			return nil
		}
		pe := pevts[n-1]
		if !bytes.Equal(pe.Data, ev.Raw()) {
			res.Diffs = append(res.Diffs, Diff{Event: n, Field: "(payload)", Plugin: strconv.Quote(string(pe.Data)), Engine: strconv.Quote(string(ev.Raw()))})
			return nil
		}
		compareEvent(&res, fields, n, pe.Data, pe.Timestamp, ev)
		return nil
	})
	if n != len(pevts) {
		res.Diffs = append(res.Diffs, Diff{Field: "(events)", Plugin: strconv.Itoa(len(pevts)), Engine: strconv.Itoa(n)})
	}
	res.Events = min(n, len(pevts))
	return res
}

func declared(kp *kaplugin.Plugin, jp *jsonplugin.Plugin) []field {
	var out []field
	for i, e := range kp.Fields() {
		out = append(out, field{id: uint64(i), entry: e, plugin: kp})
	}
	for i, e := range jp.Fields() {
		out = append(out, field{id: uint64(i), entry: e, plugin: jp})
	}
	return out
}

// call is one field with one argument.
type call struct {
	f      *field
	arg    string
	hasArg bool
}

func (c call) name() string {
	if c.hasArg {
		return c.f.entry.Name + "[" + c.arg + "]"
	}
	return c.f.entry.Name
}

func compareEvent(res *Result, fields []field, num int, data []byte, ts time.Time, ev *k8saudit.Event) {
	var calls []call
	for i := range fields {
		f := &fields[i]
		for _, a := range args(f.entry, ev) {
			calls = append(calls, call{f: f, arg: a.arg, hasArg: a.has})
		}
	}
	// Forward, then backward: the second pass reads every field after all the others have
	// unescaped what they touch.
	for pass := 0; pass < 2; pass++ {
		for j := range calls {
			c := calls[j]
			if pass == 1 {
				c = calls[len(calls)-1-j]
			}
			if ts.IsZero() && strings.HasSuffix(c.f.entry.Name, ".rawtime") {
				continue // libsinsp stamps such an event with the time it reads it
			}
			x, err := extractor(c)
			if err != nil {
				continue // libsinsp refuses the argument: no rule can ask for it
			}
			pv, pok, panicked := pluginValues(c, data, uint64(num), ts)
			if panicked {
				res.Panics++
				if res.PanicFields == nil {
					res.PanicFields = map[string]int{}
				}
				res.PanicFields[c.f.entry.Name]++
				continue
			}
			vals, ok := x(ev, nil)
			if ok && len(vals) == 0 {
				ok = false
			}
			res.Extractions++
			ev2 := render(vals, ok)
			pl := renderStrings(pv, pok)
			if pl != ev2 {
				res.Diffs = append(res.Diffs, Diff{Event: num, Field: c.name(), Plugin: pl, Engine: ev2})
			}
		}
	}
}

var (
	xmu    sync.Mutex
	xcache = map[string]k8saudit.Extractor{}
	xerr   = map[string]error{}
)

// extractor compiles the engine's extractor once per field and argument.
func extractor(c call) (k8saudit.Extractor, error) {
	key := c.name()
	if !c.hasArg {
		key += "\x00"
	}
	xmu.Lock()
	defer xmu.Unlock()
	if x, ok := xcache[key]; ok {
		return x, nil
	}
	if err, ok := xerr[key]; ok {
		return nil, err
	}
	x, err := k8saudit.Compile(c.f.entry.Name, c.arg, c.hasArg)
	if err != nil {
		xerr[key] = err
		return nil, err
	}
	xcache[key] = x
	return x, nil
}

func render(vals [][]byte, ok bool) string {
	if !ok {
		return "<missing>"
	}
	s := make([]string, len(vals))
	for i, v := range vals {
		s[i] = string(v)
	}
	return renderStrings(s, true)
}

func renderStrings(vals []string, ok bool) string {
	if !ok {
		return "<missing>"
	}
	q := make([]string, len(vals))
	for i, v := range vals {
		q[i] = strconv.Quote(v)
	}
	return "[" + strings.Join(q, ",") + "]"
}

// pluginValues runs one extraction as libsinsp does: missing on an error or no value, strings
// cut at their first NUL (they cross into C as C strings).
func pluginValues(c call, data []byte, num uint64, ts time.Time) (vals []string, ok, panicked bool) {
	req := &request{id: c.f.id, field: c.f.entry.Name, list: c.f.entry.IsList}
	if c.hasArg {
		req.present = true
		if c.f.entry.Arg.IsIndex {
			req.index, _ = strconv.ParseUint(c.arg, 10, 64)
		} else {
			req.key = c.arg // libsinsp passes arg_index 0 with a key
		}
	}
	stamp := uint64(math.MaxUint64) // the SDK's stamp for a zero time
	if !ts.IsZero() {
		stamp = uint64(ts.UnixNano())
	}
	evt := &eventReader{num: num, ts: stamp, data: data}
	defer func() {
		if recover() != nil {
			vals, ok, panicked = nil, false, true
		}
	}()
	if err := c.f.plugin.Extract(req, evt); err != nil || !req.set {
		return nil, false, false
	}
	for i, v := range req.vals {
		if j := strings.IndexByte(v, 0); j >= 0 {
			req.vals[i] = v[:j]
		}
	}
	return req.vals, len(req.vals) > 0, false
}

// arg is one argument to try.
type arg struct {
	arg string
	has bool
}

// args lists the arguments worth trying on ev: none and a few indexes for index fields, and
// for key fields keys taken from the event (every JSON pointer, query parameter or host path
// it has) plus odd ones.
func args(e sdk.FieldEntry, ev *k8saudit.Event) []arg {
	var out []arg
	if !e.Arg.IsRequired {
		out = append(out, arg{})
	}
	switch {
	case e.Arg.IsIndex:
		for _, i := range []string{"0", "1", "2", "7"} {
			out = append(out, arg{i, true})
		}
	case e.Arg.IsKey:
		for _, k := range keysFor(e.Name, ev) {
			out = append(out, arg{k, true})
		}
	}
	return out
}

func keysFor(name string, ev *k8saudit.Event) []string {
	set := map[string]bool{}
	root := ev.Root()
	switch name {
	case "json.value", "jevt.value":
		for _, k := range []string{"", "/", "//", "/~0", "~1", "kind", "/kind", "/items/0", "/user/groups/0",
			"/user/groups/-1", "/user/groups/01", "/user/groups/+1", "/objectRef/name/0", "/annotations/authorization.k8s.io~1decision"} {
			set[k] = true
		}
		var p fastjson.Parser
		if v, err := p.ParseBytes(ev.Raw()); err == nil {
			pointers(set, "", v, 0)
		}
	case "ka.uri.param":
		for _, k := range []string{"", "pretty", "command", "x", "%zz", "a b"} {
			set[k] = true
		}
		if u := root.GetStringBytes("requestURI"); u != nil {
			if i := bytes.IndexByte(u, '?'); i >= 0 {
				for _, kv := range strings.Split(string(u[i+1:]), "&") {
					k, _, _ := strings.Cut(kv, "=")
					set[k] = true
					if uk, err := url.QueryUnescape(k); err == nil {
						set[uk] = true
					}
				}
			}
		}
	case "ka.req.volume.hostpath":
		for _, k := range []string{"/", "*", "/var/run/docker.sock", "/proc*", "/etc*"} {
			set[k] = true
		}
		for _, v := range root.GetArray("requestObject", "spec", "volumes") {
			if p := v.GetStringBytes("hostPath", "path"); len(p) > 0 {
				set[string(p)] = true
				set[string(p)+"*"] = true
				set[string(p[:len(p)/2])+"*"] = true
			}
		}
	}
	var out []string
	for k := range set {
		// libsinsp reads the argument up to the first ']'; a key holding one cannot be written.
		if !strings.ContainsAny(k, "]\x00") {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	if len(out) > 60 {
		out = out[:60]
	}
	return out
}

// pointers adds the JSON pointer of every value of v down to depth 4, at most 50 in all, keys
// escaped as RFC 6901 says (the plugin unescapes "~1" then "~0").
func pointers(set map[string]bool, prefix string, v *fastjson.Value, depth int) {
	if depth >= 4 || len(set) > 50 {
		return
	}
	switch v.Type() {
	case fastjson.TypeObject:
		o, _ := v.Object()
		o.Visit(func(k []byte, e *fastjson.Value) {
			p := prefix + "/" + strings.ReplaceAll(strings.ReplaceAll(string(k), "~", "~0"), "/", "~1")
			set[p] = true
			pointers(set, p, e, depth+1)
		})
	case fastjson.TypeArray:
		for i, e := range v.GetArray() {
			if i > 2 {
				break
			}
			p := prefix + "/" + strconv.Itoa(i)
			set[p] = true
			pointers(set, p, e, depth+1)
		}
	}
}

// eventReader is the sdk.EventReader libsinsp hands the plugins: the stored payload.
type eventReader struct {
	num, ts uint64
	data    []byte
}

func (e *eventReader) EventNum() uint64      { return e.num }
func (e *eventReader) Timestamp() uint64     { return e.ts }
func (e *eventReader) Reader() io.ReadSeeker { return bytes.NewReader(e.data) }

// request is the sdk.ExtractRequest of one string field.
type request struct {
	id         uint64
	field, key string
	index      uint64
	present    bool
	list       bool
	vals       []string
	set        bool
}

func (r *request) FieldID() uint64                              { return r.id }
func (r *request) FieldType() uint32                            { return sdk.FieldTypeCharBuf }
func (r *request) Field() string                                { return r.field }
func (r *request) ArgKey() string                               { return r.key }
func (r *request) ArgIndex() uint64                             { return r.index }
func (r *request) ArgPresent() bool                             { return r.present }
func (r *request) IsList() bool                                 { return r.list }
func (r *request) WantOffset() bool                             { return false }
func (r *request) SetValueOffset(uint32, uint32)                {}
func (r *request) SetPtr(unsafe.Pointer)                        {}
func (r *request) SetOffsetPtrs(unsafe.Pointer, unsafe.Pointer) {}

// SetValue takes what the SDK's string fields accept: a string, or a []string for a list.
func (r *request) SetValue(v any) {
	switch x := v.(type) {
	case string:
		r.vals = []string{x}
	case []string:
		r.vals = append([]string(nil), x...)
	default:
		panic(fmt.Sprintf("SetValue(%T) on a string field", v)) // as the SDK's type assertion
	}
	r.set = true
}
