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

// review-alerts summarises the alerts in the agent's journal (GET /alerts), as
// `falco-k8s alerts review` does: totals, then one table per rule.
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

// fetchAlerts reads the unit's agent journal.
func fetchAlerts(ctx context.Context, c *charm.Context, f alerts.Filter) ([]*alerts.Alert, bool, *apiclient.Client, error) {
	a, _, err := agent(ctx, c)
	if err != nil {
		return nil, false, nil, err
	}
	list, truncated, err := a.Alerts(ctx, f)
	if err != nil {
		return nil, false, a, fmt.Errorf("cannot read alerts: the agent is not answering (%v)", err)
	}
	return list, truncated, a, nil
}

func reviewAlerts(ctx context.Context, c *charm.Context, p Params) (map[string]any, error) {
	f, err := alertFilter(p)
	if err != nil {
		return nil, err
	}
	list, truncated, _, err := fetchAlerts(ctx, c, f)
	if err != nil {
		return nil, err
	}
	r := alerts.NewReview(list)
	r.Truncated = truncated
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
	out := map[string]any{
		"alerts":     fmt.Sprint(r.Alerts),
		"rules":      fmt.Sprint(r.Rules),
		"namespaces": strings.Join(r.Namespaces, ","),
		"truncated":  fmt.Sprint(truncated),
		"review":     b.String(),
	}
	if r.From != nil {
		out["from"], out["to"] = r.From.UTC().Format(time.RFC3339), r.To.UTC().Format(time.RFC3339)
	}
	return out, nil
}
