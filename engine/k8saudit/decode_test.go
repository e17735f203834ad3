package k8saudit

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
)

func auditEvent(id, ts string) string {
	return `{"kind":"Event","apiVersion":"audit.k8s.io/v1","auditID":"` + id + `","stageTimestamp":"` + ts + `","verb":"get"}`
}

type decoded struct {
	ids   []string
	nums  []uint64
	times []int64
	drops []string
}

func decodeAll(t *testing.T, d *Decoder, payload string) (decoded, int, error) {
	t.Helper()
	var r decoded
	d.OnDrop = func(err error) { r.drops = append(r.drops, err.Error()) }
	n, err := d.Decode([]byte(payload), func(ev *Event) error {
		r.ids = append(r.ids, string(ev.Root().GetStringBytes("auditID")))
		r.nums = append(r.nums, ev.Num)
		r.times = append(r.times, ev.Time)
		return nil
	})
	return r, n, err
}

func TestDecodeShapes(t *testing.T) {
	ts := "2024-01-02T03:04:05.5Z"
	e := func(id string) string { return auditEvent(id, ts) }
	list := func(items ...string) string {
		return `{"kind":"EventList","apiVersion":"audit.k8s.io/v1","metadata":{},"items":[` + strings.Join(items, ",") + `]}`
	}
	for _, c := range []struct {
		name, payload string
		ids           []string
		err           string
		drops         int
	}{
		{"event", e("a"), []string{"a"}, "", 0},
		{"event with whitespace", "\n  " + e("a") + "  \n", []string{"a"}, "", 0},
		{"eventlist", list(e("a"), e("b"), e("c")), []string{"a", "b", "c"}, "", 0},
		{"empty eventlist", list(), nil, "", 0},
		{"array", "[" + e("a") + "," + list(e("b"), e("c")) + "]", []string{"a", "b", "c"}, "", 0},
		{"nested array", "[[" + e("a") + "],[]," + e("b") + "]", []string{"a", "b"}, "", 0},
		{"empty array", "[]", nil, "", 0},
		// EventList items are taken as events whatever their kind.
		{"eventlist items any kind", list(`{"kind":"Other","stageTimestamp":"` + ts + `","auditID":"x"}`), []string{"x"}, "", 0},
		{"eventlist item not an object", list(e("a"), `42`, e("b")), []string{"a", "b"}, "", 1},
		{"missing stageTimestamp", list(e("a"), `{"kind":"Event","auditID":"b"}`, e("c")), []string{"a", "c"}, "", 1},
		{"bad stageTimestamp", list(auditEvent("a", "yesterday"), e("b")), []string{"b"}, "", 1},
		{"numeric stageTimestamp", `{"kind":"Event","auditID":"a","stageTimestamp":5}`, nil, "", 1},
		// Any unrecognised element rejects the whole payload before delivering anything.
		{"array with junk", "[" + e("a") + `,{"kind":"Pod"}]`, nil, "data not recognized as a k8s audit event", 0},
		{"kind not a string", `{"kind": 0}`, nil, "data not recognized as a k8s audit event", 0},
		{"no kind", `{"auditID":"a","stageTimestamp":"` + ts + `"}`, nil, "data not recognized as a k8s audit event", 0},
		{"eventlist without items", `{"kind":"EventList"}`, nil, "data not recognized as a k8s audit event", 0},
		{"eventlist items not array", `{"kind":"EventList","items":{}}`, nil, "data not recognized as a k8s audit event", 0},
		{"scalar", `"Event"`, nil, "data not recognized as a k8s audit event", 0},
		{"invalid json", `{"kind":"Event",`, nil, "cannot parse JSON", 0},
		{"empty", ``, nil, "cannot parse JSON", 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			var d Decoder
			r, n, err := decodeAll(t, &d, c.payload)
			if c.err == "" && err != nil || c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)) {
				t.Fatalf("err = %v, want %q", err, c.err)
			}
			if n != len(r.ids) || !slices.Equal(r.ids, c.ids) {
				t.Errorf("events %q (n=%d), want %q", r.ids, n, c.ids)
			}
			if len(r.drops) != c.drops {
				t.Errorf("drops %q, want %d", r.drops, c.drops)
			}
		})
	}
}

