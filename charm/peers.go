package charm

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/falco-k8s/falco-k8s/agent/apiclient"
	agentconfig "github.com/falco-k8s/falco-k8s/agent/config"
	"github.com/falco-k8s/falco-k8s/agent/follower"
	"github.com/falco-k8s/falco-k8s/agent/status"
)

// N units, one detection: the units of the application share one state through the peer
// relation, and the leader owns it.
//
//   - Application databag (leader writes, every unit reads): the published accepted rules set
//     (each reference's digest, the rule files, a generation), the shared tuning file and the
//     URI of the application-owned Juju secret holding the peer API token.
//   - Each unit's databag: what its agent runs (digest per reference, and the error when it
//     cannot apply the published set) and its peer API address.
//
// The leader's agent follows the registry (follow.mode poll); every other agent is pinned
// (follow.mode pinned) to the digests of a pins file the charm writes from the databag, so the
// registry sees one poller and every unit runs exactly what the leader accepted. The agent
// records a Pebble custom notice on every accepted or ignored candidate; Juju turns it into the
// falco-pebble-custom-notice hook, so the leader publishes at once.
const (
	// PeerEndpoint is metadata.yaml's peer relation.
	PeerEndpoint = "falco-peers"
	// PinsPath is the pinned agents' pins file; PeerTokenPath the peer API token (0600).
	PinsPath      = ConfigDir + "/pins.json"
	PeerTokenPath = ConfigDir + "/peer-token"
	// TuningPath is the agent's default rules.tuning_file (loaded last, by Falco too with
	// engine=falco), which every unit renders from the application databag.
	TuningPath = StateDir + "/tuning.yaml"
	// PeerTokenLabel labels the application-owned secret with the peer API token.
	PeerTokenLabel = "peer-token"
	// NoticeKey is the Pebble custom notice the agent records for accepted/ignored candidates.
	NoticeKey = agentconfig.NoticeKey
	// workloadPebbleSocket is where Juju mounts the container's own Pebble socket inside it.
	workloadPebbleSocket = "/charm/container/pebble.socket"

	keyPublished    = "published"
	keyTuning       = "tuning"
	keyReviewSecret = "review-secret"
	keyRunning      = "running"
	keyPeerAddress  = "peer-address"
)

// Pin is one reference and the digest it runs: the pins file's entry (agent/follower), also
// what the databags carry.
type Pin = follower.Pin

// Published is the leader's accepted set in the application databag.
type Published struct {
	Generation int      `json:"generation"`
	Pins       []Pin    `json:"pins"`
	RuleFiles  []string `json:"rule_files"`
	// By is the leader that published it.
	By string `json:"by"`
	// Ignored is the latest candidate the leader's agent refused, with the reason.
	Ignored *Ignored `json:"ignored,omitempty"`
}

// Ignored is a refused candidate.
type Ignored struct {
	Ref    string `json:"ref"`
	Digest string `json:"digest"`
	Reason string `json:"reason"`
}

// Tuning is the shared tuning file (Content "" once reset).
type Tuning struct {
	Generation int    `json:"generation"`
	Content    string `json:"content"`
}

// Running is what one unit's agent runs, in its unit databag.
type Running struct {
	Pins []Pin `json:"pins"`
	// Generation is the published generation the unit runs (0: not converged on any).
	Generation int `json:"generation"`
	// Error says why the unit does not run the published set (kept its last good one).
	Error string `json:"error,omitempty"`
}

// Peers is the peer relation as one hook sees it.
type Peers struct {
	RelID  string
	Leader bool
	Unit   string
	// Units are the other units in scope and their databags.
	Units     map[string]map[string]string
	App       map[string]string
	Published *Published
	Tuning    *Tuning
	// TokenURI and Token are the peer API credential (never logged).
	TokenURI, Token string
	// Address is this unit's ingress address on the peer relation; PeerPort its peer API port.
	Address  string
	PeerPort int
	// CA is the charm CA's certificate the peer API's certificates are signed by (nil until
	// the leader made it); ca the secret's content, tlsCert/tlsKey this unit's pair.
	CA              []byte
	ca              map[string]string
	tlsCert, tlsKey []byte
	mine            map[string]string
	// cached: read from the manifest's snapshot (peerAgent); the hook must not write databags.
	cached bool
}

// peerAddress is the URL peers reach this unit's peer API at.
func (p *Peers) peerAddress() string {
	if len(p.tlsCert) == 0 || p.Address == "" {
		return "" // https only: no address to publish until the unit has its certificate
	}
	return "https://" + net.JoinHostPort(p.Address, strconv.Itoa(p.PeerPort))
}

