package follower

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/falco-k8s/falco-k8s/agent/status"
	"github.com/falco-k8s/falco-k8s/internal/atomicfile"
	"github.com/falco-k8s/falco-k8s/internal/testregistry"
)

// writePins replaces the pins file as the charm does (atomic rename).
func writePins(t testing.TB, path string, pins ...Pin) {
	t.Helper()
	b, err := WritePins(pins)
	if err != nil {
		t.Fatal(err)
	}
	if err := atomicfile.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func pinnedOpts(pinsFile string) func(*Options) {
	return func(o *Options) { o.Mode, o.PinsFile = ModePinned, pinsFile }
}

func (e *env) source() status.Source {
	e.t.Helper()
	for _, s := range e.a.Status().Sources {
		if s.Name == SourceName {
			return s
		}
	}
	return status.Source{}
}

// noTagRequests fails when the registry was asked for the tag: pinned mode fetches by digest.
func noTagRequests(t *testing.T, reg *testregistry.Registry) {
	t.Helper()
	for _, l := range reg.Log() {
		if strings.HasSuffix(l, "/manifests/1") {
			t.Fatalf("pinned mode asked for the tag: %v", reg.Log())
		}
	}
}

func TestPinnedFetchesExactlyThePinnedDigest(t *testing.T) {
	reg := testregistry.New(t, testregistry.Options{})
	p := newPusher(t, reg, "", "")
	d1 := p.push("rules/k8s:1", map[string]string{"k8s.yaml": genRule("v1")})
	d2 := p.push("rules/k8s:1", map[string]string{"k8s.yaml": genRule("v2")}) // the tag moved on
	pins := filepath.Join(t.TempDir(), "pins", "pins.json")
	ref := reg.Host + "/rules/k8s:1"

	// No pins file yet: nothing is fetched, and /status says what the unit waits for.
	reg.Reset()
	e := newEnv(t, envOpts{reg: reg, follow: pinnedOpts(pins)})
	waitFor(t, "waiting in status", func() bool {
		return strings.Contains(e.source().PinError, "waiting for the leader's published rules: no pins file yet")
	})
	if n := reg.Requests(); n != 0 {
		t.Fatalf("%d registry requests without pins: %v", n, reg.Log())
	}

	// The pin names the older digest: exactly that one is applied, although the tag is at v2.
	writePins(t, pins, Pin{Ref: ref, Digest: d1})
	e.waitAccepted(d1)
	noTagRequests(t, reg)
	if g := e.fire(3); g["v1"] != 3 {
		t.Fatalf("alerts %v", g)
	}
	waitFor(t, "pinned status", func() bool { return e.source().Digest == d1 })
	s := e.source()
	if s.Mode != ModePinned || s.PinnedDigest != d1 || s.PinError != "" || s.Digest != d1 || len(s.Files) != 1 || s.Files[0] != "k8s.yaml" {
		t.Fatalf("source %+v", s)
	}

	// Steady state: no registry request at all, however long, with the pins file rewritten
	// unchanged and with a sync.
	reg.Reset()
	time.Sleep(500 * time.Millisecond) // 5 intervals
	writePins(t, pins, Pin{Ref: ref, Digest: d1})
	res := e.f.Sync(context.Background(), false)
	if len(res) != 1 || res[0].Result != ResultUnchanged || res[0].Digest != d1 {
		t.Fatalf("sync %+v", res)
	}
	time.Sleep(200 * time.Millisecond)
	if n := reg.Requests(); n != 0 {
		t.Fatalf("%d registry requests in steady state: %v", n, reg.Log())
	}
	gen := e.a.Status().Ruleset.Generation

	// A new pin applies without a restart, by digest.
	writePins(t, pins, Pin{Ref: ref, Digest: d2})
	e.waitAccepted(d2)
	noTagRequests(t, reg)
	if g := e.fire(3); g["v2"] != 3 {
		t.Fatalf("alerts %v", g)
	}
	if got := e.a.Status().Ruleset.Generation; got != gen+1 {
		t.Fatalf("generation %d, want %d", got, gen+1)
	}
	t.Logf("pinned mode: %d registry requests to apply a new digest: %v", len(reg.Log()), reg.Log())
}

func TestPinnedRefusedOrMissingKeepsLastGood(t *testing.T) {
	reg := testregistry.New(t, testregistry.Options{})
	p := newPusher(t, reg, "", "")
	d1 := p.push("rules/k8s:1", map[string]string{"k8s.yaml": genRule("v1")})
	bad := p.push("rules/k8s:1", map[string]string{"k8s.yaml": genRule("v2") + brokenRule})
	pins := filepath.Join(t.TempDir(), "pins.json")
	ref := reg.Host + "/rules/k8s:1"
	writePins(t, pins, Pin{Ref: ref, Digest: d1})
	e := newEnv(t, envOpts{reg: reg, follow: pinnedOpts(pins)})
	e.waitAccepted(d1)

	absent := "sha256:" + strings.Repeat("ab", 32)
	tests := []struct {
		name string
		pins string // file content
		want []string
	}{
		{"invalid rules", "", []string{"pinned digest " + bad + " not applied", "LOAD_ERR_COMPILE_CONDITION", "last good rules keep running"}},
		{"digest not in the registry", "", []string{"pinned digest " + absent + " not applied"}},
		{"invalid pins file", `{"pins":[{"ref":"` + ref + `","digest":"sha256:xyz"}]}`, []string{"pins file " + pins, "invalid digest", "keeping the pins read before"}},
		{"no pin for the reference", `{"pins":[]}`, []string{"names no digest for this reference"}},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			switch i {
			case 0:
				writePins(t, pins, Pin{Ref: ref, Digest: bad})
			case 1:
				writePins(t, pins, Pin{Ref: ref, Digest: absent})
			default:
				if err := atomicfile.WriteFile(pins, []byte(tc.pins), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			waitFor(t, "pin error in status", func() bool {
				pe := e.source().PinError
				for _, w := range tc.want {
					if !strings.Contains(pe, w) {
						return false
					}
				}
				return true
			})
			if d := e.runningDigest(); d != d1 {
				t.Fatalf("running %s, want the last good %s", d, d1)
			}
			if g := e.fire(2); g["v1"] != 2 {
				t.Fatalf("alerts %v", g)
			}
		})
	}
	// An invalid pins file rewritten again and again is reported once, not piled up.
	for range 3 {
		if err := atomicfile.WriteFile(pins, []byte(`{"pins":`), 0o644); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond) // past the 50ms debounce: one event each
	}
	waitFor(t, "pins file error", func() bool { return strings.Contains(e.source().PinError, "unexpected EOF") })
	if pe := e.source().PinError; strings.Count(pe, "pins file ") != 1 {
		t.Fatalf("pin error %q", pe)
	}
	// The refused digest is not fetched again while it stays pinned.
	writePins(t, pins, Pin{Ref: ref, Digest: bad})
	waitFor(t, "refused again", func() bool { return strings.Contains(e.source().PinError, bad) })
	reg.Reset()
	writePins(t, pins, Pin{Ref: ref, Digest: bad}, Pin{Ref: reg.Host + "/other:1", Digest: absent})
	time.Sleep(300 * time.Millisecond)
	if n := reg.Requests(); n != 0 {
		t.Fatalf("refused pinned digest fetched again: %v", reg.Log())
	}
	// Back to a good pin: applied.
	writePins(t, pins, Pin{Ref: ref, Digest: d1})
	waitFor(t, "pin error cleared", func() bool { return e.source().PinError == "" })
}

