package charm

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/falco-k8s/falco-k8s/agent/status"
)

// peerTools records what the peer code writes: relation-set and status-set --application.
type peerTools struct {
	Tools
	app, unit map[string]string
	appStatus [2]string
}

func (t *peerTools) RelationSet(_ context.Context, _ string, app bool, data map[string]string) error {
	bag := &t.unit
	if app {
		bag = &t.app
	}
	if *bag == nil {
		*bag = map[string]string{}
	}
	for k, v := range data {
		(*bag)[k] = v
	}
	return nil
}
func (t *peerTools) AppStatusSet(_ context.Context, st, msg string) error {
	t.appStatus = [2]string{st, msg}
	return nil
}
func (*peerTools) IsLeader(context.Context) (bool, error)                 { return true, nil }
func (*peerTools) RelationIDs(context.Context, string) ([]string, error)  { return nil, nil }
func (*peerTools) RelationList(context.Context, string) ([]string, error) { return nil, nil }
func (*peerTools) RelationApp(context.Context, string) (string, error)    { return "", nil }
func (*peerTools) IngressAddress(context.Context, string) (string, error) { return "", nil }
func (*peerTools) RelationGet(context.Context, string, string, bool) (map[string]string, error) {
	return nil, nil
}

const (
	testRef = "ghcr.io/acme/k8s-audit-rules:1"
	dA      = "sha256:ab12cd34ef56aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	dB      = "sha256:cd34ef56ab12bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
)

func running(d string) string {
	if d == "" {
		return `{"pins":null,"generation":0}`
	}
	return `{"pins":[{"ref":"` + testRef + `","digest":"` + d + `"}],"generation":1}`
}

