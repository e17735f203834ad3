package notice

import (
	"maps"
	"strings"
	"testing"

	"github.com/falco-k8s/falco-k8s/agent/status"
)

func TestData(t *testing.T) {
	long := strings.Repeat("x", 2*maxReason)
	tests := []struct {
		name string
		ch   status.Change
		want map[string]string
	}{
		{"accepted", status.Change{Accepted: true, Ref: "r.io/a:1", Digest: "sha256:ab"},
			map[string]string{"event": "accepted", "ref": "r.io/a:1", "digest": "sha256:ab"}},
		{"ignored", status.Change{Ref: "r.io/a:1", Digest: "sha256:cd", Reason: "k8s.yaml:3:1: error"},
			map[string]string{"event": "ignored", "ref": "r.io/a:1", "digest": "sha256:cd", "reason": "k8s.yaml:3:1: error"}},
		{"long reason bounded", status.Change{Reason: long},
			map[string]string{"event": "ignored", "reason": long[:maxReason] + "..."}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Data(tc.ch); !maps.Equal(got, tc.want) {
				t.Fatalf("Data = %v, want %v", got, tc.want)
			}
		})
	}
}
