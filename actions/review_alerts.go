package actions

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/falco-k8s/falco-k8s/agent/apiclient"
	"github.com/falco-k8s/falco-k8s/alerts"
	"github.com/falco-k8s/falco-k8s/charm"
	"github.com/falco-k8s/falco-k8s/engine"
)

// review-alerts summarises the alerts in the journals of every unit of the application (GET
// /alerts, the other units' through the peer API), as `falco-k8s alerts review` does: totals,
// then one table per rule. A unit that does not answer is named, not an error.
func init() { Register("review-alerts", reviewAlerts) }

// alertFilter reads the since, namespace, rule and priority parameters.
func alertFilter(p Params) (alerts.Filter, error) {
	f := alerts.Filter{Namespace: p.String("namespace"), Rule: p.String("rule")}
	var err error
	if f.Since, err = alerts.ParseSince(p.String("since"), time.Now()); err != nil {
		return f, err
	}
	if pr := p.String("priority"); pr != "" {
		if f.Priority, err = engine.ParsePriority(pr); err != nil {
			return f, err
		}
		f.HasPriority = true
	}
	return f, nil
}

func reviewAlerts(ctx context.Context, c *charm.Context, p Params) (map[string]any, error) {
	f, err := alertFilter(p)
	if err != nil {
		return nil, err
	}
	// The whole application: every unit's journal at once (apiclient.ReviewPeers), units that
	// did not answer named instead of failing the review.
	units, _, err := appUnits(ctx, c)
	if err != nil {
		return nil, err
	}
	r := apiclient.ReviewPeers(ctx, units, f, 0)
	var b bytes.Buffer
	switch format := p.String("format"); format {
	case "", "table":
		err = r.WriteTable(&b)
	case "json":
		err = r.WriteJSON(&b)
	default:
		return nil, fmt.Errorf("format %q is not table or json", format)
	}
	if err != nil {
		return nil, err
	}
	answered := make([]string, len(r.Units))
	for i, u := range r.Units {
		answered[i] = u.Unit
	}
	missing := make([]string, len(r.NotAnswered))
	for i, u := range r.NotAnswered {
		missing[i] = fmt.Sprintf("%s (%s)", u.Unit, u.Reason)
	}
	if len(answered) == 0 {
		return nil, fmt.Errorf("cannot read alerts: no unit answered: %s", strings.Join(missing, "; "))
	}
	out := map[string]any{
		"alerts":     fmt.Sprint(r.Alerts),
		"rules":      fmt.Sprint(r.Rules),
		"namespaces": strings.Join(r.Namespaces, ","),
		"truncated":  fmt.Sprint(r.Truncated),
		"review":     b.String(),
		"units":      strings.Join(answered, ","),
	}
	if len(missing) > 0 {
		out["not-answering"] = strings.Join(missing, "; ")
		out["summary"] = fmt.Sprintf("%d alerts from %d of %d units; not answering: %s", r.Alerts, len(answered), len(answered)+len(missing), strings.Join(missing, "; "))
	} else {
		out["summary"] = fmt.Sprintf("%d alerts from all %d units", r.Alerts, len(answered))
	}
	if r.From != nil {
		out["from"], out["to"] = r.From.UTC().Format(time.RFC3339), r.To.UTC().Format(time.RFC3339)
	}
	return out, nil
}