// TestModeSwitchKeepsTheAcceptedSet switches the same reference and state directory between
// poll and pinned mode, both ways (a unit restarted with the other mode, as when the Juju
// leader changes): the accepted digest is neither fetched nor accepted again, and the rules
// keep running.
func TestModeSwitchKeepsTheAcceptedSet(t *testing.T) {
	reg := testregistry.New(t, testregistry.Options{})
	p := newPusher(t, reg, "", "")
	d1 := p.push("rules/k8s:1", map[string]string{"k8s.yaml": genRule("v1")})
	ref := reg.Host + "/rules/k8s:1"
	hour := func(o *Options) { o.Interval = time.Hour }

	t.Run("poll to pinned", func(t *testing.T) {
		state := t.TempDir()
		e := newEnv(t, envOpts{reg: reg, stateDir: state, follow: hour})
		e.waitAccepted(d1)
		e.stop()
		pins := filepath.Join(t.TempDir(), "pins.json")
		writePins(t, pins, Pin{Ref: ref, Digest: d1})
		reg.Reset()
		e2 := newEnv(t, envOpts{reg: reg, stateDir: state, follow: func(o *Options) { hour(o); pinnedOpts(pins)(o) }})
		if res := e2.f.Sync(context.Background(), false); len(res) != 1 || res[0].Result != ResultUnchanged || res[0].Digest != d1 {
			t.Fatalf("sync %+v", res)
		}
		waitFor(t, "pinned status", func() bool { s := e2.source(); return s.PinnedDigest == d1 && s.PinError == "" })
		st := e2.a.Status()
		if n := reg.Requests(); n != 0 || st.Ruleset.Generation != 1 || st.LastAccepted.Trigger != "startup" || e2.runningDigest() != d1 {
			t.Fatalf("%d requests (%v), generation %d, last accepted %+v", n, reg.Log(), st.Ruleset.Generation, st.LastAccepted)
		}
		if g := e2.fire(2); g["v1"] != 2 {
			t.Fatalf("alerts %v", g)
		}
	})
	t.Run("pinned to poll", func(t *testing.T) {
		state := t.TempDir()
		pins := filepath.Join(t.TempDir(), "pins.json")
		writePins(t, pins, Pin{Ref: ref, Digest: d1})
		e := newEnv(t, envOpts{reg: reg, stateDir: state, follow: func(o *Options) { hour(o); pinnedOpts(pins)(o) }})
		e.waitAccepted(d1)
		e.stop()
		reg.Reset()
		e2 := newEnv(t, envOpts{reg: reg, stateDir: state, follow: hour})
		if res := e2.f.Sync(context.Background(), false); len(res) != 1 || res[0].Result != ResultUnchanged || res[0].Digest != d1 {
			t.Fatalf("sync %+v", res)
		}
		st := e2.a.Status()
		// Only the poll's HEADs of the tag (the first check and the sync): nothing downloaded.
		l := reg.Log()
		for _, r := range l {
			if r != "HEAD /v2/rules/k8s/manifests/1" {
				t.Fatalf("requests %v: the accepted digest was fetched again", l)
			}
		}
		if len(l) == 0 || st.Ruleset.Generation != 1 || st.LastAccepted.Trigger != "startup" {
			t.Fatalf("requests %v, generation %d, last accepted %+v", l, st.Ruleset.Generation, st.LastAccepted)
		}
		if s := e2.source(); s.Mode != ModePoll || s.Digest != d1 {
			t.Fatalf("source %+v", s)
		}
		if g := e2.fire(2); g["v1"] != 2 {
			t.Fatalf("alerts %v", g)
		}
	})
}

