// Package logging configures zerolog for every falco-k8s command: human-readable console output
// on a terminal, JSON lines otherwise, at the requested level.
package logging

import (
	"fmt"
	"io"
	"os"
	"strings"
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
