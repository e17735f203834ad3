package k8saudit

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"time"
	"unsafe"

	"github.com/valyala/fastjson"
)

// Event is one Kubernetes audit event as the engine sees it. The Decoder reuses a single
// Event for every event of a stream, so nothing obtained from it may be kept past the callback.
type Event struct {
	Num      uint64 // evt.num, 1-based, assigned by the Decoder
	Time     int64  // ns since epoch from stageTimestamp (RFC3339Nano)
	Hostname string // evt.hostname; set by the engine

	root       *fastjson.Value
	hasAuditID bool // precondition of every ka.* field, as in the k8saudit plugin

	raw      []byte // compact re-serialisation, valid when rawOK
	rawOK    bool
	pretty   bytes.Buffer // json.obj text, valid when prettyOK
	prettyOK bool

	arena arena
	vals  []*fastjson.Value // path-walk results, reused by every extractor call
	tmp   []byte            // staging buffer for MarshalTo before copying into the arena

	parser *fastjson.Parser // only for standalone events made by NewEvent

	// The json plugin's own view of the event: it parses the stored payload (Raw) once per
	// event and walks that parse for every json.*/jevt.* field, so object and array values
	// it renders keep the payload's escapes (e.g. \u0074) where no key lookup touched them.
	jparser fastjson.Parser
	jroot   *fastjson.Value
	jok     bool
}

// NewEvent parses one JSON document into a standalone Event, for tests and tools. Unlike the
// Decoder it accepts any JSON object or array (the json.* fields work on any JSON); Time is
// taken from stageTimestamp when that parses, else left 0. Num is 1.
func NewEvent(data []byte) (*Event, error) {
	data = bytes.TrimLeft(data, " \t\r\n")
	if len(data) == 0 || (data[0] != '{' && data[0] != '[') {
		return nil, errors.New("invalid json format: event must be a JSON object or array")
	}
	ev := &Event{parser: new(fastjson.Parser)}
	root, err := ev.parser.ParseBytes(data)
	if err != nil {
		return nil, err
	}
	ev.reset(root)
	ev.Num = 1
	if ts, err := stageTimestamp(root); err == nil {
		ev.Time = ts
	}
	return ev, nil
}

// reset points the event at a new parsed document and forgets everything derived from the
// previous one. Scratch memory is kept for reuse.
//
// The payload (Raw) is serialised before anything else reads the document: fastjson unescapes
// object keys and strings in place as lookups touch them, and the k8saudit plugin stores the
// event's bytes before any field is extracted. Looking up "auditID" first would store
// "\u0061uditID"-style keys unescaped, unlike Falco's evt.plugininfo and json.* fields.
func (ev *Event) reset(root *fastjson.Value) {
	ev.root = root
	ev.rawOK = false
	ev.prettyOK = false
	ev.jroot, ev.jok = nil, false
	ev.arena.reset()
	ev.Raw()
	ev.hasAuditID = root.Get("auditID") != nil
}

// Root returns the parsed event. It aliases parser memory: read only, valid until ev is reused.
func (ev *Event) Root() *fastjson.Value { return ev.root }

// Raw returns the compact re-serialisation of the event (fastjson MarshalTo: source key order,
// original number text) — the bytes the k8saudit plugin stores as the event payload, which
// json.value[""], json.obj and evt.plugininfo are derived from. It is computed once per event,
// when the event is loaded.
func (ev *Event) Raw() []byte {
	if !ev.rawOK {
		ev.raw = ev.root.MarshalTo(ev.raw[:0])
		ev.rawOK = true
	}
	return ev.raw
}

// jsonRoot is the json plugin's parse of the payload (see jparser), or nil when it fails.
func (ev *Event) jsonRoot() *fastjson.Value {
	if !ev.jok {
		ev.jroot, _ = ev.jparser.ParseBytes(ev.Raw())
		ev.jok = true
	}
	return ev.jroot
}

// prettyJSON is json.obj: the payload indented by encoding/json, as the json plugin does.
func (ev *Event) prettyJSON() ([]byte, bool) {
	if !ev.prettyOK {
		ev.pretty.Reset()
		if err := json.Indent(&ev.pretty, ev.Raw(), "", "  "); err != nil {
			// fastjson re-quotes strings it has unescaped with strconv.Quote, which can
			// emit escapes JSON does not allow; the plugin then fails the same way.
			return nil, false
		}
		ev.prettyOK = true
	}
	return ev.pretty.Bytes(), true
}