// PeerAgent is what the peer relation adds to the agent configuration.
type PeerAgent struct {
	Mode         string // poll (leader) or pinned
	PeerPort     int
	Token        string
	PebbleSocket string
	// TLSCert and TLSKey serve the peer API (no peer API without them).
	TLSCert, TLSKey []byte
}

// Peers reads the peer relation; nil when the unit has none (tools without relations, or
// before -relation-created). The leader creates the peer token secret on first use.
func (c *Context) Peers(ctx context.Context) (*Peers, error) {
	rt, ok := c.Tools.(RelationTools)
	if !ok {
		return nil, nil
	}
	ids, err := c.relationIDs(ctx, rt, PeerEndpoint)
	if err != nil {
		return nil, fmt.Errorf("relation-ids %s: %w", PeerEndpoint, err)
	}
	if len(ids) == 0 {
		return nil, nil
	}
	p := &Peers{RelID: ids[0], Unit: c.Env.Unit, Units: map[string]map[string]string{}}
	// Every hook tool is a process and a round trip to the controller: the independent reads
	// go at once (the unit agent serves hook tools concurrently), then every unit's bag at once.
	var units []string
	errs := make([]error, 5)
	var wg sync.WaitGroup
	for i, read := range []func() error{
		func() (err error) { p.Leader, err = rt.IsLeader(ctx); return wrap(err, "is-leader") },
		func() (err error) {
			p.App, err = rt.RelationGet(ctx, p.RelID, c.Env.App, true)
			return wrap(err, "relation-get --app "+p.RelID)
		},
		func() (err error) {
			units, err = rt.RelationList(ctx, p.RelID)
			return wrap(err, "relation-list "+p.RelID)
		},
		func() (err error) {
			p.mine, err = rt.RelationGet(ctx, p.RelID, p.Unit, false)
			return wrap(err, "relation-get "+p.RelID+" "+p.Unit)
		},
		func() (err error) {
			p.Address, err = rt.IngressAddress(ctx, PeerEndpoint)
			return wrap(err, "network-get "+PeerEndpoint)
		},
	} {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = read() }()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if p.App == nil {
		p.App = map[string]string{}
	}
	departing := ""
	if c.Env.Name == PeerEndpoint+"-relation-departed" {
		departing = os.Getenv("JUJU_DEPARTING_UNIT")
	}
	units = slices.DeleteFunc(units, func(u string) bool { return u == departing })
	bags := make([]map[string]string, len(units))
	errs = make([]error, len(units))
	for i, u := range units {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var err error
			bags[i], err = rt.RelationGet(ctx, p.RelID, u, false)
			errs[i] = wrap(err, "relation-get "+p.RelID+" "+u)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	for i, u := range units {
		p.Units[u] = bags[i]
	}
	// Only our own leader writes these; a bad value is a bug, but must not wedge the unit.
	if p.Published, err = ParsePublished(p.App[keyPublished]); err != nil {
		c.Log.Warn().Err(err).Msg("ignoring the published rules set")
	}
	if p.Tuning, err = ParseTuning(p.App[keyTuning]); err != nil {
		c.Log.Warn().Err(err).Msg("ignoring the shared tuning")
	}
	if err := c.peerToken(ctx, rt, p); err != nil {
		return nil, err
	}
	if err := c.peerCA(ctx, rt, p); err != nil {
		return nil, err
	}
	return p, nil
}

// peerToken reads the peer API token; the leader creates its secret and publishes its URI.
func (c *Context) peerToken(ctx context.Context, rt RelationTools, p *Peers) error {
	ot, ok := c.Tools.(OwnedSecretTools)
	if !ok {
		return nil
	}
	p.TokenURI = p.App[keyReviewSecret]
	if p.Leader {
		m, err := ot.SecretGetLabel(ctx, PeerTokenLabel)
		switch {
		case errors.Is(err, ErrOwnedSecretMissing):
			b := make([]byte, 32)
			if _, err := rand.Read(b); err != nil {
				return fmt.Errorf("peer token: %w", err)
			}
			m = map[string]string{"token": hex.EncodeToString(b)}
			if p.TokenURI, err = ot.SecretAdd(ctx, PeerTokenLabel, m); err != nil {
				return fmt.Errorf("secret-add %s: %w", PeerTokenLabel, err)
			}
		case err != nil:
			return fmt.Errorf("secret-get --label %s: %w", PeerTokenLabel, err)
		case p.TokenURI == "":
			if p.TokenURI, err = ot.SecretIDLabel(ctx, PeerTokenLabel); err != nil {
				return fmt.Errorf("secret-info-get %s: %w", PeerTokenLabel, err)
			}
		}
		p.Token = m["token"]
		if p.App[keyReviewSecret] != p.TokenURI {
			if err := rt.RelationSet(ctx, p.RelID, true, map[string]string{keyReviewSecret: p.TokenURI}); err != nil {
				return fmt.Errorf("relation-set %s: %w", p.RelID, err)
			}
			p.App[keyReviewSecret] = p.TokenURI
		}
	} else if p.TokenURI != "" {
		m, err := c.Tools.SecretGet(ctx, p.TokenURI, false)
		if err != nil {
			return fmt.Errorf("secret-get peer token: %w", err)
		}
		p.Token = m["token"]
	}
	c.AddSecret(p.Token)
	return nil
}

// Agent is the agent configuration's share of the peer relation.
func (p *Peers) Agent(env Env, webhookPort int) *PeerAgent {
	if p == nil {
		return nil
	}
	p.PeerPort = PeerPortFor(webhookPort)
	a := &PeerAgent{Mode: "pinned", PeerPort: p.PeerPort, Token: p.Token, PebbleSocket: workloadPebbleSocket, TLSCert: p.tlsCert, TLSKey: p.tlsKey}
	if p.Leader {
		a.Mode = "poll"
	}
	if env.PebbleSocket != "/charm/containers/"+Container+"/pebble.socket" {
		// Outside Juju the test's Pebble shares the host: the charm's socket is the agent's.
		a.PebbleSocket = env.PebbleSocket
	}
	return a
}

// PeerPortFor is the peer API port: after the webhook, status and metrics ports, or below them
// near the top of the range.
func PeerPortFor(webhook int) int {
	taken := []int{webhook, statusPortFor(webhook), metricsPortFor(webhook)}
	for _, p := range []int{webhook + 3, webhook - 1, webhook - 2, webhook - 3} {
		if p >= 1 && p <= 65535 && !slices.Contains(taken, p) {
			return p
		}
	}
	return webhook + 3
}

// pinsFile renders the pins file for a pinned agent (follower.WritePins): the published set,
// or no pins yet.
func (p *Peers) pinsFile() ([]byte, error) {
	var pins []Pin
	if p.Published != nil {
		pins = p.Published.Pins
	}
	b, err := follower.WritePins(pins)
	if err != nil {
		return nil, fmt.Errorf("pins file: %w", err)
	}
	return append(b, '\n'), nil
}

// syncPeerFiles writes the pins file (pinned units) and the shared tuning file when their
// content differs from the workload's; neither is an input of the agent's start-up hash, so a
// change never restarts it: the agent watches the pins file and reloads tuning on request.
func (c *Context) syncPeerFiles(ctx context.Context, w Workload, p *Peers) (pins, tuning bool, err error) {
	if p == nil {
		return false, false, nil
	}
	root := c.Env.WorkloadRoot
	if err := c.adoptTuning(ctx, w, p); err != nil {
		return false, false, err
	}
	if !p.Leader {
		b, err := p.pinsFile()
		if err != nil {
			return false, false, err
		}
		if pins, err = pushIfChanged(ctx, w, root+PinsPath, b); err != nil {
			return false, false, err
		}
	}
	if p.Tuning != nil {
		if p.Tuning.Content == "" {
			if err := w.Remove(ctx, root+TuningPath); err == nil {
				tuning = true
			} else if !errors.Is(err, os.ErrNotExist) {
				return pins, false, err
			}
		} else if tuning, err = pushIfChanged(ctx, w, root+TuningPath, []byte(p.Tuning.Content)); err != nil {
			return pins, false, err
		}
	}
	return pins, tuning, nil
}

func pushIfChanged(ctx context.Context, w Workload, path string, content []byte) (bool, error) {
	old, err := w.Pull(ctx, path)
	if err == nil && bytes.Equal(old, content) {
		return false, nil
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return false, err
	}
	if err := w.Push(ctx, path, bytes.NewReader(content), 0o644); err != nil {
		return false, err
	}
	return true, nil
}

// RunningPins is what the agent runs: each followed reference's accepted digest.
func RunningPins(st *status.Status) []Pin {
	seen := map[Pin]bool{}
	var out []Pin
	for _, src := range st.Sources {
		x := Pin{Ref: src.Ref, Digest: src.Digest}
		if x.Ref == "" || x.Digest == "" || seen[x] {
			continue
		}
		seen[x] = true
		out = append(out, x)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Ref < out[j].Ref })
	return out
}

