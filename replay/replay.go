// Package replay evaluates recorded Kubernetes audit events against a ruleset the way Falco
// replays a trace: it tells JSON Lines from one pretty-printed document, decodes each payload
// with the k8saudit plugin's rules, prints Falco's alert (text line or JSON) for each match and
// ends with Falco's statistics block. `falco-k8s replay` is its command line.
package replay

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/valyala/fastjson"

	"github.com/falco-k8s/falco-k8s/engine"
	"github.com/falco-k8s/falco-k8s/engine/k8saudit"
)

// Options choose what a Replayer prints.
type Options struct {
	// AllMatches alerts for every matching rule, not only the first (Falco's default).
	AllMatches bool
	// JSON prints Falco's JSON alert instead of its text line.
	JSON bool
	// Hostname goes into every alert (Hostname() is Falco's choice).
	Hostname string
}

// Replayer evaluates inputs in order, writing alerts to out and diagnostics and the summary to
// stderr. Not safe for concurrent use.
type Replayer struct {
	dec        k8saudit.Decoder
	eval       *engine.Evaluator
	opt        Options
	out        *bufio.Writer
	stderr     io.Writer
	input      string
	events     int
	dropped    int
	notEvents  int
	alerts     int
	byRule     map[string]int
	byPriority map[engine.Priority]int
}

// New returns a Replayer for rs.
func New(rs *engine.Ruleset, opt Options, out, stderr io.Writer) *Replayer {
	r := &Replayer{
		eval: rs.NewEvaluator(), opt: opt, out: bufio.NewWriterSize(out, 64<<10), stderr: stderr,
		byRule: map[string]int{}, byPriority: map[engine.Priority]int{},
	}
	r.dec.OnDrop = func(err error) {
		r.dropped++
		fmt.Fprintf(r.stderr, "%s: event skipped: %v\n", r.input, err)
	}
	return r
}

// Hostname follows Falco: FALCO_HOSTNAME, else the machine's hostname.
func Hostname() string {
	if h := os.Getenv("FALCO_HOSTNAME"); h != "" {
		return h
	}
	h, _ := os.Hostname()
	return h
}

// Input replays one input: a file name, or "-" for stdin. A payload that is not an audit event
// is reported on stderr and the run goes on; only an input that cannot be read is an error.
func (r *Replayer) Input(stdin io.Reader, name string) error {
	var in io.Reader
	r.input = name
	if name == "-" {
		in = stdin
		r.input = "<stdin>"
	} else {
		f, err := os.Open(name)
		if err != nil {
			return fmt.Errorf("open events %s: %w", name, err)
		}
		defer f.Close()
		in = f
	}
	br := bufio.NewReaderSize(in, 1<<20)
	first, err := readLine(br)
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("read events %s: %w", name, err)
	}
	trimmed := bytes.TrimSpace(first)
	// A first line that is the start of JSON but not a whole value means one pretty-printed
	// document: read it all. Otherwise the input is JSON Lines, streamed.
	if len(trimmed) > 0 && (trimmed[0] == '{' || trimmed[0] == '[') && fastjson.ValidateBytes(trimmed) != nil && !errors.Is(err, io.EOF) {
		rest, rerr := io.ReadAll(br)
		if rerr != nil {
			return fmt.Errorf("read events %s: %w", name, rerr)
		}
		r.payload(append(first, rest...), 1)
		return nil
	}
	line := 1
	for {
		r.payload(first, line)
		if errors.Is(err, io.EOF) {
			return nil
		}
		first, err = readLine(br)
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("read events %s line %d: %w", name, line+1, err)
		}
		line++
	}
}

// readLine returns the next line without its newline; io.EOF comes with the last line.
func readLine(br *bufio.Reader) ([]byte, error) {
	line, err := br.ReadBytes('\n')
	return bytes.TrimRight(line, "\r\n"), err
}

func (r *Replayer) payload(p []byte, line int) {
	if len(bytes.TrimSpace(p)) == 0 {
		return
	}
	_, err := r.dec.Decode(p, func(ev *k8saudit.Event) error {
		r.events++
		r.eval.Match(ev, r.opt.AllMatches, func(rule *engine.Rule) {
			a := r.eval.Alert(rule, r.opt.Hostname)
			r.alerts++
			r.byRule[rule.Name]++
			r.byPriority[rule.Priority]++
			if r.opt.JSON {
				r.out.Write(a.JSON())
			} else {
				r.out.WriteString(a.Output)
			}
			r.out.WriteByte('\n')
		})
		return nil
	})
	if err != nil {
		r.notEvents++
		// The k8saudit plugin's words, so scripts that grep Falco's stderr keep working.
		fmt.Fprintf(r.stderr, "%s:%d: %v\n", r.input, line, err)
	}
}

// Flush writes the buffered alerts out.
func (r *Replayer) Flush() error { return r.out.Flush() }

// Summary prints Falco's end-of-run statistics block to stderr.
func (r *Replayer) Summary() {
	w := r.stderr
	fmt.Fprintf(w, "Events read: %d, skipped: %d, inputs not recognized: %d\n", r.events, r.dropped, r.notEvents)
	fmt.Fprintf(w, "Events detected: %d\n", r.alerts)
	fmt.Fprintln(w, "Rule counts by severity:")
	prios := make([]engine.Priority, 0, len(r.byPriority))
	for p := range r.byPriority {
		prios = append(prios, p)
	}
	sort.Slice(prios, func(i, j int) bool { return prios[i] < prios[j] })
	for _, p := range prios {
		name := strings.ToUpper(p.String())
		if p == engine.PriorityInformational {
			name = "INFO" // Falco's short form in its statistics
		}
		fmt.Fprintf(w, "   %s: %d\n", name, r.byPriority[p])
	}
	fmt.Fprintln(w, "Triggered rules by rule name:")
	names := make([]string, 0, len(r.byRule))
	for n := range r.byRule {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "   %s: %d\n", n, r.byRule[n])
	}
}
