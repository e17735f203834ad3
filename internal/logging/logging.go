// Package logging configures zerolog for every falco-k8s command: human-readable console output
// on a terminal, JSON lines otherwise, at the requested level.
package logging

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/rs/zerolog"
)

// New returns a logger writing to w. format is "auto" (console on a terminal, JSON otherwise),
// "text"/"color" or "json"; level is a zerolog level name ("info", "debug", "warn", ...).
func New(w io.Writer, format, level string) (zerolog.Logger, error) {
	lvl, err := zerolog.ParseLevel(strings.ToLower(level))
	if err != nil || level == "" {
		return zerolog.Nop(), fmt.Errorf("invalid log level %q: use trace, debug, info, warn or error", level)
	}
	out := w
	switch format {
	case "json":
	case "text", "color", "auto", "":
		if format != "auto" && format != "" || isTerminal(w) {
			out = zerolog.ConsoleWriter{Out: w, TimeFormat: time.RFC3339, NoColor: format == "text" || !isTerminal(w)}
		}
	default:
		return zerolog.Nop(), fmt.Errorf("invalid log format %q: use text, color or json", format)
	}
	return zerolog.New(out).Level(lvl).With().Timestamp().Logger(), nil
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && (isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd()))
}

// Throttle lets one message through per interval and counts the ones it held back, so a failure
// that repeats at the event rate (a full disk, an unreachable endpoint) logs once in a while
// with the number suppressed instead of flooding the log. The zero value is ready; its interval
// is 10 seconds.
type Throttle struct {
	Interval time.Duration

	mu         sync.Mutex
	last       time.Time
	suppressed int
}

// Allow reports whether a message may be logged now and, if so, how many were held back since
// the last one that was.
func (t *Throttle) Allow(now time.Time) (suppressed int, ok bool) {
	interval := t.Interval
	if interval == 0 {
		interval = 10 * time.Second
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.last.IsZero() && now.Sub(t.last) < interval {
		t.suppressed++
		return 0, false
	}
	suppressed, t.last, t.suppressed = t.suppressed, now, 0
	return suppressed, true
}