func samePins(a, b []Pin) bool {
	return slices.Equal(a, b) || len(a) == 0 && len(b) == 0
}

// PeerResult is the peer relation's share of a reconcile: the unit status to set instead of
// the agent's when it does not run the published set yet.
type PeerResult struct {
	Status, Message string
}

// PeerConverge brings the unit in line with the published state once its agent answers: a
// pinned agent re-reads a changed pins file (POST /sync), a changed tuning file is reloaded,
// the unit publishes what it runs, and the leader publishes what its agent accepted and sets
// the application status.
func (c *Context) PeerConverge(ctx context.Context, p *Peers, agent *apiclient.Client, st *status.Status, pinsChanged, tuningChanged, replanned bool) (*status.Status, *PeerResult, error) {
	rt, _ := c.Tools.(RelationTools)
	if p == nil || rt == nil {
		return st, nil, nil
	}
	var err error
	if tuningChanged && !replanned {
		if err := agent.Reload(ctx); err != nil {
			return st, &PeerResult{Waiting, "shared tuning written but the agent did not reload: " + err.Error()}, nil
		}
	}
	var syncErr string
	// A pinned agent not running the published set is asked again on every hook (a digest it
	// could not fetch, the registry back): POST /sync re-reads the pins and retries them.
	behind := !p.Leader && p.Published != nil && !samePins(RunningPins(st), p.Published.Pins)
	if (pinsChanged || behind) && !replanned {
		pinsChanged = true
		res, err := agent.Sync(ctx, false)
		if err != nil {
			syncErr = err.Error()
		}
		for _, r := range res {
			if r.Result == "error" || r.Result == "ignored" {
				syncErr = shortArtifact(r.Ref, r.Digest) + ": " + r.Reason
			}
		}
	}
	if pinsChanged || tuningChanged {
		if st, err = agent.Status(ctx); err != nil {
			return nil, nil, err
		}
	}
	run := Running{Pins: RunningPins(st)}
	if p.Leader && !p.cached {
		c.publishAccepted(ctx, rt, p, st, run.Pins)
	}
	var res *PeerResult
	pub := p.Published
	if pub != nil {
		if samePins(run.Pins, pub.Pins) {
			run.Generation = pub.Generation
		} else {
			run.Error = firstNonEmpty(syncErr, sourceError(st))
			msg := fmt.Sprintf("converging on the published rules (%s)", PinsLabel(pub.Pins))
			if run.Error != "" {
				msg = fmt.Sprintf("keeping %s: cannot apply the published %s: %s", PinsLabel(run.Pins), PinsLabel(pub.Pins), run.Error)
			}
			res = &PeerResult{Waiting, msg}
		}
	} else if !p.Leader && len(st.Sources) > 0 {
		// Rules are followed but the leader has published nothing yet: a pinned unit must not
		// look done while it runs only the built-in rules.
		res = &PeerResult{Waiting, "waiting for the leader to publish the accepted rules"}
	}
	if p.cached {
		// Another relation's hook: the databags and the application status are the next full
		// hook's to write (a snapshot's leadership may be stale).
		return st, res, nil
	}
	if err := c.publishRunning(ctx, rt, p, run); err != nil {
		return st, nil, err
	}
	if p.Leader {
		if err := c.setAppStatus(ctx, p, run); err != nil {
			return st, nil, err
		}
	}
	return st, res, nil
}

