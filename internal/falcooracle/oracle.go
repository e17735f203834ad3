// Package falcooracle runs the real Falco 0.44.1 kept in ../shared/falco as a test oracle: it
// validates rules files (`falco -V -o json_output=true`) and evaluates a rules file over a file
// of audit events (`--enable-source=k8s_audit` with the k8saudit plugin's file reader), and
// decodes Falco's JSON into plain structs that differential tests compare with the engine's.
//
// Falco's start-up costs about 0.1-0.3 s per invocation, so callers batch: Validate takes many
// files in one run (Falco loads them cumulatively, exactly as engine.Loader does) and Evaluate
// takes every event in one file.
package falcooracle

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/falco-k8s/falco-k8s/internal/falcobin"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// ErrNotFound means the Falco wrapper is not where it is expected, or cannot run (its run-time
// libraries are missing: the wrapper exits 3).
var ErrNotFound = errors.New("falco oracle not available")

// Oracle runs one Falco wrapper script.
type Oracle struct {
	// Path is the wrapper (../shared/falco/falco).
	Path string
}

// Locate finds the wrapper: $FALCO_ORACLE, else shared/falco/falco in the first ancestor of the
// working directory that has it (every checkout sits beside /work/shared), and checks that it
// runs.
func Locate(ctx context.Context) (*Oracle, error) {
	path := os.Getenv("FALCO_ORACLE")
	if path == "" {
		dir, err := os.Getwd()
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrNotFound, err)
		}
		for {
			p := filepath.Join(dir, "shared", "falco", "falco")
			if _, err := os.Stat(p); err == nil {
				path = p
				break
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				return nil, fmt.Errorf("%w: no shared/falco/falco above the working directory; set FALCO_ORACLE to the wrapper", ErrNotFound)
			}
			dir = parent
		}
	}
	o := &Oracle{Path: path}
	cmd := exec.CommandContext(ctx, path, "--version")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("%w: %s --version: %v: %s", ErrNotFound, path, err, bytes.TrimSpace(out))
	}
	if !bytes.Contains(out, []byte("0.44.1")) {
		return nil, fmt.Errorf("%w: %s is not Falco 0.44.1: %s", ErrNotFound, path, firstLine(out))
	}
	return o, nil
}

// Require returns the oracle for a test, skipping the test when it is missing on a developer
// machine and failing it when CI=true (CI must never pass by skipping the oracle).
func Require(tb testing.TB) *Oracle {
	tb.Helper()
	o, err := Locate(context.Background())
	if err != nil {
		if os.Getenv("CI") == "true" {
			tb.Fatalf("%v (CI=true: the oracle is required; install libyaml-cpp0.7 libre2-9 libtbb12 libjsoncpp25)", err)
		}
		tb.Skipf("%v", err)
	}
	return o
}

func firstLine(b []byte) string {
	s := string(bytes.TrimSpace(b))
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}

// The load results' types and their decoding are internal/falcobin's (the agent validates
// with the same code when engine: falco).
type (
	Position   = falcobin.Position
	Location   = falcobin.Location
	Diagnostic = falcobin.Diagnostic
	FileResult = falcobin.FileResult
	FatalError = falcobin.FatalError
)

// Validate runs `falco -V` over files in order (one Falco process; the files are loaded
// cumulatively into one engine, each with its own result) and returns the per-file results.
// dir is the working directory, so relative file names appear in positions as given.
func (o *Oracle) Validate(ctx context.Context, dir string, files []string) ([]FileResult, error) {
	args := []string{"-o", "log_stderr=false", "-o", "json_output=true"}
	for _, f := range files {
		args = append(args, "-V", f)
	}
	stdout, stderr, err := o.run(ctx, dir, args)
	var ee *exec.ExitError
	if err != nil && !(errors.As(err, &ee) && ee.ExitCode() == 1) {
		return nil, fmt.Errorf("falco -V: %w: %s", err, firstLine(stderr))
	}
	return falcobin.ParseLoadResults(stdout, stderr, len(files))
}

// Run is the outcome of evaluating events.
type Run struct {
	// Alerts are Falco's JSON alerts in order, undecoded.
	Alerts []json.RawMessage
	// Stdout is everything else Falco printed on stdout (the end-of-run statistics).
	Stdout string
	// Stderr is Falco's log (plugin errors such as "data not recognized as a k8s audit event").
	Stderr string
}

// Evaluate runs Falco with the rules files over the JSONL events file (one event or EventList
// per line; the k8saudit reader stops at a line over 64 KiB) with JSON output and any extra
// `-o key=value` settings (e.g. rule_matching=all).
func (o *Oracle) Evaluate(ctx context.Context, dir string, rules []string, events string, settings ...string) (*Run, error) {
	// append_output[0] pointed at no source: the container plugin's default output additions
	// never apply to k8s_audit alerts (their text is unchanged) but cost Falco time per alert.
	// useAsync=false: the plugins' asynchronous extraction hands each field to a worker thread
	// that spins waiting for work; on a busy 2-core machine every hand-off waits for a time
	// slice, about 1 s of wall time per event against the upstream ruleset. Synchronous
	// extraction gives the same alerts (compared on the shared traces and batches) in 1/300th
	// of the time, which is what lets the differential tests run thousands of events in CI.
	args := []string{"--enable-source=k8s_audit", "-o", "json_output=true", "-o", "plugins[0].open_params=" + events,
		"-o", "append_output[0].match.source=none",
		"-o", `plugins[0].init_config={"useAsync":false}`, "-o", `plugins[1].init_config={"useAsync":false}`}
	for _, r := range rules {
		args = append(args, "-r", r)
	}
	for _, s := range settings {
		args = append(args, "-o", s)
	}
	stdout, stderr, err := o.run(ctx, dir, args)
	if err != nil {
		return nil, fmt.Errorf("falco: %w: %s", err, clip(stderr))
	}
	run := &Run{Stderr: string(stderr)}
	var rest strings.Builder
	for _, line := range bytes.Split(stdout, []byte("\n")) {
		if len(line) > 0 && line[0] == '{' && json.Valid(line) {
			run.Alerts = append(run.Alerts, json.RawMessage(bytes.Clone(line)))
			continue
		}
		rest.Write(line)
		rest.WriteByte('\n')
	}
	run.Stdout = rest.String()
	return run, nil
}

func (o *Oracle) run(ctx context.Context, dir string, args []string) (stdout, stderr []byte, err error) {
	cmd := exec.CommandContext(ctx, o.Path, args...)
	cmd.Dir = dir
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() == 3 {
		err = fmt.Errorf("%w: %v", ErrNotFound, err)
	}
	return out.Bytes(), errb.Bytes(), err
}

func clip(b []byte) string {
	if len(b) > 2000 {
		return string(b[:2000]) + "..."
	}
	return string(b)
}