// TestLeaderPublishesAndCounts: what the leader publishes from its agent's /status and the
// application status it derives from every unit's databag.
func TestLeaderPublishesAndCounts(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	src := func(d string) []status.Source {
		return []status.Source{{Name: "follower", Ref: testRef, Digest: d, Files: []string{"k8s_audit_rules.yaml"}}}
	}
	for _, tc := range []struct {
		name      string
		published string
		st        status.Status
		others    map[string]string // unit → running JSON
		wantGen   int
		wantApp   [2]string
	}{
		{name: "first accepted set, all on it", st: status.Status{Sources: src(dA)},
			others:  map[string]string{"falco-k8s/1": running(dA), "falco-k8s/2": running(dA)},
			wantGen: 1, wantApp: [2]string{Active, "3/3 units on k8s-audit-rules@sha256:ab12cd34ef56…"}},
		{name: "new digest, one lags and one failed",
			published: `{"generation":1,"pins":[{"ref":"` + testRef + `","digest":"` + dA + `"}],"by":"falco-k8s/0"}`,
			st:        status.Status{Sources: src(dB)},
			others: map[string]string{"falco-k8s/1": running(dA),
				"falco-k8s/2": `{"pins":[{"ref":"` + testRef + `","digest":"` + dA + `"}],"error":"registry unreachable"}`},
			wantGen: 2, wantApp: [2]string{Waiting, "1/3 units on k8s-audit-rules@sha256:cd34ef56ab12…; falco-k8s/1 on k8s-audit-rules@sha256:ab12cd34ef56…; falco-k8s/2 keeps k8s-audit-rules@sha256:ab12cd34ef56… (registry unreachable)"}},
		{name: "ignored candidate: nobody moves, status says why",
			published: `{"generation":3,"pins":[{"ref":"` + testRef + `","digest":"` + dA + `"}],"by":"falco-k8s/0"}`,
			st: status.Status{Sources: src(dA), LastAccepted: &status.Change{Time: t0},
				LastIgnored: &status.Change{Time: t0.Add(time.Minute), Ref: testRef, Digest: dB, Reason: "k8s_audit_rules.yaml:2:14: error"}},
			others:  map[string]string{"falco-k8s/1": running(dA), "falco-k8s/3": ""},
			wantGen: 3, wantApp: [2]string{Waiting, "2/3 units on k8s-audit-rules@sha256:ab12cd34ef56…; falco-k8s/3 not reporting yet; ignored k8s-audit-rules@sha256:cd34ef56ab12…: k8s_audit_rules.yaml:2:14: error"}},
		{name: "agent restarting (no digest yet) never unpublishes",
			published: `{"generation":5,"pins":[{"ref":"` + testRef + `","digest":"` + dA + `"}],"by":"falco-k8s/0"}`,
			st:        status.Status{Sources: []status.Source{{Name: "follower", Ref: testRef}}},
			others:    map[string]string{"falco-k8s/1": running(dA)},
			wantGen:   5, wantApp: [2]string{Waiting, "1/2 units on k8s-audit-rules@sha256:ab12cd34ef56…; falco-k8s/0 on the built-in rules"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tools := &peerTools{}
			c := &Context{Env: Env{Unit: "falco-k8s/0", App: "falco-k8s"}, Tools: tools, Log: zerolog.Nop()}
			pub, err := ParsePublished(tc.published)
			if err != nil {
				t.Fatal(err)
			}
			p := &Peers{RelID: "falco-peers:1", Leader: true, Unit: c.Env.Unit, Published: pub, App: map[string]string{},
				Units: map[string]map[string]string{}, mine: map[string]string{}, Address: "10.1.0.5", PeerPort: 8766, tlsCert: []byte("cert")}
			for u, r := range tc.others {
				p.Units[u] = map[string]string{keyRunning: r}
			}
			st := tc.st
			if _, _, err := c.PeerConverge(context.Background(), p, nil, &st, false, false, false); err != nil {
				t.Fatal(err)
			}
			got, err := ParsePublished(firstNonEmpty(tools.app[keyPublished], tc.published))
			if err != nil || got == nil || got.Generation != tc.wantGen {
				t.Fatalf("published %v %v, want generation %d", got, err, tc.wantGen)
			}
			if tools.appStatus != tc.wantApp {
				t.Errorf("app status\n got %q\nwant %q", tools.appStatus, tc.wantApp)
			}
			if tools.unit[keyPeerAddress] != "https://10.1.0.5:8766" || tools.unit[keyRunning] == "" {
				t.Errorf("unit databag not written: %v", tools.unit)
			}
		})
	}
}

// TestPinnedUnitStatus: a pinned unit is active only on the published set.
func TestPinnedUnitStatus(t *testing.T) {
	src := []status.Source{{Name: "follower", Ref: testRef, Digest: dA, Mode: "pinned"}}
	pubA := &Published{Generation: 1, Pins: []Pin{{Ref: testRef, Digest: dA}}}
	for _, tc := range []struct {
		name string
		pub  *Published
		st   status.Status
		want *PeerResult
	}{
		{"on the published set", pubA, status.Status{Sources: src}, nil},
		{"nothing published yet", nil, status.Status{Sources: []status.Source{{Name: "follower", Ref: testRef, Mode: "pinned"}}},
			&PeerResult{Waiting, "waiting for the leader to publish the accepted rules"}},
		{"built-in rules only", nil, status.Status{}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tools := &peerTools{}
			c := &Context{Env: Env{Unit: "falco-k8s/1", App: "falco-k8s"}, Tools: tools, Log: zerolog.Nop()}
			p := &Peers{RelID: "falco-peers:1", Unit: c.Env.Unit, Published: tc.pub, App: map[string]string{}, Units: map[string]map[string]string{}, mine: map[string]string{}}
			st := tc.st
			_, res, err := c.PeerConverge(context.Background(), p, nil, &st, false, false, true)
			if err != nil {
				t.Fatal(err)
			}
			if (res == nil) != (tc.want == nil) || res != nil && *res != *tc.want {
				t.Errorf("got %+v, want %+v", res, tc.want)
			}
			if tools.appStatus != [2]string{} {
				t.Errorf("a non-leader set the application status")
			}
		})
	}
}

