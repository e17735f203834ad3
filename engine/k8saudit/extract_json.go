package k8saudit

import (
	"strings"
	"time"
)

const pluginJSON = "json"

// jsonFields is the json plugin's field list (json.*, then the jevt.* aliases), followed by
// two jevt.* fields of Falco's pre-plugin built-in implementation kept as an extension.
func jsonFields() []fieldDef {
	f := func(name, desc string, arg ArgMode, b builder) fieldDef {
		return fieldDef{Field{Name: name, Desc: desc, Type: TypeString, Arg: arg, Plugin: pluginJSON}, b}
	}
	const valueDesc = "Extracts a value from a JSON-encoded input. Syntax is json.value[<json pointer>], where <json pointer> is a json pointer (see https://datatracker.ietf.org/doc/html/rfc6901); the leading / is optional and an empty pointer yields the whole document"
	fs := []fieldDef{
		f("json.value", valueDesc, ArgKey, jsonValue),
		f("json.obj", "The full json message as a text string, indented", ArgNone, jsonObj),
		f("json.rawtime", "The time of the event, identical to evt.rawtime", ArgNone, jsonRawtime),
		f("jevt.value", "Alias for json.value, provided for backwards compatibility", ArgKey, jsonValue),
		f("jevt.obj", "Alias for json.obj, provided for backwards compatibility", ArgNone, jsonObj),
		f("jevt.rawtime", "Alias for json.rawtime, provided for backwards compatibility", ArgNone, jsonRawtime),
		f("jevt.time", "Compatibility extension, not a json plugin field (Falco rejects it): the event timestamp as a time string that includes the nanosecond part, like evt.time", ArgNone, fixed(timeText(false, true))),
		f("jevt.time.iso8601", "Compatibility extension, not a json plugin field (Falco rejects it): the event timestamp in ISO 8601 format, like evt.time.iso8601", ArgNone, fixed(isoText)),
	}
	fs[6].Deprecated = true
	fs[7].Deprecated = true
	return fs
}

// jsonValue is json.value[ptr]. The pointer is split once here: one leading '/' is dropped,
// the rest split on '/', and each segment unescaped "~1" then "~0", in the plugin's order.
// Each segment is a member name on objects and a decimal index on arrays (fastjson's Get,
// which accepts what strconv.Atoi does). An empty pointer yields the whole document.
func jsonValue(arg string, _ int) Extractor {
	if arg == "" {
		// The plugin marshals its own parse of the payload, which earlier json.value lookups
		// of this event have unescaped in part.
		return func(ev *Event, dst [][]byte) ([][]byte, bool) {
			v := ev.jsonRoot()
			if v == nil {
				return dst, false
			}
			return append(dst, ev.marshal(v)), true
		}
	}
	segs := splitPointer(arg)
	return func(ev *Event, dst [][]byte) ([][]byte, bool) {
		v := ev.jsonRoot()
		if v == nil {
			return dst, false
		}
		for _, s := range segs {
			if v = v.Get(s); v == nil {
				return dst, false
			}
		}
		return ev.appendValue(dst, v), true
	}
}

func splitPointer(ptr string) []string {
	ptr = strings.TrimPrefix(ptr, "/")
	segs := strings.Split(ptr, "/")
	for i, s := range segs {
		s = strings.ReplaceAll(s, "~1", "/")
		segs[i] = strings.ReplaceAll(s, "~0", "~")
	}
	return segs
}

func jsonObj(string, int) Extractor {
	return func(ev *Event, dst [][]byte) ([][]byte, bool) {
		b, ok := ev.prettyJSON()
		if !ok {
			return dst, false
		}
		return append(dst, b[:len(b):len(b)]), true
	}
}

func jsonRawtime(string, int) Extractor {
	return func(ev *Event, dst [][]byte) ([][]byte, bool) {
		// The plugin prints the SDK's uint64 timestamp.
		return ev.appendUint(dst, uint64(ev.Time)), true
	}
}

// evtFields are libsinsp's generic event fields that apply to plugin events.
func evtFields() []fieldDef {
	f := func(name, desc string, t Type, b Extractor) fieldDef {
		return fieldDef{Field{Name: name, Desc: desc, Type: t}, fixed(b)}
	}
	return []fieldDef{
		f("evt.num", "event number.", TypeUint64, func(ev *Event, dst [][]byte) ([][]byte, bool) {
			return ev.appendUint(dst, ev.Num), true
		}),
		f("evt.time", "event timestamp as a time string that includes the nanosecond part (value: ns since epoch; rendered HH:MM:SS.nnnnnnnnn in local time).", TypeAbsTime, rawtime),
		f("evt.time.s", "event timestamp as a time string with no nanoseconds.", TypeString, timeText(false, false)),
		f("evt.time.iso8601", "event timestamp in ISO 8601 format, including nanoseconds and time zone offset (in UTC).", TypeString, isoText),
		f("evt.datetime", "event timestamp as a time string that includes the date.", TypeString, timeText(true, true)),
		f("evt.datetime.s", "event timestamp as a datetime string with no nanoseconds.", TypeString, timeText(true, false)),
		f("evt.rawtime", "absolute event timestamp, i.e. nanoseconds from epoch.", TypeUint64, rawtime),
		f("evt.rawtime.s", "integer part of the event timestamp (e.g. seconds since epoch).", TypeUint64, func(ev *Event, dst [][]byte) ([][]byte, bool) {
			return ev.appendUint(dst, uint64(ev.Time)/1e9), true
		}),
		f("evt.rawtime.ns", "fractional part of the absolute event timestamp.", TypeUint64, func(ev *Event, dst [][]byte) ([][]byte, bool) {
			// libsinsp prints this field zero-padded to 9 digits.
			return append(dst, appendPad(ev.Scratch(9)[:0], uint64(ev.Time)%1e9, 9)), true
		}),
		f("evt.source", "the name of the source that produced the event.", TypeString, constantValue("k8s_audit")),
		f("evt.pluginname", "if the event comes from a plugin-defined event source, the name of the plugin that generated it.", TypeString, constantValue(pluginK8sAudit)),
		f("evt.plugininfo", "if the event comes from a plugin-defined event source, a summary of the event as formatted by the plugin (for k8saudit, the event JSON; control characters and ill-formed UTF-8 shown as U+FFFD).", TypeString, pluginInfo),
		f("evt.is_async", "'true' for asynchronous events, 'false' otherwise.", TypeBool, constantValue("false")),
		f("evt.asynctype", "If the event is asynchronous, the type of the event (e.g. 'container').", TypeString, func(ev *Event, dst [][]byte) ([][]byte, bool) {
			return dst, false // audit events are never asynchronous meta-events
		}),
		f("evt.hostname", "The hostname of the underlying host (set by the engine).", TypeString, hostname),
	}
}

