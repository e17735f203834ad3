package follower

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/falco-k8s/falco-k8s/internal/testregistry"
)

// TestBadContentBackedOff: a layer that verifies against its digest but is a truncated
// archive, and a layer damaged in transit, are bad content, not connection errors: reported
// as "bad content from REGISTRY" in the check result and /status, that digest is not
// downloaded again at the following checks (only HEAD requests), the checks keep their
// interval so a new push is picked up at once, and the last accepted set keeps serving.
func TestBadContentBackedOff(t *testing.T) {
	tests := []struct {
		name string
		push func(p *pusher, tm *testregistry.Tamper) string
		want string
	}{
		{"truncated layer with a right digest", func(p *pusher, _ *testregistry.Tamper) string {
			good := tarGz(t, map[string]string{"k8s.yaml": genRule("v2")})
			return p.pushLayer("rules/k8s:1", good[:len(good)*2/3])
		}, "corrupt archive"},
		{"layer damaged in transit", func(p *pusher, tm *testregistry.Tamper) string {
			good := tarGz(t, map[string]string{"k8s.yaml": genRule("v2")})
			tm.Target = "sha256:" + hashHex(good)
			return p.pushLayer("rules/k8s:1", good)
		}, "digest mismatch"},
		{"manifest damaged in transit", func(p *pusher, tm *testregistry.Tamper) string {
			d := p.push("rules/k8s:1", map[string]string{"k8s.yaml": genRule("v2")})
			tm.Target = d
			return d
		}, "digest mismatch: registry sent"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			reg := testregistry.New(t, testregistry.Options{})
			p := newPusher(t, reg, "", "")
			d1 := p.push("rules/k8s:1", map[string]string{"k8s.yaml": genRule("v1")})
			tm := &testregistry.Tamper{}
			e := newEnv(t, envOpts{reg: reg, follow: func(o *Options) {
				o.Interval = time.Hour
				o.Registry.WrapTransport = func(rt http.RoundTripper) http.RoundTripper { tm.Next = rt; return tm }
			}})
			e.waitAccepted(d1)
			bad := tc.push(p, tm)

			// A scheduled check downloads it once: bad content, reported as such.
			res := e.f.round(context.Background(), []int{0}, false, false)
			prefix := "bad content from " + reg.Host + ": "
			if len(res) != 1 || res[0].Result != ResultError || res[0].Digest != bad || !strings.HasPrefix(res[0].Reason, prefix) ||
				!strings.Contains(res[0].Reason, tc.want) || strings.Contains(res[0].Reason, "unreachable") {
				t.Fatalf("check = %+v, want an error starting %q naming %q", res, prefix, tc.want)
			}
			if s := e.a.Status().Sources; len(s) != 1 || !strings.HasPrefix(s[0].LastError, prefix) {
				t.Fatalf("/status sources %+v", s)
			}
			// Checks keep their interval (the digest is backed off, not the registry).
			if d := e.f.delay(0, res[0]); d < 50*time.Minute {
				t.Fatalf("next check in %v after bad content, want the interval", d)
			}
			// The next checks do not download it again.
			reg.Reset()
			for range 3 {
				res = e.f.round(context.Background(), []int{0}, false, false)
				if res[0].Result != ResultError || !strings.HasPrefix(res[0].Reason, prefix) || !strings.Contains(res[0].Reason, "not downloaded again before") {
					t.Fatalf("later check = %+v", res)
				}
			}
			for _, l := range reg.Log() {
				if !strings.HasPrefix(l, "HEAD ") {
					t.Fatalf("bad content downloaded again: %v", reg.Log())
				}
			}
			if e.runningDigest() != d1 {
				t.Fatal("v1 no longer running")
			}
			// /sync (forced) tries it again; a new push is accepted at the next check.
			if r := e.f.Sync(context.Background(), false); r[0].Result != ResultError || !strings.Contains(r[0].Reason, tc.want) {
				t.Fatalf("forced sync = %+v", r)
			}
			d3 := p.push("rules/k8s:1", map[string]string{"k8s.yaml": genRule("v3")})
			if r := e.f.round(context.Background(), []int{0}, false, false); r[0].Result != ResultAccepted || r[0].Digest != d3 {
				t.Fatalf("check after a good push = %+v", r)
			}
			if s := e.a.Status().Sources; s[0].LastError != "" {
				t.Fatalf("error kept after recovery: %+v", s)
			}
		})
	}
}

func TestDamageBackoff(t *testing.T) {
	f := &Follower{o: Options{Interval: time.Hour}}
	for n, want := range map[int]time.Duration{1: 2 * time.Hour, 2: 4 * time.Hour, 4: 16 * time.Hour, 5: 24 * time.Hour, 50: 24 * time.Hour} {
		if got := f.damageBackoff(n); got != want {
			t.Errorf("damageBackoff(%d) = %v, want %v", n, got, want)
		}
	}
	f.o.Interval = 48 * time.Hour
	if got := f.damageBackoff(3); got != 48*time.Hour {
		t.Errorf("long interval: %v", got)
	}
}
