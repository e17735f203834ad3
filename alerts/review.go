package alerts

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/falco-k8s/falco-k8s/engine"
)

// Review summarises alerts: totals first, then one group per rule with a row per distinct
// (namespace, target, images, container, user).
type Review struct {
	Alerts     int            `json:"alerts"`
	Rules      int            `json:"rules"`
	Namespaces []string       `json:"namespaces"`
	NoNS       int            `json:"alerts_without_namespace"`
	From       *time.Time     `json:"from,omitempty"`
	To         *time.Time     `json:"to,omitempty"`
	Priorities map[string]int `json:"priorities"`
	Groups     []RuleGroup    `json:"rules_detail"`
	// Skipped counts input lines that were not Falco JSON alerts; Truncated that the agent had
	// more alerts than the limit.
	Skipped   int  `json:"skipped_lines,omitempty"`
	Truncated bool `json:"truncated,omitempty"`
}

// RuleGroup is one rule's alerts.
type RuleGroup struct {
	Rule     string `json:"rule"`
	Priority string `json:"priority"`
	Count    int    `json:"count"`
	Rows     []Row  `json:"rows"`

	prio engine.Priority
}

// Row is one distinct subject of a rule's alerts. Empty strings mean the rule's output did not
// capture the value (shown as <NA>).
type Row struct {
	Namespace string    `json:"namespace"`
	Target    string    `json:"target"`
	Images    []string  `json:"images"`
	Container string    `json:"container"`
	User      string    `json:"user"`
	Count     int       `json:"count"`
	First     time.Time `json:"first"`
	Last      time.Time `json:"last"`
}

// NewReview groups alerts (in any order).
func NewReview(alerts []*Alert) *Review {
	r := &Review{Alerts: len(alerts), Namespaces: []string{}, Priorities: map[string]int{}, Groups: []RuleGroup{}}
	groups := map[string]*RuleGroup{}
	rows := map[string]int{} // key → index in its group's Rows
	nss := map[string]bool{}
	for _, a := range alerts {
		if r.From == nil || a.Time.Before(*r.From) {
			t := a.Time
			r.From = &t
		}
		if r.To == nil || a.Time.After(*r.To) {
			t := a.Time
			r.To = &t
		}
		r.Priorities[a.Priority.String()]++
		ns := a.Namespace()
		if ns == "" {
			r.NoNS++
		} else {
			nss[ns] = true
		}
		g := groups[a.Rule]
		if g == nil {
			g = &RuleGroup{Rule: a.Rule, Priority: a.Priority.String(), prio: a.Priority}
			groups[a.Rule] = g
		}
		g.Count++
		images := uniqSorted(a.Images())
		row := Row{Namespace: ns, Target: a.Target(), Images: images, Container: a.Container(), User: a.User()}
		key := strings.Join([]string{a.Rule, row.Namespace, row.Target, strings.Join(images, ","), row.Container, row.User}, "\x00")
		if i, ok := rows[key]; ok {
			p := &g.Rows[i]
			p.Count++
			if a.Time.Before(p.First) {
				p.First = a.Time
			}
			if a.Time.After(p.Last) {
				p.Last = a.Time
			}
			continue
		}
		row.Count, row.First, row.Last = 1, a.Time, a.Time
		rows[key] = len(g.Rows)
		g.Rows = append(g.Rows, row)
	}
	for ns := range nss {
		r.Namespaces = append(r.Namespaces, ns)
	}
	sort.Strings(r.Namespaces)
	for _, g := range groups {
		sort.SliceStable(g.Rows, func(i, j int) bool {
			a, b := g.Rows[i], g.Rows[j]
			if a.Count != b.Count {
				return a.Count > b.Count
			}
			if a.Namespace != b.Namespace {
				return a.Namespace < b.Namespace
			}
			if a.Target != b.Target {
				return a.Target < b.Target
			}
			return a.User < b.User
		})
		r.Groups = append(r.Groups, *g)
	}
	// Most severe first, then the noisiest: the order someone reviewing works through.
	sort.Slice(r.Groups, func(i, j int) bool {
		a, b := r.Groups[i], r.Groups[j]
		if a.prio != b.prio {
			return a.prio < b.prio
		}
		if a.Count != b.Count {
			return a.Count > b.Count
		}
		return a.Rule < b.Rule
	})
	r.Rules = len(r.Groups)
	return r
}

func na(s string) string {
	if s == "" {
		return NA
	}
	return s
}

// WriteTable prints the summary and one table per rule.
func (r *Review) WriteTable(w io.Writer) error {
	ew := NewErrWriter(w)
	fmt.Fprintf(ew, "Alerts:     %d", r.Alerts)
	if r.From != nil {
		fmt.Fprintf(ew, " (%s .. %s)", r.From.UTC().Format(time.RFC3339), r.To.UTC().Format(time.RFC3339))
	}
	fmt.Fprintln(ew)
	fmt.Fprintf(ew, "Rules:      %d\n", r.Rules)
	fmt.Fprintf(ew, "Namespaces: %d", len(r.Namespaces))
	if len(r.Namespaces) > 0 {
		fmt.Fprintf(ew, " (%s)", strings.Join(r.Namespaces, ", "))
	}
	if r.NoNS > 0 {
		fmt.Fprintf(ew, "; %d alerts without a namespace", r.NoNS)
	}
	fmt.Fprintln(ew)
	if len(r.Priorities) > 0 {
		var parts []string
		for p := engine.PriorityEmergency; p <= engine.PriorityDebug; p++ {
			if n := r.Priorities[p.String()]; n > 0 {
				parts = append(parts, fmt.Sprintf("%s %d", p, n))
			}
		}
		fmt.Fprintf(ew, "Priorities: %s\n", strings.Join(parts, ", "))
	}
	if r.Skipped > 0 {
		fmt.Fprintf(ew, "Skipped:    %d lines that are not Falco JSON alerts\n", r.Skipped)
	}
	if r.Truncated {
		fmt.Fprintln(ew, "Truncated:  the agent has more matching alerts than the limit; narrow --since or raise --limit")
	}
	for _, g := range r.Groups {
		fmt.Fprintf(ew, "\n%s (%s): %s\n", g.Rule, g.Priority, plural(g.Count, "alert"))
		tw := tabwriter.NewWriter(ew, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "NAMESPACE\tTARGET\tIMAGES\tCONTAINER\tUSER\tCOUNT")
		for _, row := range g.Rows {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\n", na(row.Namespace), na(row.Target), na(strings.Join(row.Images, ",")),
				na(row.Container), na(row.User), row.Count)
		}
		tw.Flush()
	}
	return ew.Err()
}

// WriteJSON prints the review as one indented JSON document.
func (r *Review) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return fmt.Errorf("write review: %w", err)
	}
	return nil
}

// ErrWriter keeps the first write error so printing code can stay linear and check once.
type ErrWriter struct {
	w   io.Writer
	err error
}

// NewErrWriter wraps w.
func NewErrWriter(w io.Writer) *ErrWriter { return &ErrWriter{w: w} }

// Err is the first write error, if any.
func (e *ErrWriter) Err() error { return e.err }

func (e *ErrWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(p)
	if err != nil {
		e.err = fmt.Errorf("write: %w", err)
	}
	return n, err
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}