// pluginInfo is the payload as Falco shows it for evt.plugininfo: control characters and
// ill-formed UTF-8 replaced (appendPrintable). Valid JSON text rarely has either, so the
// payload is returned as it is unless it needs the rewrite.
func pluginInfo(ev *Event, dst [][]byte) ([][]byte, bool) {
	raw := ev.Raw()
	for _, c := range raw {
		if c < 0x20 || c >= 0x7f {
			// Replacements can outgrow the scratch; append then moves to the heap.
			out := appendPrintable(ev.Scratch(len(raw))[:0], raw)
			return append(dst, out[:len(out):len(out)]), true
		}
	}
	return append(dst, raw[:len(raw):len(raw)]), true
}

// hostname copies Event.Hostname into the arena: values are []byte and a string's bytes
// cannot be aliased safely.
func hostname(ev *Event, dst [][]byte) ([][]byte, bool) {
	b := ev.Scratch(len(ev.Hostname))
	copy(b, ev.Hostname)
	return append(dst, b), true
}

// fixed is the builder of a field without argument.
func fixed(e Extractor) builder { return func(string, int) Extractor { return e } }

func rawtime(ev *Event, dst [][]byte) ([][]byte, bool) {
	return ev.appendUint(dst, uint64(ev.Time)), true
}

func constantValue(s string) Extractor {
	v := []byte(s)
	v = v[:len(v):len(v)]
	return func(ev *Event, dst [][]byte) ([][]byte, bool) { return append(dst, v), true }
}

func timeText(date, nanos bool) Extractor {
	return func(ev *Event, dst [][]byte) ([][]byte, bool) {
		return append(dst, AppendTime(ev.Scratch(32)[:0], ev.Time, date, nanos)), true
	}
}

func isoText(ev *Event, dst [][]byte) ([][]byte, bool) {
	return append(dst, AppendISO8601(ev.Scratch(40)[:0], ev.Time)), true
}

// AppendTime appends ns (nanoseconds since the epoch) as libsinsp's ts_to_string renders
// evt.time and friends: "HH:MM:SS" with ".nnnnnnnnn" when nanos, prefixed by "YYYY-MM-DD "
// when date. Like libsinsp it uses the host's local time zone (TZ), taking the UTC offset in
// force at formatting time rather than at the event's time.
func AppendTime(dst []byte, ns int64, date, nanos bool) []byte {
	_, off := time.Now().Zone()
	u := uint64(ns)
	t := time.Unix(int64(u/1e9)+int64(off), 0).UTC()
	if date {
		y, m, d := t.Date()
		dst = appendPad(dst, uint64(y), 4)
		dst = append(dst, '-')
		dst = appendPad(dst, uint64(m), 2)
		dst = append(dst, '-')
		dst = appendPad(dst, uint64(d), 2)
		dst = append(dst, ' ')
	}
	h, mi, s := t.Clock()
	dst = appendPad(dst, uint64(h), 2)
	dst = append(dst, ':')
	dst = appendPad(dst, uint64(mi), 2)
	dst = append(dst, ':')
	dst = appendPad(dst, uint64(s), 2)
	if nanos {
		dst = append(dst, '.')
		dst = appendPad(dst, u%1e9, 9)
	}
	return dst
}

// AppendISO8601 appends ns as libsinsp's evt.time.iso8601: always UTC, nanoseconds, and a
// "+0000" offset (strftime's %z), e.g. 2024-01-02T03:04:05.123456789+0000.
func AppendISO8601(dst []byte, ns int64) []byte {
	u := uint64(ns)
	t := time.Unix(int64(u/1e9), 0).UTC()
	y, m, d := t.Date()
	h, mi, s := t.Clock()
	dst = appendPad(dst, uint64(y), 4)
	dst = append(dst, '-')
	dst = appendPad(dst, uint64(m), 2)
	dst = append(dst, '-')
	dst = appendPad(dst, uint64(d), 2)
	dst = append(dst, 'T')
	dst = appendPad(dst, uint64(h), 2)
	dst = append(dst, ':')
	dst = appendPad(dst, uint64(mi), 2)
	dst = append(dst, ':')
	dst = appendPad(dst, uint64(s), 2)
	dst = append(dst, '.')
	dst = appendPad(dst, u%1e9, 9)
	return append(dst, "+0000"...)
}

// appendPad appends v in decimal, left-padded with zeros to width digits.
func appendPad(dst []byte, v uint64, width int) []byte {
	var buf [20]byte
	i := len(buf)
	for v >= 10 || len(buf)-i < width-1 {
		i--
		buf[i] = byte('0' + v%10)
		v /= 10
	}
	i--
	buf[i] = byte('0' + v)
	return append(dst, buf[i:]...)
}
