// Package falcobin runs a Falco binary and decodes what it answers: its version, the
// falco_load_results JSON of `falco -V` (rules files validated cumulatively, in order) and the
// outcome of `falco --dry-run` (what Falco's hot reload runs before it restarts). The agent uses
// it with engine: falco to let Falco judge every ruleset before Falco ever loads it, and the test
// oracle (internal/falcooracle) uses the same decoding, so there is one implementation.
package falcobin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strings"

	"github.com/falco-k8s/falco-k8s/engine"
)

// Binary is one Falco executable with the configuration it runs with.
type Binary struct {
	// Path is the executable (or a wrapper passing its arguments on).
	Path string
	// Config is passed as -c when set, so plugins load as in the running Falco.
	Config string
}

// Position and Location are the engine's own: falco-k8s writes falco_load_results' JSON with
// them, so Falco's decode into the same types. Diagnostic and FileResult mirror the rest of it
// (the code as Falco's string).
type (
	Position = engine.Position
	Location = engine.Location
)

// Diagnostic is one error or warning of falco_load_results.
type Diagnostic struct {
	Code     string `json:"code"`
	CodeDesc string `json:"codedesc"`
	Message  string `json:"message"`
	Context  struct {
		Locations []Location `json:"locations"`
		Snippet   string     `json:"snippet"`
	} `json:"context"`
}

// String renders the diagnostic as "file:line:col: item "name": message (CODE)": the deepest
// location in the file itself (a condition's own positions name the condition, not the file;
// Falco's positions are 0-based, shown 1-based like the engine's).
func (d Diagnostic) String() string {
	var b strings.Builder
	if locs := d.Context.Locations; len(locs) > 0 {
		l := locs[0]
		for _, x := range locs[1:] {
			if x.Position.Name == locs[0].Position.Name {
				l = x
			}
		}
		fmt.Fprintf(&b, "%s:%d:%d: ", l.Position.Name, l.Position.Line+1, l.Position.Column+1)
		if l.ItemName != "" {
			fmt.Fprintf(&b, "%s %q: ", l.ItemType, l.ItemName)
		}
	}
	fmt.Fprintf(&b, "%s (%s)", d.Message, d.Code)
	return b.String()
}

// FileResult is one file's entry of falco_load_results.
type FileResult struct {
	Name       string       `json:"name"`
	Successful bool         `json:"successful"`
	Errors     []Diagnostic `json:"errors"`
	Warnings   []Diagnostic `json:"warnings"`
}

// FatalError is Falco refusing the files outright, without load results: it checks
// required_plugin_versions after loading, and a requirement the loaded plugins do not meet ends
// the run with "Error: <message>" on stderr. --dry-run reports every refusal this way.
type FatalError struct {
	Message string
}

func (e *FatalError) Error() string { return "falco: " + e.Message }

// RefusedError is Falco refusing a set of rules files: the per-file load results (nil for a
// FatalError-style refusal, which is then wrapped).
type RefusedError struct {
	Results []FileResult
	Fatal   *FatalError
}

func (e *RefusedError) Error() string {
	if e.Fatal != nil {
		return "refused by Falco: " + e.Fatal.Message
	}
	var diags []string
	for _, r := range e.Results {
		for _, d := range r.Errors {
			diags = append(diags, d.String())
		}
		if !r.Successful && len(r.Errors) == 0 {
			diags = append(diags, r.Name+": invalid")
		}
	}
	switch len(diags) {
	case 0:
		return "refused by Falco"
	case 1:
		return "refused by Falco: " + diags[0]
	}
	return fmt.Sprintf("refused by Falco: %s (and %d more errors)", diags[0], len(diags)-1)
}

func (e *RefusedError) Unwrap() error {
	if e.Fatal != nil {
		return e.Fatal
	}
	return nil
}

// ErrNotRunnable means the binary could not be run, or ended in a way that says nothing about
// the rules (killed, a missing library): the caller cannot tell valid from invalid.
var ErrNotRunnable = errors.New("falco binary did not run")

