package follower

import (
	"context"
	"net/http"
	"testing"
	"time"
)

// TestRetryAfterKeyedByReferenceRegistry: a 429 from a host other than the reference's registry
// name (docker.io is served by registry-1.docker.io, its tokens by auth.docker.io) still delays
// the next check of that reference.
func TestRetryAfterKeyedByReferenceRegistry(t *testing.T) {
	ra := &retryAfter{by: map[string]time.Time{}}
	rt := ra.wrap(roundTripFunc(func(*http.Request) (*http.Response, error) {
		return &http.Response{StatusCode: http.StatusTooManyRequests, Header: http.Header{"Retry-After": {"30"}}, Body: http.NoBody}, nil
	}))
	for _, host := range []string{"registry-1.docker.io", "auth.docker.io"} {
		req, _ := http.NewRequestWithContext(withRetryKey(context.Background(), "docker.io"), http.MethodGet, "https://"+host+"/v2/", nil)
		if _, err := rt.RoundTrip(req); err != nil {
			t.Fatal(err)
		}
		if d := ra.take("docker.io"); d < 29*time.Second || d > 30*time.Second {
			t.Fatalf("429 from %s: take(docker.io) = %v, want ~30s", host, d)
		}
	}
	// Without a key (requests outside a check) the URL host is used.
	req, _ := http.NewRequest(http.MethodGet, "https://ghcr.io/v2/", nil)
	rt.RoundTrip(req) //nolint:errcheck // fake transport
	if d := ra.take("ghcr.io"); d < 29*time.Second {
		t.Fatalf("take(ghcr.io) = %v", d)
	}
}
