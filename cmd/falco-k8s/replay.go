package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	"github.com/valyala/fastjson"

	"github.com/falco-k8s/falco-k8s/engine"
	"github.com/falco-k8s/falco-k8s/engine/k8saudit"
	"github.com/falco-k8s/falco-k8s/engine/rulesfile"
)

func newReplayCmd() *cobra.Command {
	var (
		files       []string
		jsonOut     bool
		minPriority string
		allMatches  bool
	)
	cmd := &cobra.Command{
		Use:   "replay -r FILE... [--json] [--min-priority P] [--all-matches] EVENTS...",
		Short: "Evaluate recorded Kubernetes audit events against rules and print the alerts",
		Long: "Reads audit events (each line an Event or EventList JSON object, or one pretty-printed JSON\n" +
			"document; '-' is stdin), evaluates them in order and prints one alert per line on stdout, as\n" +
			"Falco's text line or, with --json, Falco's JSON alert. A summary goes to stderr. Like Falco,\n" +
			"only the first matching rule alerts for an event unless --all-matches.\n" +
			"Exit status: 0 after a run, 1 when the rules do not load, 2 when an input cannot be read.",
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(files) == 0 {
				return exitWith(1, fmt.Errorf("no rules files: pass at least one -r FILE"))
			}
			if len(args) == 0 {
				return exitWith(2, fmt.Errorf("no event input: pass a file of audit events, or - for stdin"))
			}
			opts := engine.DefaultOptions()
			if minPriority != "" {
				p, err := engine.ParsePriority(minPriority)
				if err != nil {
					return exitWith(2, fmt.Errorf("--min-priority: %w", err))
				}
				opts.MinPriority = p
			}
			rs, results, err := loadRulesFiles(files, opts, cmd.ErrOrStderr())
			if err != nil {
				rulesfile.WriteText(cmd.ErrOrStderr(), io.Discard, results)
				return exitWith(1, fmt.Errorf("rules do not load: %s", rulesfile.Summary(results)))
			}
			r := &replayer{
				eval: rs.NewEvaluator(), all: allMatches, json: jsonOut, hostname: alertHostname(),
				out: bufio.NewWriterSize(cmd.OutOrStdout(), 64<<10), stderr: cmd.ErrOrStderr(),
				byRule: map[string]int{}, byPriority: map[engine.Priority]int{},
			}
			r.dec.OnDrop = func(err error) {
				r.dropped++
				fmt.Fprintf(r.stderr, "%s: event skipped: %v\n", r.input, err)
			}
			var inputErr error
			for _, a := range args {
				if err := r.replayInput(cmd.InOrStdin(), a); err != nil {
					fmt.Fprintf(cmd.ErrOrStderr(), "Error: %v\n", err)
					inputErr = err
				}
			}
			if err := r.out.Flush(); err != nil {
				return exitWith(2, fmt.Errorf("write alerts: %w", err))
			}
			r.summary()
			if inputErr != nil {
				return exitWith(2, errors.New(""))
			}
			return nil
		},
	}
	cmd.Flags().StringArrayVarP(&files, "rules", "r", nil, "rules file or directory (repeatable, loaded in order)")
	cmd.Flags().BoolVar(&jsonOut, "json", false, "print alerts as Falco JSON objects")
	cmd.Flags().StringVar(&minPriority, "min-priority", "debug", "only evaluate rules at least this severe")
	cmd.Flags().BoolVar(&allMatches, "all-matches", false, "alert for every matching rule, not only the first")
	return cmd
}

// alertHostname follows Falco: FALCO_HOSTNAME, else the machine's hostname.
func alertHostname() string {
	if h := os.Getenv("FALCO_HOSTNAME"); h != "" {
		return h
	}
	h, _ := os.Hostname()
	return h
}

type replayer struct {
	dec        k8saudit.Decoder
	eval       *engine.Evaluator
	all, json  bool
	hostname   string
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

func (r *replayer) replayInput(stdin io.Reader, name string) error {
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

func (r *replayer) payload(p []byte, line int) {
	if len(bytes.TrimSpace(p)) == 0 {
		return
	}
	_, err := r.dec.Decode(p, func(ev *k8saudit.Event) error {
		r.events++
		r.eval.Match(ev, r.all, func(rule *engine.Rule) {
			a := r.eval.Alert(rule, r.hostname)
			r.alerts++
			r.byRule[rule.Name]++
			r.byPriority[rule.Priority]++
			if r.json {
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

// summary prints Falco's end-of-run statistics block.
func (r *replayer) summary() {
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
