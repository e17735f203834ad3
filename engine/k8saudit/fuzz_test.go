package k8saudit

import (
	"bytes"
	"net/url"
	"strings"
	"testing"

	"github.com/valyala/fastjson"
)

func FuzzDecode(f *testing.F) {
	f.Add([]byte(podEvent), 0)
	f.Add([]byte(`{"kind":"EventList","items":[`+podEvent+`,{"kind":"Event"}]}`), 300)
	f.Add([]byte(`[[{"kind":"Event","stageTimestamp":"2024-01-02T03:04:05Z","auditID":1,"requestObject":[{"spec":[]}]}]]`), 0)
	f.Add([]byte(`{"kind": 0}`), 0)
	samples, _ := sampleEvents(f)
	for _, s := range samples {
		f.Add(s, DefaultMaxEventSize)
	}
	all := compileAll(f)
	for _, extra := range []string{"ka.uri.param[a b]", "ka.req.volume.hostpath[*]", "ka.req.volume.hostpath[]",
		"json.value[]", "json.value[/]", "jevt.value[/requestObject/spec/containers/0]", "ka.req.pod.containers.name[1]"} {
		name, arg, hasArg := splitField(extra)
		x, err := Compile(name, arg, hasArg)
		if err != nil {
			f.Fatal(err)
		}
		all[extra] = x
	}
	f.Fuzz(func(t *testing.T, payload []byte, maxSize int) {
		d := Decoder{MaxEventSize: maxSize % 4096, OnDrop: func(error) {}}
		sentinel := []byte("sentinel")
		_, _ = d.Decode(payload, func(ev *Event) error {
			for name, x := range all {
				out, ok := x(ev, [][]byte{sentinel})
				if &out[0][0] != &sentinel[0] || (!ok && len(out) != 1) || (ok && len(out) < 2) {
					t.Fatalf("%s: broken dst contract (ok=%v len=%d)", name, ok, len(out))
				}
				if f, _ := LookupField(strings.SplitN(name, "[", 2)[0]); ok && !f.List && len(out) != 2 {
					t.Fatalf("%s: non-list field gave %d values", name, len(out)-1)
				}
			}
			return nil
		})
	})
}

// FuzzJSONPointer checks json.value against a direct fastjson walk of the same segments.
func FuzzJSONPointer(f *testing.F) {
	doc := `{"a/b":{"c~d":[1,{"e":"f"}]},"":{"":0},"list":[null,true,"x\u00e9"],"n":-1.5e3}`
	for _, p := range []string{"", "/", "//", "/a~1b", "a~1b/c~0d/1/e", "/list/2", "/list/01", "/list/-0", "/n", "/~", "/~2"} {
		f.Add(doc, p)
	}
	f.Add(`[1,[2,[3]]]`, "/1/1/0")
	f.Fuzz(func(t *testing.T, doc, ptr string) {
		ev, err := NewEvent([]byte(doc))
		if err != nil {
			return
		}
		x, err := Compile("json.value", ptr, true)
		if err != nil {
			t.Fatalf("key arg rejected: %v", err)
		}
		out, ok := x(ev, nil)
		// Values end at the first NUL, as libsinsp reads them.
		cut := func(b []byte) []byte {
			if i := bytes.IndexByte(b, 0); i >= 0 {
				return b[:i]
			}
			return b
		}
		if ptr == "" {
			if !ok || !bytes.Equal(out[0], cut(ev.Raw())) {
				t.Fatalf("empty pointer is not the whole document")
			}
			return
		}
		// Reference: unescape with strings.NewReplacer semantics spelled out the slow way.
		segs := strings.Split(strings.TrimPrefix(ptr, "/"), "/")
		for i, s := range segs {
			segs[i] = strings.ReplaceAll(strings.ReplaceAll(s, "~1", "/"), "~0", "~")
		}
		var p fastjson.Parser
		root, err := p.Parse(doc)
		if err != nil {
			t.Fatalf("document reparses with error: %v", err)
		}
		want := root.Get(segs...)
		if (want != nil) != ok {
			t.Fatalf("pointer %q: found=%v, reference found=%v", ptr, ok, want != nil)
		}
		if !ok {
			return
		}
		var w []byte
		if want.Type() == fastjson.TypeString {
			w = want.GetStringBytes()
		} else {
			w = want.MarshalTo(nil)
		}
		if !bytes.Equal(out[0], cut(w)) {
			t.Fatalf("pointer %q: got %q, want %q", ptr, out[0], w)
		}
	})
}

// FuzzURIParam checks the allocation-free ka.uri.param path against net/url, which is what
// the plugin uses.
func FuzzURIParam(f *testing.F) {
	for _, u := range []string{"/api/v1/pods?a=1&b=%20x+y", "/x?a=%zz&b=1", "/%zz?a=1", "//h/x?a=1", "///x?a=1",
		"a:b?a=1", ":x?a=1", "/x?a=1#f", "/x?a;b=1", "/x?a", "/x?", "*", "/x\x01?a=1", "/x?=1&a"} {
		f.Add(u, "a")
	}
	f.Fuzz(func(t *testing.T, uri, key string) {
		if strings.Count(uri, "&") > 1000 {
			return // net/url caps the parameter count; the plugin's Go version did not
		}
		ev := mustEvent(t, `{"auditID":"a","requestURI":`+quote(uri)+`}`)
		if !strings.Contains(string(ev.Raw()), "requestURI") {
			return
		}
		x, err := Compile("ka.uri.param", key, true)
		if err != nil {
			t.Fatal(err)
		}
		out, ok := x(ev, nil)
		// The event's string is what the plugin parses (JSON may have altered invalid UTF-8).
		s := string(ev.Root().GetStringBytes("requestURI"))
		var want string
		wantOK := false
		if u, err := url.Parse(s); err == nil {
			if q, err := url.ParseQuery(u.RawQuery); err == nil && len(q[key]) > 0 {
				want, wantOK = q[key][0], true
			}
		}
		if ok != wantOK || ok && string(out[0]) != want {
			t.Fatalf("uri %q key %q: got %q %v, net/url %q %v", s, key, out, ok, want, wantOK)
		}
	})
}
