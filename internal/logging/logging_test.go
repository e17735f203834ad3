package logging

import (
	"testing"
	"time"
)

func TestThrottle(t *testing.T) {
	t0 := time.Unix(1000, 0)
	var th Throttle // zero value: 10 s interval
	steps := []struct {
		at             time.Duration
		wantOK         bool
		wantSuppressed int
	}{
		{0, true, 0},
		{time.Second, false, 0},
		{9 * time.Second, false, 0},
		{10 * time.Second, true, 2},
		{11 * time.Second, false, 0},
		{25 * time.Second, true, 1},
		{36 * time.Second, true, 0},
	}
	for _, s := range steps {
		n, ok := th.Allow(t0.Add(s.at))
		if ok != s.wantOK || n != s.wantSuppressed {
			t.Errorf("Allow(+%v) = %d, %v; want %d, %v", s.at, n, ok, s.wantSuppressed, s.wantOK)
		}
	}
}