func TestDecodeEventState(t *testing.T) {
	d := Decoder{Hostname: "h1"}
	r, _, err := decodeAll(t, &d, `[`+auditEvent("a", "2024-01-02T03:04:05.123456789Z")+`,`+auditEvent("b", "2024-01-02T03:04:05+02:00")+`]`)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(r.nums, []uint64{1, 2}) || !slices.Equal(r.times, []int64{1704164645123456789, 1704157445000000000}) {
		t.Errorf("nums %v times %v", r.nums, r.times)
	}
	// Numbering continues across payloads and skips dropped events.
	r, _, _ = decodeAll(t, &d, `{"kind":"EventList","items":[{"auditID":"x"},`+auditEvent("c", "2024-01-02T03:04:05Z")+`]}`)
	if !slices.Equal(r.nums, []uint64{3}) {
		t.Errorf("nums %v, want [3]", r.nums)
	}
	if !slices.Equal(r.drops, []string{"can't read stageTimestamp"}) {
		t.Errorf("drops %q", r.drops)
	}
	d.Decode([]byte(auditEvent("z", "2024-01-02T03:04:05Z")), func(ev *Event) error {
		if ev.Hostname != "h1" {
			t.Errorf("hostname %q", ev.Hostname)
		}
		return nil
	})
}

func TestDecodeStopsOnCallbackError(t *testing.T) {
	var d Decoder
	stop := errors.New("stop")
	seen := 0
	n, err := d.Decode([]byte(`[`+auditEvent("a", "2024-01-02T03:04:05Z")+`,`+auditEvent("b", "2024-01-02T03:04:05Z")+`]`), func(*Event) error {
		seen++
		return stop
	})
	if err != stop || seen != 1 || n != 1 {
		t.Errorf("err %v seen %d n %d", err, seen, n)
	}
}

func TestDecodeMaxEventSize(t *testing.T) {
	small := auditEvent("a", "2024-01-02T03:04:05Z")
	big := `{"kind":"Event","auditID":"b","stageTimestamp":"2024-01-02T03:04:05Z","pad":"` + strings.Repeat("x", 300) + `"}`
	payload := "[" + small + ",\n  " + big + "]"

	d := Decoder{MaxEventSize: len(small)} // size is judged on the compact form
	r, _, err := decodeAll(t, &d, payload)
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("event larger than maxEventSize: size=%d", len(big))
	if !slices.Equal(r.ids, []string{"a"}) || !slices.Equal(r.drops, []string{want}) {
		t.Errorf("ids %q drops %q", r.ids, r.drops)
	}
	var tooLarge *EventTooLargeError
	d.OnDrop = func(err error) {
		if !errors.As(err, &tooLarge) {
			t.Errorf("oversize drop %v is not an *EventTooLargeError", err)
		}
	}
	if _, err := d.Decode([]byte(payload), func(*Event) error { return nil }); err != nil || tooLarge == nil || tooLarge.Size != len(big) || tooLarge.Max != len(small) {
		t.Errorf("typed drop %+v, err %v", tooLarge, err)
	}
	d = Decoder{}
	if r, _, _ = decodeAll(t, &d, payload); len(r.ids) != 2 {
		t.Errorf("unlimited decoder delivered %q", r.ids)
	}
}

func TestRawIsCompactSourceOrder(t *testing.T) {
	doc := "{ \"z\" : 1.0e2 ,\n \"a\": [ true, null, \"\\u003c\" ], \"stageTimestamp\":\"2024-01-02T03:04:05Z\", \"kind\":\"Event\" }"
	var d Decoder
	d.Decode([]byte(doc), func(ev *Event) error {
		if got, want := string(ev.Raw()), `{"z":1.0e2,"a":[true,null,"\u003c"],"stageTimestamp":"2024-01-02T03:04:05Z","kind":"Event"}`; got != want {
			t.Errorf("Raw() = %s\nwant    %s", got, want)
		}
		return nil
	})
}

func TestNewEvent(t *testing.T) {
	for _, bad := range []string{``, `  `, `"x"`, `12`, `{`, `[1,]`} {
		if _, err := NewEvent([]byte(bad)); err == nil {
			t.Errorf("NewEvent(%q) succeeded", bad)
		}
	}
	ev := mustEvent(t, ` {"stageTimestamp":"1970-01-01T00:00:01Z"}`)
	if ev.Time != 1e9 || ev.Num != 1 {
		t.Errorf("time %d num %d", ev.Time, ev.Num)
	}
}