func TestNotLeaderMessage(t *testing.T) {
	err := error(&ErrNotLeader{Action: "tune-rules", Args: " scope=namespace namespace=payments", App: "falco-k8s"})
	if !strings.Contains(err.Error(), "run `juju run falco-k8s/leader tune-rules scope=namespace namespace=payments`") {
		t.Error(err)
	}
	var nl *ErrNotLeader
	if !errors.As(err, &nl) {
		t.Error("not typed")
	}
}

func TestPeerPortFor(t *testing.T) {
	for _, w := range []int{1, 9765, 65532, 65533, 65534, 65535} {
		p := PeerPortFor(w)
		if p < 1 || p > 65535 || p == w || p == statusPortFor(w) || p == metricsPortFor(w) {
			t.Errorf("webhook %d: peer %d collides or is out of range", w, p)
		}
	}
}

func TestParsePeerData(t *testing.T) {
	for _, tc := range []struct {
		v  string
		ok bool
	}{
		{"", true},
		{`{"generation":1,"pins":[{"ref":"r:1","digest":"sha256:aa"}]}`, true},
		{`{"pins":[{"ref":"","digest":"sha256:aa"}]}`, false},
		{`{"pins":[{"ref":"r:1","digest":"md5:aa"}]}`, false},
		{`{`, false},
	} {
		_, err := ParsePublished(tc.v)
		if (err == nil) != tc.ok || err != nil && !errors.Is(err, ErrBadPeerData) {
			t.Errorf("ParsePublished(%q): %v", tc.v, err)
		}
	}
}

func FuzzParsePeerData(f *testing.F) {
	for _, s := range []string{"", `{"generation":1,"pins":[{"ref":"r:1","digest":"sha256:aa"}],"ignored":{"ref":"r","digest":"d","reason":"x"}}`, `{"content":"- rule: x\n","generation":2}`, `{"pins":null}`, `[`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		if p, err := ParsePublished(v); err == nil && p != nil {
			for _, x := range p.Pins {
				if x.Ref == "" || !strings.HasPrefix(x.Digest, "sha256:") {
					t.Fatalf("accepted pin %+v", x)
				}
			}
			_ = PinsLabel(p.Pins)
		}
		ParseTuning(v) //nolint:errcheck // must not panic
		UnitRunning(map[string]string{keyRunning: v})
	})
}

// caTools adds the application-owned secrets (one store for the whole application) to peerTools.
type caTools struct {
	peerTools
	leader  bool
	secrets map[string]map[string]string // URI → content
}

func (t *caTools) IsLeader(context.Context) (bool, error) { return t.leader, nil }
func (t *caTools) SecretGetLabel(_ context.Context, label string) (map[string]string, error) {
	if m, ok := t.secrets["secret:"+label]; ok {
		return m, nil
	}
	return nil, ErrOwnedSecretMissing
}
func (t *caTools) SecretIDLabel(_ context.Context, label string) (string, error) {
	if _, ok := t.secrets["secret:"+label]; ok {
		return "secret:" + label, nil
	}
	return "", ErrOwnedSecretMissing
}
func (t *caTools) SecretAdd(_ context.Context, label string, m map[string]string) (string, error) {
	if !t.leader {
		return "", errors.New("not the leader")
	}
	t.secrets["secret:"+label] = m
	return "secret:" + label, nil
}
func (t *caTools) SecretSet(_ context.Context, uri string, m map[string]string) error {
	t.secrets[uri] = m
	return nil
}
func (t *caTools) SecretGet(_ context.Context, uri string, _ bool) (map[string]string, error) {
	if m, ok := t.secrets[uri]; ok {
		return m, nil
	}
	return nil, ErrSecretNotGranted
}

// fileWorkload is a workload's files (Pull only: what peerCert reads).
type fileWorkload struct {
	Workload
	files map[string][]byte
}

func (w fileWorkload) Pull(_ context.Context, path string) ([]byte, error) {
	if b, ok := w.files[path]; ok {
		return b, nil
	}
	return nil, os.ErrNotExist
}

