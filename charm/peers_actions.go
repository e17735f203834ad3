package charm

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/falco-k8s/falco-k8s/agent/apiclient"
)

// ErrNotLeader is an application-wide change asked of a unit that is not the leader.
type ErrNotLeader struct {
	Action, Args string
	App          string
}

func (e *ErrNotLeader) Error() string {
	return fmt.Sprintf("%s changes the application's shared state, which only the leader writes: run `juju run %s/leader %s%s`",
		e.Action, e.App, e.Action, e.Args)
}

// PeerUnit is one unit of the application reachable for an application-wide query.
type PeerUnit struct {
	Name   string
	Client *apiclient.Client
	// Problem is set when the unit cannot be asked at all (no address published yet).
	Problem string
}

// PeerUnits lists every unit of the application (this one first, through its local
// listener; the others through their peer API with the application's token). Without a peer
// relation it is this unit alone.
func (c *Context) PeerUnits(ctx context.Context, p *Peers, local *apiclient.Client) []PeerUnit {
	out := []PeerUnit{{Name: c.Env.Unit, Client: local}}
	if p == nil {
		return out
	}
	names := make([]string, 0, len(p.Units))
	for u := range p.Units {
		names = append(names, u)
	}
	sort.Strings(names)
	for _, u := range names {
		addr := p.Units[u][keyPeerAddress]
		pu := PeerUnit{Name: u}
		switch {
		case addr == "":
			pu.Problem = "no peer address published yet"
		case p.Token == "":
			pu.Problem = "no peer token (the leader has not created it yet)"
		case len(p.CA) == 0:
			pu.Problem = "no peer CA (the leader has not created it yet)"
		case !strings.HasPrefix(addr, "https://"):
			// The token never goes over plain http (a unit of an older revision).
			pu.Problem = "its peer API is not on https yet"
		default:
			cl, err := apiclient.NewRemote(addr, apiclient.RemoteOptions{Token: p.Token, CAPEM: p.CA, Timeout: apiclient.DefaultPeerTimeout})
			if err != nil {
				pu.Problem = err.Error()
			}
			pu.Client = cl
		}
		out = append(out, pu)
	}
	return out
}

// PublishTuning is the leader's: the shared tuning file content every unit renders (""
// after a reset).
func (c *Context) PublishTuning(ctx context.Context, p *Peers, content string) error {
	rt, ok := c.Tools.(RelationTools)
	if p == nil || !ok {
		return nil
	}
	next := Tuning{Content: content}
	if p.Tuning != nil {
		next.Generation = p.Tuning.Generation
	}
	next.Generation++
	b, err := json.Marshal(next)
	if err != nil {
		return err
	}
	if err := rt.RelationSet(ctx, p.RelID, true, map[string]string{keyTuning: string(b)}); err != nil {
		return fmt.Errorf("relation-set %s: %w", p.RelID, err)
	}
	p.Tuning = &next
	return nil
}

// AdoptTuning publishes the leader's existing tuning file when the application has none yet
// (a single unit scaled out keeps what it was tuned with).
func (c *Context) adoptTuning(ctx context.Context, w Workload, p *Peers) error {
	if p == nil || !p.Leader || p.Tuning != nil {
		return nil
	}
	b, err := w.Pull(ctx, c.Env.WorkloadRoot+TuningPath)
	if err != nil {
		return nil // no file: nothing to adopt
	}
	return c.PublishTuning(ctx, p, string(b))
}