func TestParsePins(t *testing.T) {
	d := "sha256:" + strings.Repeat("0f", 32)
	tests := []struct {
		name, in string
		want     map[string]string
		err      string
	}{
		{"one", `{"pins":[{"ref":"ghcr.io/org/rules:1","digest":"` + d + `"}]}`, map[string]string{"ghcr.io/org/rules:1": d}, ""},
		{"default tag canonical", `{"pins":[{"ref":"ghcr.io/org/rules","digest":"` + d + `"}]}`, map[string]string{"ghcr.io/org/rules:latest": d}, ""},
		{"extra keys allowed", `{"pins":[{"ref":"r.io/a:1","digest":"` + d + `","files":["k8s.yaml"]}],"leader":"falco-k8s/0"}`, map[string]string{"r.io/a:1": d}, ""},
		{"empty list", `{"pins":[]}`, map[string]string{}, ""},
		{"no list", `{}`, nil, `no "pins" list`},
		{"not json", `pins: []`, nil, "not a pins document"},
		{"trailing", `{"pins":[]} {}`, nil, "trailing data"},
		{"bad digest", `{"pins":[{"ref":"r.io/a:1","digest":"sha256:12"}]}`, nil, "invalid digest"},
		{"sha512", `{"pins":[{"ref":"r.io/a:1","digest":"sha512:` + strings.Repeat("0f", 64) + `"}]}`, nil, "want sha256"},
		{"digest ref", `{"pins":[{"ref":"r.io/a@` + d + `","digest":"` + d + `"}]}`, nil, "must name a tag"},
		{"bad ref", `{"pins":[{"ref":"nohost","digest":"` + d + `"}]}`, nil, "pins[0]"},
		{"twice", `{"pins":[{"ref":"r.io/a:1","digest":"` + d + `"},{"ref":"r.io/a:1","digest":"` + d + `"}]}`, nil, "pinned twice"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParsePins([]byte(tc.in))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || !mapsEqual(got, tc.want) {
				t.Fatalf("got %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

func FuzzParsePins(f *testing.F) {
	d := "sha256:" + strings.Repeat("0f", 32)
	f.Add([]byte(`{"pins":[{"ref":"ghcr.io/org/rules:1","digest":"` + d + `"}]}`))
	f.Add([]byte(`{"pins":[]}`))
	f.Add([]byte(`{"pins":[{"ref":"a/b@` + d + `","digest":"x"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		pins, err := ParsePins(data)
		if err != nil {
			return
		}
		// What parses round-trips through the writer to the same pins.
		var list []Pin
		for r, d := range pins {
			list = append(list, Pin{Ref: r, Digest: d})
		}
		b, err := WritePins(list)
		if err != nil {
			t.Fatal(err)
		}
		again, err := ParsePins(b)
		if err != nil || !mapsEqual(again, pins) {
			t.Fatalf("round trip: %v, %v != %v", err, again, pins)
		}
	})
}