func sourceError(st *status.Status) string {
	for _, s := range st.Sources {
		if s.PinError != "" {
			return s.PinError
		}
	}
	for _, s := range st.Sources {
		if s.LastError != "" {
			return s.LastError
		}
	}
	return ""
}

// publishAccepted is the leader's: the accepted set its agent runs becomes the published one when it
// differs (a reference without a digest yet keeps its published pin, so a restarting agent never
// unpublishes anything), and the latest ignored candidate is recorded with its reason.
func (c *Context) publishAccepted(ctx context.Context, rt RelationTools, p *Peers, st *status.Status, running []Pin) {
	var next Published
	if p.Published != nil {
		next = *p.Published
	}
	pins := map[string]string{}
	for _, x := range next.Pins {
		pins[x.Ref] = x.Digest
	}
	changed := p.Published == nil && len(running) > 0
	for _, x := range running {
		if pins[x.Ref] != x.Digest {
			pins[x.Ref], changed = x.Digest, true
		}
	}
	// References no longer followed (rules-artifacts changed) leave the published set.
	for ref := range pins {
		if !slices.ContainsFunc(st.Sources, func(s status.Source) bool { return s.Ref == ref }) &&
			!slices.ContainsFunc(running, func(x Pin) bool { return x.Ref == ref }) {
			delete(pins, ref)
			changed = true
		}
	}
	if changed {
		// A new accepted set: the generation moves and an older refusal no longer applies.
		next.Generation++
		next.By = p.Unit
		next.Ignored = nil
		next.Pins = next.Pins[:0:0]
		for ref, d := range pins {
			next.Pins = append(next.Pins, Pin{Ref: ref, Digest: d})
		}
		sort.Slice(next.Pins, func(i, j int) bool { return next.Pins[i].Ref < next.Pins[j].Ref })
		next.RuleFiles = nil
		for _, src := range st.Sources {
			for _, f := range src.Files {
				if !slices.Contains(next.RuleFiles, f) {
					next.RuleFiles = append(next.RuleFiles, f)
				}
			}
		}
	}
	// The latest refusal since the running set was accepted, kept until a new set is published
	// (a new leader's agent has none to report: what the old leader published stays).
	if li := st.LastIgnored; li != nil && (st.LastAccepted == nil || li.Time.After(st.LastAccepted.Time)) {
		ig := &Ignored{Ref: li.Ref, Digest: li.Digest, Reason: li.Reason}
		if next.Ignored == nil || *next.Ignored != *ig {
			next.Ignored, changed = ig, true
		}
	}
	if !changed {
		return
	}
	b, err := json.Marshal(next)
	if err != nil {
		return
	}
	if err := rt.RelationSet(ctx, p.RelID, true, map[string]string{keyPublished: string(b)}); err != nil {
		c.Log.Warn().Err(err).Msg("cannot publish the accepted rules set")
		return
	}
	p.Published = &next
	p.App[keyPublished] = string(b)
	c.Log.Info().Int("generation", next.Generation).Str("pins", PinsLabel(next.Pins)).Msg("published the accepted rules set to the peers")
}