// Scratch returns n bytes from the per-event arena. The memory stays valid, and is never
// handed out twice, until ev is reused for another event; callers may write to it.
func (ev *Event) Scratch(n int) []byte { return ev.arena.alloc(n) }

// appendValue appends v the way the plugins stringify JSON: a string's unescaped text,
// anything else as compact JSON.
func (ev *Event) appendValue(dst [][]byte, v *fastjson.Value) [][]byte {
	return append(dst, ev.valueBytes(v))
}

func (ev *Event) valueBytes(v *fastjson.Value) []byte {
	switch v.Type() {
	case fastjson.TypeString:
		b := v.GetStringBytes()
		return b[:len(b):len(b)]
	case fastjson.TypeTrue:
		return litTrue
	case fastjson.TypeFalse:
		return litFalse
	case fastjson.TypeNull:
		return litNull
	}
	return ev.marshal(v)
}

// marshal returns the compact JSON of v in arena memory. Staging through tmp keeps the arena
// free of partially written values when MarshalTo needs more room than we guessed.
func (ev *Event) marshal(v *fastjson.Value) []byte {
	ev.tmp = v.MarshalTo(ev.tmp[:0])
	out := ev.arena.alloc(len(ev.tmp))
	copy(out, ev.tmp)
	return out
}

// appendUint appends the decimal text of u, stored in the arena.
func (ev *Event) appendUint(dst [][]byte, u uint64) [][]byte {
	b := ev.arena.alloc(20)[:0]
	return append(dst, strconv.AppendUint(b, u, 10))
}

// Shared constant values. Capacity equals length so an append by a careless caller copies
// instead of scribbling over the constant.
var (
	litTrue  = []byte("true")[:4:4]
	litFalse = []byte("false")[:5:5]
	litNull  = []byte("null")[:4:4]
)

// arena hands out byte slices from a list of chunks. Chunks are kept across events so that a
// steady stream allocates nothing, and a handed-out slice is never moved or reused before
// reset, which is what lets extractors return arena memory without copying.
type arena struct {
	chunks [][]byte
	cur    int // chunk being filled
	off    int // bytes used in chunks[cur]
}

const arenaChunk = 16 << 10

// arenaKeep bounds the chunk memory an arena keeps across events, so one huge event does not
// pin its scratch memory forever.
const arenaKeep = 1 << 20

func (a *arena) alloc(n int) []byte {
	if len(a.chunks) > 0 {
		if c := a.chunks[a.cur]; len(c)-a.off >= n {
			b := c[a.off : a.off+n : a.off+n]
			a.off += n
			return b
		}
		for i := a.cur + 1; i < len(a.chunks); i++ {
			if len(a.chunks[i]) >= n {
				a.cur, a.off = i, n
				return a.chunks[i][:n:n]
			}
		}
	}
	size := arenaChunk
	if n > size {
		size = n
	}
	a.chunks = append(a.chunks, make([]byte, size))
	a.cur, a.off = len(a.chunks)-1, n
	return a.chunks[a.cur][:n:n]
}

func (a *arena) reset() {
	total := 0
	for i, c := range a.chunks {
		total += len(c)
		if total > arenaKeep {
			clear(a.chunks[i:])
			a.chunks = a.chunks[:i]
			break
		}
	}
	a.cur, a.off = 0, 0
}

// stageTimestamp reads the event time the way the k8saudit plugin does: stageTimestamp must be
// a string in RFC3339Nano form.
func stageTimestamp(root *fastjson.Value) (int64, error) {
	v := root.Get("stageTimestamp")
	if v == nil {
		return 0, errNoStageTimestamp
	}
	s := v.GetStringBytes() // nil for a non-string, which then fails to parse like upstream's
	t, err := time.Parse(time.RFC3339Nano, unsafe.String(unsafe.SliceData(s), len(s)))
	if err != nil {
		// The ParseError keeps the input string, which aliases parser memory; redo the parse
		// on a copy so the error can outlive the payload.
		_, err = time.Parse(time.RFC3339Nano, string(s))
		return 0, err
	}
	if t.IsZero() {
		// The plugin SDK stamps an event whose time is Go's zero time with the time it is
		// read, as Falco shows; libsinsp's clock has microsecond resolution.
		return time.Now().UnixMicro() * 1000, nil
	}
	return t.UnixNano(), nil
}

var errNoStageTimestamp = errors.New("can't read stageTimestamp")

// bstr views b as a string without copying; b must not change while the string is in use.
func bstr(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }
