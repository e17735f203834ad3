package rulesfile

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/falco-k8s/falco-k8s/engine"
)

// Summary is the one-line error for a failed load: each invalid file with its error count.
func Summary(results []engine.FileResult) string {
	var parts []string
	for _, r := range results {
		if !r.Successful {
			n := len(r.Errors)
			parts = append(parts, fmt.Sprintf("%s: %d error(s)", r.Name, n))
		}
	}
	return "invalid rules: " + strings.Join(parts, ", ")
}

// WriteText prints load results as falco -V does: per file Ok, Ok with warnings (the warnings
// going to stderr) or Invalid with every error and warning, each with a hint on what to fix.
func WriteText(stdout, stderr io.Writer, results []engine.FileResult) {
	for _, r := range results {
		switch {
		case !r.Successful:
			fmt.Fprintf(stdout, "%s: Invalid\n", r.Name)
			fmt.Fprintf(stdout, "%d Errors:\n", len(r.Errors))
			for _, d := range r.Errors {
				writeDiagText(stdout, d)
			}
			if len(r.Warnings) > 0 {
				fmt.Fprintf(stdout, "%d Warnings:\n", len(r.Warnings))
				for _, d := range r.Warnings {
					writeDiagText(stdout, d)
				}
			}
		case len(r.Warnings) > 0:
			fmt.Fprintf(stdout, "%s: Ok, with warnings\n", r.Name)
			fmt.Fprintf(stderr, "%s: %d Warnings:\n", r.Name, len(r.Warnings))
			for _, d := range r.Warnings {
				writeDiagText(stderr, d)
			}
		default:
			fmt.Fprintf(stdout, "%s: Ok\n", r.Name)
		}
	}
}

func writeDiagText(w io.Writer, d engine.Diagnostic) {
	fmt.Fprint(w, d.FalcoVerbose())
	fmt.Fprintf(w, "  at %s\n", d.String())
	if h := engine.Hint(d); h != "" {
		fmt.Fprintf(w, "  fix: %s\n", h)
	}
}

// JSONDiag is one diagnostic in falco -V -o json_output=true's document.
type JSONDiag struct {
	Context struct {
		Locations []engine.Location `json:"locations"`
		Snippet   string            `json:"snippet"`
	} `json:"context"`
	Code     engine.Code `json:"code"`
	CodeDesc string      `json:"codedesc"`
	Message  string      `json:"message"`
}

// JSONFileResult is one file's entry in that document.
type JSONFileResult struct {
	Name           string     `json:"name"`
	Successful     bool       `json:"successful"`
	SchemaValid    string     `json:"schema_valid"`
	SchemaWarnings []string   `json:"schema_warnings"`
	Errors         []JSONDiag `json:"errors"`
	Warnings       []JSONDiag `json:"warnings"`
}

// JSONDocument is falco -V -o json_output=true's document.
type JSONDocument struct {
	Results []JSONFileResult `json:"falco_load_results"`
}

func toJSONDiags(ds []engine.Diagnostic) []JSONDiag {
	out := make([]JSONDiag, 0, len(ds))
	for _, d := range ds {
		var j JSONDiag
		j.Context.Locations = d.Locations
		j.Context.Snippet = d.Snippet
		j.Code, j.CodeDesc, j.Message = d.Code, d.Code.JSONDesc(), d.Message
		out = append(out, j)
	}
	return out
}

// NewJSONDocument converts load results to falco -V's JSON document.
func NewJSONDocument(results []engine.FileResult) JSONDocument {
	var doc JSONDocument
	for _, r := range results {
		doc.Results = append(doc.Results, JSONFileResult{
			Name: r.Name, Successful: r.Successful, SchemaValid: "none", SchemaWarnings: []string{},
			Errors: toJSONDiags(r.Errors), Warnings: toJSONDiags(r.Warnings),
		})
	}
	return doc
}

// WriteJSON prints falco -V -o json_output=true's document.
func WriteJSON(w io.Writer, results []engine.FileResult) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc.Encode(NewJSONDocument(results))
}
