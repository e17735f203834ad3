package k8saudit

import (
	"errors"
	"fmt"

	"github.com/valyala/fastjson"
)

// ErrNotAuditEvent is returned by Decode for a payload that is neither an audit Event, an
// EventList, nor an array of those. The text is the k8saudit plugin's log line.
var ErrNotAuditEvent = errors.New("data not recognized as a k8s audit event")

// EventTooLargeError is the per-event problem Decoder reports to OnDrop for an event whose
// compact JSON exceeds MaxEventSize. Callers count oversize drops with errors.As; the text is
// the k8saudit plugin's.
type EventTooLargeError struct {
	Size, Max int
}

func (e *EventTooLargeError) Error() string {
	return fmt.Sprintf("event larger than maxEventSize: size=%d", e.Size)
}

// DefaultMaxEventSize is the k8saudit plugin's default maxEventSize (256 KiB).
const DefaultMaxEventSize = 262144

// Decoder splits payloads into audit events exactly as the k8saudit plugin does, parsing each
// payload once. A Decoder is not safe for concurrent use; use one per goroutine.
type Decoder struct {
	// MaxEventSize drops events whose compact JSON is larger, like the plugin's maxEventSize.
	// Zero or negative disables the check (and the eager re-serialisation it needs).
	MaxEventSize int
	// OnDrop is told about every event dropped for a per-event problem. May be nil.
	OnDrop func(err error)
	// Hostname is copied into every event's Hostname (evt.hostname).
	Hostname string

	parser fastjson.Parser
	ev     Event
	num    uint64
}

// Decode splits one payload — a JSON array (each element, recursively), an object with kind
// "EventList" (its items), or kind "Event" — into events and calls fn for each, in order.
//
// Like the plugin, a payload with any unrecognised part is rejected as a whole with
// ErrNotAuditEvent before any event is delivered, while per-event problems (missing or
// unparsable stageTimestamp, compact size above MaxEventSize) drop only that event, reporting
// it to OnDrop (an oversize event as *EventTooLargeError). fn sees a reused *Event that is valid only during the call; an error from fn
// stops decoding and is returned. events counts the events delivered to fn.
func (d *Decoder) Decode(payload []byte, fn func(*Event) error) (events int, err error) {
	root, err := d.parser.ParseBytes(payload)
	if err != nil {
		return 0, err
	}
	if !recognized(root) {
		return 0, ErrNotAuditEvent
	}
	err = d.emit(root, fn, &events)
	return events, err
}

// recognized mirrors the plugin's ParseAuditEventsJSON error paths. The plugin collects all
// events before pushing any and drops the whole payload on error, so validating first and
// emitting second gives the same observable result without buffering events.
func recognized(v *fastjson.Value) bool {
	switch v.Type() {
	case fastjson.TypeArray:
		for _, e := range v.GetArray() {
			if !recognized(e) {
				return false
			}
		}
		return true
	case fastjson.TypeObject:
		switch string(v.GetStringBytes("kind")) {
		case "EventList":
			// The plugin tests GetArray() != nil, which for an empty array depends on
			// fastjson's value-cache history; any array is accepted here, so an empty
			// EventList is consistently zero events rather than sometimes an error.
			items := v.Get("items")
			return items != nil && items.Type() == fastjson.TypeArray
		case "Event":
			return true
		}
	}
	return false
}

func (d *Decoder) emit(v *fastjson.Value, fn func(*Event) error, n *int) error {
	if v.Type() == fastjson.TypeArray {
		for _, e := range v.GetArray() {
			if err := d.emit(e, fn, n); err != nil {
				return err
			}
		}
		return nil
	}
	if string(v.GetStringBytes("kind")) == "EventList" {
		for _, item := range v.GetArray("items") {
			if err := d.single(item, fn, n); err != nil {
				return err
			}
		}
		return nil
	}
	return d.single(v, fn, n)
}

func (d *Decoder) single(v *fastjson.Value, fn func(*Event) error, n *int) error {
	ts, err := stageTimestamp(v)
	if err != nil {
		d.drop(err)
		return nil
	}
	ev := &d.ev
	ev.reset(v)
	if d.MaxEventSize > 0 {
		// The plugin re-serialises every event to store it (reset does too); size is judged
		// on that form.
		if size := len(ev.Raw()); size > d.MaxEventSize {
			d.drop(&EventTooLargeError{Size: size, Max: d.MaxEventSize})
			return nil
		}
	}
	d.num++
	ev.Num = d.num
	ev.Time = ts
	ev.Hostname = d.Hostname
	*n++
	return fn(ev)
}

func (d *Decoder) drop(err error) {
	if d.OnDrop != nil {
		d.OnDrop(err)
	}
}
