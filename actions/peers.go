package actions

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/falco-k8s/falco-k8s/agent/apiclient"
	"github.com/falco-k8s/falco-k8s/alerts"
	"github.com/falco-k8s/falco-k8s/charm"
)

// leaderOnly refuses an application-wide change on a unit that is not the leader, naming the
// command to run instead. Without a peer relation the unit is the whole application.
func leaderOnly(ctx context.Context, c *charm.Context, action string, p Params) (*charm.Peers, error) {
	peers, err := c.Peers(ctx)
	if err != nil {
		return nil, err
	}
	if peers != nil && !peers.Leader {
		return nil, &charm.ErrNotLeader{Action: action, Args: paramArgs(p), App: c.Env.App}
	}
	return peers, nil
}

// paramArgs renders the action's parameters as `juju run` arguments (" k=v ...").
func paramArgs(p Params) string {
	keys := make([]string, 0, len(p))
	for k := range p {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		v := fmt.Sprint(p[k])
		if v == "" || v == "false" {
			continue // defaults add nothing to the command
		}
		fmt.Fprintf(&b, " %s=%s", k, v)
	}
	return b.String()
}

// appUnits is every unit of the application as review peers: this one through its local
// listener, the others through their peer API with the application's token.
func appUnits(ctx context.Context, c *charm.Context) ([]apiclient.Peer, *apiclient.Client, error) {
	local, _, err := agent(ctx, c)
	if err != nil {
		return nil, nil, err
	}
	peers, err := c.Peers(ctx)
	if err != nil {
		return nil, local, err
	}
	var out []apiclient.Peer
	for _, u := range c.PeerUnits(ctx, peers, local) {
		out = append(out, apiclient.Peer{Unit: u.Name, Client: u.Client})
	}
	return out, local, nil
}

// appAlerts reads the journal of every unit of the application at once, for tune-rules (which
// needs the alerts themselves, not apiclient.ReviewPeers' summary). Units that do not answer
// are returned by name with the reason, never failing the whole query.
func appAlerts(ctx context.Context, c *charm.Context, f alerts.Filter) (list []*alerts.Alert, truncated bool, answered []string, missing []string, local *apiclient.Client, err error) {
	units, local, err := appUnits(ctx, c)
	if err != nil {
		return nil, false, nil, nil, local, err
	}
	for _, a := range apiclient.FetchPeers(ctx, units, f, 0) {
		if a.Err != nil {
			missing = append(missing, fmt.Sprintf("%s (%v)", a.Unit, a.Err))
			continue
		}
		answered = append(answered, a.Unit)
		list = append(list, a.Alerts...)
		truncated = truncated || a.Truncated
	}
	if len(answered) == 0 {
		return nil, false, nil, missing, local, fmt.Errorf("cannot read alerts: no unit answered: %s", strings.Join(missing, "; "))
	}
	sort.SliceStable(list, func(i, j int) bool { return list[i].Time.Before(list[j].Time) })
	return list, truncated, answered, missing, local, nil
}
