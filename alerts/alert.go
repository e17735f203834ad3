// Package alerts is the log-only rollout toolkit: it reads Falco JSON alerts (from the agent's
// GET /alerts journal endpoint or from a file the file output wrote), filters them, summarises
// them for review (one table per rule) and turns reviewed alerts into Falco `exceptions` merged
// into a managed tuning rules file that the agent loads last.
//
// Everything here works on the alert's output_fields only: an alert carries the ka.* values its
// rule's output template used, so what can be shown or keyed on depends on the rule. Missing
// values are shown as <NA> and never guessed.
package alerts

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/falco-k8s/falco-k8s/engine"
)

// Output field keys the review and the tuning read.
const (
	FieldNamespace   = "ka.target.namespace"
	FieldUser        = "ka.user.name"
	FieldResource    = "ka.target.resource"
	FieldName        = "ka.target.name"
	FieldRespName    = "ka.resp.name"
	FieldImages      = "ka.req.pod.containers.image"
	FieldRepos       = "ka.req.pod.containers.image.repository"
	FieldContainer   = "ka.uri.param[container]"
	FieldEphImage    = "jevt.value[/requestObject/spec/ephemeralContainers/0/image]"
	FieldEphName     = "jevt.value[/requestObject/spec/ephemeralContainers/0/name]"
	FieldSubresource = "ka.target.subresource"
)

// NA is how a missing value is shown, as Falco renders it.
const NA = "<NA>"

// Alert is one Falco JSON alert.
type Alert struct {
	Time     time.Time
	Rule     string
	Priority engine.Priority
	Source   string
	Hostname string
	Output   string
	Tags     []string
	// Fields are the output_fields as decoded JSON (string, []any, float64/json.Number, bool, nil).
	Fields map[string]any
	// Raw is the alert exactly as read (one line, no newline).
	Raw []byte
}

// Parse decodes one Falco JSON alert. The rule, a valid priority and an RFC 3339 time are
// required: without them an alert can be neither filtered nor tuned.
func Parse(b []byte) (*Alert, error) {
	var w engine.AlertJSON
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber() // evt.time does not fit a float64
	if err := dec.Decode(&w); err != nil {
		return nil, fmt.Errorf("decode alert: %w", err)
	}
	if dec.More() {
		return nil, errors.New("decode alert: trailing data after the JSON object")
	}
	if w.Rule == "" {
		return nil, errors.New("decode alert: no rule")
	}
	p, err := engine.ParsePriority(w.Priority)
	if err != nil {
		return nil, fmt.Errorf("decode alert: %w", err)
	}
	t, err := time.Parse(time.RFC3339Nano, w.Time)
	if err != nil {
		return nil, fmt.Errorf("decode alert: invalid time %q", w.Time)
	}
	if w.OutputFields == nil {
		w.OutputFields = map[string]any{}
	}
	return &Alert{Time: t, Rule: w.Rule, Priority: p, Source: w.Source, Hostname: w.Hostname, Output: w.Output,
		Tags: w.Tags, Fields: w.OutputFields, Raw: bytes.Clone(bytes.TrimSpace(b))}, nil
}

// Has reports whether the rule's output captured key (its value may still be null).
func (a *Alert) Has(key string) bool { _, ok := a.Fields[key]; return ok }

// Str returns a scalar field as text; false when absent or null.
func (a *Alert) Str(key string) (string, bool) {
	switch v := a.Fields[key].(type) {
	case string:
		return v, true
	case json.Number:
		return v.String(), true
	case bool:
		if v {
			return "true", true
		}
		return "false", true
	}
	return "", false
}

// Strs returns a list field (or a scalar as a one-element list); false when absent or null.
func (a *Alert) Strs(key string) ([]string, bool) {
	switch v := a.Fields[key].(type) {
	case []any:
		out := make([]string, 0, len(v))
		for _, e := range v {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out, true
	case nil:
		return nil, false
	}
	if s, ok := a.Str(key); ok {
		return []string{s}, true
	}
	return nil, false
}

// Namespace is ka.target.namespace ("" when the rule did not capture it or it is missing).
func (a *Alert) Namespace() string { s, _ := a.Str(FieldNamespace); return s }

// User is ka.user.name.
func (a *Alert) User() string { s, _ := a.Str(FieldUser); return s }

// Target is the object acted on: "pod/NAME" style "resource/name" when both are known, the name
// alone when only it is (pod rules print pod=%ka.target.name), else "".
func (a *Alert) Target() string {
	name, okN := a.Str(FieldName)
	if !okN || name == "" {
		// Pods created from a generateName (by controllers) have no name in the request; the
		// pod rules also capture the name the apiserver gave it.
		name, okN = a.Str(FieldRespName)
	}
	res, okR := a.Str(FieldResource)
	if !okR && a.Has(FieldImages) {
		res, okR = "pods", true // the rules that capture pod images are about pods
	}
	switch {
	case okN && okR:
		return res + "/" + name
	case okN:
		return name
	case okR:
		return res
	}
	return ""
}

// Images are the pod's container images, or the ephemeral container's image.
func (a *Alert) Images() []string {
	if v, ok := a.Strs(FieldImages); ok {
		return v
	}
	if v, ok := a.Str(FieldEphImage); ok {
		return []string{v}
	}
	return nil
}

// Repositories are the pod's container image repositories: the rule's captured
// ka.req.pod.containers.image.repository, else derived from ka.req.pod.containers.image the way
// the k8saudit plugin derives it. Nil when the rule captured no pod images.
func (a *Alert) Repositories() []string {
	if v, ok := a.Strs(FieldRepos); ok {
		return v
	}
	v, ok := a.Strs(FieldImages)
	if !ok {
		return nil
	}
	out := make([]string, len(v))
	for i, img := range v {
		out[i] = ImageRepository(img)
	}
	return out
}

// Container is the container a session targeted, or the ephemeral container's name.
func (a *Alert) Container() string {
	if v, ok := a.Str(FieldContainer); ok {
		return v
	}
	v, _ := a.Str(FieldEphName)
	return v
}

// ImageRepository cuts an image at the first ':' and then at the first '@', exactly as the
// k8saudit plugin computes ka.req.pod.containers.image.repository (so "reg:5000/x:1" gives
// "reg"). It must agree with the engine, or exceptions keyed on it would never match.
func ImageRepository(image string) string {
	if i := strings.IndexByte(image, ':'); i >= 0 {
		image = image[:i]
	}
	if i := strings.IndexByte(image, '@'); i >= 0 {
		image = image[:i]
	}
	return image
}

// uniqSorted returns the distinct values, sorted.
func uniqSorted(v []string) []string {
	if len(v) == 0 {
		return nil
	}
	out := append([]string(nil), v...)
	sort.Strings(out)
	n := 1
	for _, s := range out[1:] {
		if s != out[n-1] {
			out[n] = s
			n++
		}
	}
	return out[:n]
}