// publishRunning writes the unit's databag when what it runs or its peer address changed.
func (c *Context) publishRunning(ctx context.Context, rt RelationTools, p *Peers, run Running) error {
	b, err := json.Marshal(run)
	if err != nil {
		return err
	}
	want := map[string]string{keyRunning: string(b), keyPeerAddress: p.peerAddress()}
	mine := p.mine
	if mine[keyRunning] == want[keyRunning] && mine[keyPeerAddress] == want[keyPeerAddress] {
		return nil
	}
	if err := rt.RelationSet(ctx, p.RelID, false, want); err != nil {
		return fmt.Errorf("relation-set %s: %w", p.RelID, err)
	}
	p.mine = want
	return nil
}

// agentSections adds the peer relation's keys to the agent configuration: the follow mode and
// pins file, the Pebble socket for notices, and the peer API with its token file.
func (a *PeerAgent) agentSections(cfg, follow map[string]any, p func(string) string, add func(path string, mode os.FileMode, content []byte, secret bool)) {
	if a == nil {
		return
	}
	follow["mode"] = a.Mode
	if a.Mode == "pinned" {
		follow["pins_file"] = p(PinsPath)
	}
	cfg["notify"] = map[string]any{"pebble_socket": a.PebbleSocket}
	if a.Token != "" && len(a.TLSCert) > 0 {
		// Never without TLS: the token and the alerts would cross the pod network in clear.
		cfg["peer"] = map[string]any{"listen": fmt.Sprintf(":%d", a.PeerPort), "token_file": p(PeerTokenPath),
			"tls": map[string]any{"cert_file": p(PeerTLSCertPath), "key_file": p(PeerTLSKeyPath)}}
		add(PeerTokenPath, 0o600, []byte(a.Token+"\n"), true)
		add(PeerTLSCertPath, 0o600, a.TLSCert, true)
		add(PeerTLSKeyPath, 0o600, a.TLSKey, true)
	}
}

