package webhook

import (
	"bytes"
	"net/http"
	"testing"
)

// The queue accounts len(Body); the memory a queued batch pins is cap(Body). Reading a body of
// known length must not double its allocation.
func TestBodyCapacityMatchesLength(t *testing.T) {
	f := newFixture(100, "")
	var evs []string
	for i := 0; i < 60; i++ {
		evs = append(evs, event("a", 500))
	}
	body := []byte(eventList("v1", evs...))
	if len(body) > 64<<10 {
		t.Fatalf("test body too large: %d", len(body))
	}
	for _, name := range []string{"identity", "gzip"} {
		hdr := map[string]string{}
		in := body
		if name == "gzip" {
			in = gz(string(body))
			hdr["Content-Encoding"] = "gzip"
		}
		if rec := f.do(http.MethodPost, in, hdr); rec.Code != 200 {
			t.Fatalf("%s: code %d: %s", name, rec.Code, rec.Body.String())
		}
		b := <-f.q.C()
		if !bytes.Equal(b.Body, body) {
			t.Fatalf("%s: body differs", name)
		}
		if c := cap(b.Body); c > len(b.Body)+len(b.Body)/3+512 {
			t.Errorf("%s: body of %d bytes pins %d bytes of memory (queue accounts the length only)", name, len(b.Body), c)
		}
		f.q.Done(b)
	}
}
