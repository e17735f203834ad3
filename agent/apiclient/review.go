package apiclient

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/falco-k8s/falco-k8s/alerts"
)

// Peer is one unit's agent, for the application-wide review.
type Peer struct {
	// Unit names the unit in the review, e.g. falco-k8s/1.
	Unit   string
	Client *Client
}

// UnitAlerts is what one unit answered.
type UnitAlerts struct {
	Unit   string `json:"unit"`
	Alerts int    `json:"alerts"`
	// Truncated is true when the unit had more matching alerts than the limit.
	Truncated bool `json:"truncated,omitempty"`
}

// UnitFailure is a unit that did not answer, and why (never the token).
type UnitFailure struct {
	Unit   string `json:"unit"`
	Reason string `json:"reason"`
}

// AppReview is the review of several units' alerts: the same per-rule tables as one agent's
// (alerts.Review, whose JSON fields it carries inline), which units answered with how many
// alerts, and which did not answer.
type AppReview struct {
	alerts.Review
	Units       []UnitAlerts  `json:"units"`
	NotAnswered []UnitFailure `json:"not_answered"`
}

// DefaultPeerTimeout bounds each unit's answer in ReviewPeers.
const DefaultPeerTimeout = 10 * time.Second

// ReviewPeers fetches GET /alerts with f from every peer at once, each within timeout (0:
// DefaultPeerTimeout), and merges what answered into one review. A unit that fails is listed in
// NotAnswered with the reason instead of failing the review; a review where none answered
// has no alerts and every unit in NotAnswered. With f.Limit, each unit returns at most that
// many and the review keeps the newest f.Limit of them all (Truncated says so).
func ReviewPeers(ctx context.Context, peers []Peer, f alerts.Filter, timeout time.Duration) *AppReview {
	answers := FetchPeers(ctx, peers, f, timeout)
	r := &AppReview{Units: []UnitAlerts{}, NotAnswered: []UnitFailure{}}
	var all []*alerts.Alert
	truncated := false
	for _, a := range answers {
		if a.Err != nil {
			r.NotAnswered = append(r.NotAnswered, UnitFailure{Unit: a.Unit, Reason: a.Err.Error()})
			continue
		}
		r.Units = append(r.Units, UnitAlerts{Unit: a.Unit, Alerts: len(a.Alerts), Truncated: a.Truncated})
		all = append(all, a.Alerts...)
		truncated = truncated || a.Truncated
	}
	if f.Limit > 0 && len(all) > f.Limit {
		slices.SortStableFunc(all, func(x, y *alerts.Alert) int { return x.Time.Compare(y.Time) })
		all, truncated = all[len(all)-f.Limit:], true
	}
	r.Review = *alerts.NewReview(all)
	r.Truncated = truncated
	return r
}

// PeerAnswer is one unit's answer to FetchPeers: its alerts, or why it did not answer.
type PeerAnswer struct {
	Unit      string
	Alerts    []*alerts.Alert
	Truncated bool
	Err       error
}

// FetchPeers is the one application-wide journal read: GET /alerts with f from every peer at
// once, each within timeout (0: DefaultPeerTimeout); answers are in peers' order, a failure in
// its unit's Err (never the whole call's).
func FetchPeers(ctx context.Context, peers []Peer, f alerts.Filter, timeout time.Duration) []PeerAnswer {
	if timeout <= 0 {
		timeout = DefaultPeerTimeout
	}
	answers := make([]PeerAnswer, len(peers))
	var wg sync.WaitGroup
	for i, p := range peers {
		answers[i].Unit = p.Unit
		if p.Client == nil {
			answers[i].Err = fmt.Errorf("no peer address or credential published yet")
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			pctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			a := &answers[i]
			a.Alerts, a.Truncated, a.Err = p.Client.Alerts(pctx, f)
			if a.Err != nil && pctx.Err() != nil && ctx.Err() == nil {
				a.Err = fmt.Errorf("no answer within %s: %w", timeout, a.Err)
			}
		}()
	}
	wg.Wait()
	return answers
}

// WriteTable prints which units answered (and which did not, with the reason), then the
// review's summary and per-rule tables.
func (r *AppReview) WriteTable(w io.Writer) error {
	ew := alerts.NewErrWriter(w)
	parts := make([]string, len(r.Units))
	for i, u := range r.Units {
		parts[i] = fmt.Sprintf("%s %d", u.Unit, u.Alerts)
	}
	fmt.Fprintf(ew, "Units:      %d answered", len(r.Units))
	if len(parts) > 0 {
		fmt.Fprintf(ew, " (%s)", strings.Join(parts, ", "))
	}
	fmt.Fprintln(ew)
	for _, u := range r.NotAnswered {
		fmt.Fprintf(ew, "No answer:  %s: %s\n", u.Unit, u.Reason)
	}
	if err := ew.Err(); err != nil {
		return err
	}
	return r.Review.WriteTable(w)
}

// WriteJSON prints the review as one indented JSON document.
func (r *AppReview) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return fmt.Errorf("write review: %w", err)
	}
	return nil
}