// TestPeerTLS: the leader makes the charm CA and publishes its URI, a non-leader reads it by URI,
// and a unit's peer certificate names its address, is kept across hooks and re-issued only when
// the address changes, it nears expiry or the CA changed; without a CA there is no certificate
// and no peer address, and a peer client trusts only the CA and https URLs.
func TestPeerTLS(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	secrets := map[string]map[string]string{}
	read := func(leader bool, app map[string]string, at time.Time) (*Context, *Peers) {
		t.Helper()
		tools := &caTools{leader: leader, secrets: secrets}
		c := &Context{Env: Env{Unit: "falco-k8s/1", App: "falco-k8s", Model: "audit"}, Tools: tools, Log: zerolog.Nop(), Now: func() time.Time { return at }}
		p := &Peers{RelID: "falco-peers:1", Leader: leader, Unit: c.Env.Unit, App: app, PeerPort: 8766}
		if err := c.peerCA(ctx, tools, p); err != nil {
			t.Fatal(err)
		}
		if leader && tools.app[keyCASecret] != "" {
			app[keyCASecret] = tools.app[keyCASecret]
		}
		return c, p
	}
	// A non-leader before the leader made the CA: no certificate, nothing published.
	c, p := read(false, map[string]string{}, now)
	p.Address = "10.1.0.6"
	w := fileWorkload{files: map[string][]byte{}}
	if err := c.peerCert(ctx, w, p); err != nil || p.tlsCert != nil || p.peerAddress() != "" {
		t.Fatalf("without a CA: cert %v err %v address %q", p.tlsCert != nil, err, p.peerAddress())
	}
	app := map[string]string{}
	_, lp := read(true, app, now)
	if app[keyCASecret] != "secret:"+CharmCALabel || len(lp.CA) == 0 {
		t.Fatalf("leader published %v, CA %d bytes", app, len(lp.CA))
	}
	firstCA := secrets[app[keyCASecret]]

	var cur []byte
	for _, tc := range []struct {
		name     string
		addr     string
		at       time.Time
		newCA    bool
		reissued bool
	}{
		{name: "first hook issues", addr: "10.1.0.6", at: now, reissued: true},
		{name: "next hook keeps it", addr: "10.1.0.6", at: now.Add(time.Hour)},
		{name: "59 days on keeps it", addr: "10.1.0.6", at: now.Add(59 * 24 * time.Hour)},
		{name: "61 days on renews", addr: "10.1.0.6", at: now.Add(61 * 24 * time.Hour), reissued: true},
		{name: "new address", addr: "10.1.0.9", at: now.Add(61 * 24 * time.Hour), reissued: true},
		{name: "DNS address", addr: "falco-k8s-1.falco-k8s-endpoints", at: now.Add(61 * 24 * time.Hour), reissued: true},
		{name: "new CA", addr: "falco-k8s-1.falco-k8s-endpoints", at: now.Add(61 * 24 * time.Hour), newCA: true, reissued: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.newCA {
				secrets[app[keyCASecret]] = map[string]string{}
				read(true, app, tc.at) // the leader replaces the unusable CA
			}
			c, p := read(false, app, tc.at)
			p.Address = tc.addr
			if err := c.peerCert(ctx, w, p); err != nil {
				t.Fatal(err)
			}
			if got := !bytes.Equal(p.tlsCert, cur); got != tc.reissued {
				t.Errorf("reissued = %v, want %v", got, tc.reissued)
			}
			cur = p.tlsCert
			w.files[PeerTLSCertPath], w.files[PeerTLSKeyPath] = p.tlsCert, p.tlsKey
			if !peerCertFresh(p.tlsCert, p.tlsKey, p.CA, tc.addr, tc.at) {
				t.Error("issued certificate does not verify for the address against the CA")
			}
			if want := "https://" + net.JoinHostPort(tc.addr, "8766"); p.peerAddress() != want {
				t.Errorf("peer address %q, want %q", p.peerAddress(), want)
			}
			x := parseCertPEM(string(p.tlsCert))
			if ip := net.ParseIP(tc.addr); ip != nil && (len(x.IPAddresses) != 1 || !x.IPAddresses[0].Equal(ip) || len(x.DNSNames) != 0) {
				t.Errorf("SANs %v %v, want the IP only", x.IPAddresses, x.DNSNames)
			}
			// The agent configuration serves the peer API with it, key and certificate 0600.
			files := map[string]os.FileMode{}
			cfg := map[string]any{}
			p.Token = "tok"
			p.Agent(c.Env, 9765).agentSections(cfg, map[string]any{}, func(s string) string { return s },
				func(path string, mode os.FileMode, _ []byte, secret bool) {
					if secret {
						mode = 0o600
					}
					files[path] = mode
				})
			peer, _ := cfg["peer"].(map[string]any)
			if tl, _ := peer["tls"].(map[string]any); tl["cert_file"] != PeerTLSCertPath || tl["key_file"] != PeerTLSKeyPath {
				t.Errorf("peer section %v", cfg["peer"])
			}
			if files[PeerTLSKeyPath] != 0o600 || files[PeerTLSCertPath] != 0o600 || files[PeerTokenPath] != 0o600 {
				t.Errorf("files %v", files)
			}
		})
	}
	if secrets[app[keyCASecret]]["ca-certificate"] == firstCA["ca-certificate"] {
		t.Error("the unusable CA was kept")
	}

	// The agent accepts the rendered peer.tls; a renewed pair is reloaded (same inputs hash),
	// while turning the peer API on restarts the agent with it.
	st, err := ParseSettings(map[string]any{}, "falco-k8s")
	if err != nil {
		t.Fatal(err)
	}
	env := Env{Unit: "falco-k8s/1", App: "falco-k8s", Model: "audit"}
	hash := func(pa *PeerAgent) string {
		t.Helper()
		d, err := BuildDesired(st, Creds{}, env, "/bin/true", "id", &Integrations{Peer: pa})
		if err != nil {
			t.Fatal(err)
		}
		return d.InputsHash
	}
	pa := &PeerAgent{Mode: "pinned", PeerPort: 8766, Token: "tok", TLSCert: cur, TLSKey: w.files[PeerTLSKeyPath]}
	renewed := *pa
	renewed.TLSCert, renewed.TLSKey = []byte("CERT2\n"), []byte("KEY2\n")
	noTLS := *pa
	noTLS.TLSCert, noTLS.TLSKey = nil, nil
	if hash(pa) != hash(&renewed) {
		t.Error("a renewed peer certificate changes the agent's inputs hash")
	}
	if hash(pa) == hash(&noTLS) {
		t.Error("turning the peer API's TLS on does not restart the agent")
	}

	// Peer clients: https URLs only, verified against the CA.
	_, p = read(false, app, now)
	p.Token = "tok"
	p.Units = map[string]map[string]string{
		"falco-k8s/2": {keyPeerAddress: "http://10.1.0.7:8766"},
		"falco-k8s/3": {keyPeerAddress: "https://10.1.0.8:8766"},
		"falco-k8s/4": {},
	}
	c = &Context{Env: Env{Unit: "falco-k8s/1"}}
	got := map[string]string{}
	for _, u := range c.PeerUnits(ctx, p, nil)[1:] {
		got[u.Name] = u.Problem
		if (u.Client != nil) != (u.Problem == "") {
			t.Errorf("%s: client %v problem %q", u.Name, u.Client != nil, u.Problem)
		}
	}
	if got["falco-k8s/2"] == "" || got["falco-k8s/3"] != "" || got["falco-k8s/4"] == "" {
		t.Errorf("problems %v", got)
	}
	p.CA = nil
	if u := c.PeerUnits(ctx, p, nil)[2]; u.Client != nil || !strings.Contains(u.Problem, "CA") {
		t.Errorf("without a CA: %+v", u)
	}
}