// peerAgent reads the peer relation for a reconcile. A hook about another relation (a COS or
// falcosidekick endpoint) cannot change the peer relation, so it renders the agent from the
// snapshot the last full hook kept in the manifest, with no hook tool call; such a hook then
// writes nothing to the peer databags (PeerConverge), since leadership may have moved since.
func (c *Context) peerAgent(ctx context.Context, s *Settings, w Workload, m *manifest) (*PeerAgent, *Peers, error) {
	if ep, _ := c.relationHook(); ep != "" && m.Peers != nil {
		if m.Peers.RelID == "" { // no peer relation when the full hook looked
			return nil, nil, nil
		}
		p, err := c.peersFromSnapshot(ctx, w, m.Peers)
		if err != nil {
			return nil, nil, err
		}
		if err := c.peerCert(ctx, w, p); err != nil {
			return nil, nil, err
		}
		return p.Agent(c.Env, s.WebhookPort), p, nil
	}
	p, err := c.Peers(ctx)
	if err != nil {
		return nil, nil, err
	}
	snap := &peerSnapshot{}
	if p != nil {
		snap = &peerSnapshot{RelID: p.RelID, Leader: p.Leader, Units: p.Units, App: p.App, TokenURI: p.TokenURI, Address: p.Address, Mine: p.mine}
	}
	if !reflect.DeepEqual(snap, m.Peers) {
		m.Peers, m.dirty = snap, true
	}
	if p == nil {
		return nil, nil, nil
	}
	if err := c.peerCert(ctx, w, p); err != nil {
		return nil, nil, err
	}
	return p.Agent(c.Env, s.WebhookPort), p, nil
}

// peerSnapshot is the peer relation as the last full hook read it (manifest.Peers; an empty
// RelID: the unit had none). The token is not in it: it is read back from the workload's 0600
// token file.
type peerSnapshot struct {
	RelID    string                       `json:"rel_id"`
	Leader   bool                         `json:"leader"`
	Units    map[string]map[string]string `json:"units,omitempty"`
	App      map[string]string            `json:"app,omitempty"`
	TokenURI string                       `json:"token_uri,omitempty"`
	Address  string                       `json:"address,omitempty"`
	Mine     map[string]string            `json:"mine,omitempty"`
}

// peersFromSnapshot rebuilds a hook's view of the peer relation from the manifest's snapshot.
func (c *Context) peersFromSnapshot(ctx context.Context, w Workload, snap *peerSnapshot) (*Peers, error) {
	p := &Peers{RelID: snap.RelID, Leader: snap.Leader, Unit: c.Env.Unit, Units: snap.Units, App: snap.App,
		TokenURI: snap.TokenURI, Address: snap.Address, mine: snap.Mine, cached: true}
	if p.Units == nil {
		p.Units = map[string]map[string]string{}
	}
	if p.App == nil {
		p.App = map[string]string{}
	}
	p.Published, _ = ParsePublished(p.App[keyPublished]) // read (and warned about) by the full hook
	p.Tuning, _ = ParseTuning(p.App[keyTuning])
	if p.TokenURI != "" || p.Leader {
		b, err := w.Pull(ctx, c.Env.WorkloadRoot+PeerTokenPath)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
		p.Token = strings.TrimSpace(string(b))
		c.AddSecret(p.Token)
	}
	return p, nil
}

// peerHook reports whether the hook is about peers or the agent's notices only.
func (c *Context) peerHook() bool {
	return c.Env.Kind == "hooks" && (strings.HasPrefix(c.Env.Name, PeerEndpoint+"-relation-") || c.Env.Name == Container+"-pebble-custom-notice")
}

// ErrBadPeerData is a peer databag value that cannot be read.
var ErrBadPeerData = errors.New("unreadable peer databag value")

// ParsePublished reads the application databag's published set (nil when absent).
func ParsePublished(v string) (*Published, error) {
	if v == "" {
		return nil, nil
	}
	var p Published
	if err := json.Unmarshal([]byte(v), &p); err != nil {
		return nil, fmt.Errorf("%s: %w: %v", keyPublished, ErrBadPeerData, err)
	}
	for _, x := range p.Pins {
		if x.Ref == "" || !strings.HasPrefix(x.Digest, "sha256:") {
			return nil, fmt.Errorf("%s: %w: pin %q@%q is not a reference and a sha256 digest", keyPublished, ErrBadPeerData, x.Ref, x.Digest)
		}
	}
	return &p, nil
}

// ParseTuning reads the application databag's shared tuning (nil when absent).
func ParseTuning(v string) (*Tuning, error) {
	if v == "" {
		return nil, nil
	}
	var t Tuning
	if err := json.Unmarshal([]byte(v), &t); err != nil {
		return nil, fmt.Errorf("%s: %w: %v", keyTuning, ErrBadPeerData, err)
	}
	return &t, nil
}

func wrap(err error, what string) error {
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}