// Validate runs `falco -V` over files in order (one process; Falco loads them cumulatively into
// one engine, each with its own result) in dir and returns the per-file results. Results with an
// unsuccessful file are returned with a *RefusedError.
func (b *Binary) Validate(ctx context.Context, dir string, files []string) ([]FileResult, error) {
	args := []string{"-o", "log_stderr=false", "-o", "json_output=true"}
	for _, f := range files {
		args = append(args, "-V", f)
	}
	stdout, stderr, err := b.run(ctx, dir, args)
	var ee *exec.ExitError
	if err != nil && !(errors.As(err, &ee) && ee.ExitCode() == 1) {
		return nil, fmt.Errorf("%w: falco -V: %v: %s", ErrNotRunnable, err, firstLine(stderr))
	}
	res, perr := ParseLoadResults(stdout, stderr, len(files))
	if perr != nil {
		var fe *FatalError
		if errors.As(perr, &fe) {
			return nil, &RefusedError{Fatal: fe}
		}
		return nil, perr
	}
	for _, r := range res {
		if !r.Successful {
			return res, &RefusedError{Results: res}
		}
	}
	return res, nil
}

// ParseLoadResults decodes the output of `falco -o json_output=true -V` for n files: the
// per-file results, or a *FatalError when Falco refused without them.
func ParseLoadResults(stdout, stderr []byte, n int) ([]FileResult, error) {
	var doc struct {
		Results []FileResult `json:"falco_load_results"`
	}
	if !bytes.Contains(stdout, []byte(`{"falco_load_results"`)) {
		if msg, ok := bytes.CutPrefix(bytes.TrimSpace(stderr), []byte("Error: ")); ok {
			return nil, &FatalError{Message: string(msg)}
		}
	}
	if jerr := json.Unmarshal(firstJSONLine(stdout), &doc); jerr != nil {
		return nil, fmt.Errorf("falco -V: decode load results: %w (stdout %q, stderr %q)", jerr, Clip(stdout), Clip(stderr))
	}
	if len(doc.Results) != n {
		return nil, fmt.Errorf("falco -V: %d results for %d files", len(doc.Results), n)
	}
	return doc.Results, nil
}

// DryRun runs `falco --dry-run` with the configuration: everything Falco's hot reload checks
// before restarting (configuration, plugins, every rules file it lists, read from disk now).
// Exit status 1 is a refusal (*RefusedError with Falco's message); anything else that is not
// success is ErrNotRunnable.
func (b *Binary) DryRun(ctx context.Context) error {
	_, stderr, err := b.run(ctx, "", []string{"--dry-run", "-o", "log_stderr=false"})
	if err == nil {
		return nil
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() == 1 {
		msg := string(bytes.TrimSpace(stderr))
		msg = strings.TrimPrefix(msg, "Error: ")
		return &RefusedError{Fatal: &FatalError{Message: msg}}
	}
	return fmt.Errorf("%w: falco --dry-run: %v: %s", ErrNotRunnable, err, firstLine(stderr))
}

// Version runs `falco --version` and returns the version ("0.44.1").
func (b *Binary) Version(ctx context.Context) (string, error) {
	cmd := exec.CommandContext(ctx, b.Path, "--version")
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%w: %s --version: %v", ErrNotRunnable, b.Path, err)
	}
	return ParseVersion(out)
}

// ParseVersion finds "Falco version: X" in `falco --version` output.
func ParseVersion(out []byte) (string, error) {
	for _, line := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "Falco version:"); ok {
			if v = strings.TrimSpace(v); v != "" {
				return strings.Fields(v)[0], nil
			}
		}
	}
	return "", fmt.Errorf("falco --version: no \"Falco version:\" line in %q", Clip(out))
}

func (b *Binary) run(ctx context.Context, dir string, args []string) (stdout, stderr []byte, err error) {
	if b.Config != "" {
		args = append([]string{"-c", b.Config}, args...)
	}
	cmd := exec.CommandContext(ctx, b.Path, args...)
	cmd.Dir = dir
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	return out.Bytes(), errb.Bytes(), err
}

func firstJSONLine(b []byte) []byte {
	for _, line := range bytes.Split(b, []byte("\n")) {
		if len(line) > 0 && line[0] == '{' {
			return line
		}
	}
	return b
}

func firstLine(b []byte) string {
	s := string(bytes.TrimSpace(b))
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}

// Clip shortens Falco's output for an error message.
func Clip(b []byte) string {
	if len(b) > 2000 {
		return string(b[:2000]) + "..."
	}
	return string(b)
}
