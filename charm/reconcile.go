package charm

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/falco-k8s/falco-k8s/agent/apiclient"
	"github.com/falco-k8s/falco-k8s/agent/status"
	"github.com/falco-k8s/falco-k8s/artifact/auth"
)

// Juju status values the charm may set (status-set accepts only these).
const (
	Active      = "active"
	Blocked     = "blocked"
	Waiting     = "waiting"
	Maintenance = "maintenance"
)

// Outcome is what a reconcile did, for hooks, tests and benchmarks.
type Outcome struct {
	Status, Message string
	Pushed          []string // workload paths written
	Replanned       bool
	Reloaded        bool // SIGHUP sent for a renewed webhook certificate
	Settings        *Settings
}

// blockedError is a condition only the user can fix.
type blockedError struct{ msg string }

func (e *blockedError) Error() string { return e.msg }

func blocked(format string, a ...any) error { return &blockedError{fmt.Sprintf(format, a...)} }

// waitingError is a condition expected to resolve by itself (the agent still starting).
type waitingError struct{ msg string }

func (e *waitingError) Error() string { return e.msg }

// waitForAgent bounds how long a hook waits for a (re)started agent to answer /status.
const waitForAgent = 15 * time.Second

// Settings reads and validates the configuration (config-get).
func (c *Context) Settings(ctx context.Context) (*Settings, error) {
	raw, err := c.Tools.ConfigGet(ctx)
	if err != nil {
		return nil, fmt.Errorf("config-get: %w", err)
	}
	s, err := ParseSettings(raw, c.Env.App)
	if err != nil {
		return nil, err
	}
	if lvl, err := zerolog.ParseLevel(strings.Replace(s.LogLevel, "warning", "warn", 1)); err == nil {
		c.Log = c.Log.Level(lvl)
	}
	return s, nil
}

// Reconcile converges the workload on the configuration and sets the unit status. It returns
// an error only for failures the user cannot fix (hook tools, Pebble API errors): Juju then
// marks the hook failed and retries it.
func (c *Context) Reconcile(ctx context.Context) (*Outcome, error) {
	out := &Outcome{}
	var peers *Peers
	start := time.Now()
	phases := zerolog.Dict()
	phase := func(name string) { phases.Dur(name, time.Since(start)) }
	setStatus := func(st, msg string) (*Outcome, error) {
		out.Status, out.Message = st, c.Redact(msg)
		err := c.SetStatus(ctx, st, msg)
		phase("status-set")
		c.Log.Debug().Dict("phases", phases).Bool("replanned", out.Replanned).Int("pushed", len(out.Pushed)).Msg("reconciled")
		return out, err
	}
	// Tool calls every path of this hook needs, concurrently with config-get.
	c.prefetchRelationData(ctx)
	c.prefetchRelationIDs(ctx)
	s, err := c.Settings(ctx)
	var ce *ConfigError
	if errors.As(err, &ce) {
		return setStatus(Blocked, ce.Error())
	}
	if err != nil {
		return out, err
	}
	out.Settings = s
	phase("config")

	creds, err := c.Credentials(ctx, s)
	var be *blockedError
	if errors.As(err, &be) {
		return setStatus(Blocked, be.msg)
	}
	if err != nil {
		return out, err
	}

	w, err := c.NewWorkload()
	if err != nil {
		return out, err
	}
	if err := w.Ping(ctx); err != nil {
		if errors.Is(err, ErrPebbleNotReady) {
			return setStatus(Waiting, "waiting for the "+Container+" container (Pebble not reachable yet)")
		}
		return out, err
	}

	phase("pebble")
	m, err := readManifest(ctx, w, c.Env.WorkloadRoot)
	if err != nil {
		return c.workloadErr(ctx, out, err)
	}
	c.primeRelations(m)
	// The certificates relation, when webhook-tls does not give the webhook its certificate.
	if len(creds.TLSCert) == 0 {
		if creds.TLSCert, creds.TLSKey, creds.TLSCA, err = c.RelationTLS(ctx, w); err != nil {
			return c.workloadErr(ctx, out, err)
		}
	}
	// Then the charm's own CA, only when admission needs https (kube-apiserver calls admission
	// webhooks over https only; audit alone may stay plain http).
	if len(creds.TLSCert) == 0 && s.Enforce.Mode != "off" {
		if creds.TLSCert, creds.TLSKey, creds.TLSCA, err = c.CharmTLS(ctx); err != nil {
			return out, err
		}
	}
	if s.Engine == EngineFalco {
		if creds.FalcoAlertsToken, err = c.falcoAlertsToken(ctx, w); err != nil {
			return c.workloadErr(ctx, out, err)
		}
	}
	// After the manifest: it caches what the other relations contributed, so a relation hook
	// reads only its own endpoint's data.
	in, err := c.Integrations(ctx, s, m)
	if err != nil {
		return out, err
	}
	if in.Peer, peers, err = c.peerAgent(ctx, s, w, m); err != nil {
		return out, err
	}
	phase("relations")
	if err := c.resolveRefs(ctx, s, m); err != nil {
		if errors.As(err, &be) {
			return setStatus(Blocked, be.msg)
		}
		return out, err
	}
	binID, err := binaryIdentity(c.Exe, c.Version)
	if err != nil {
		return out, err
	}
	d, err := BuildDesired(s, creds, c.Env, c.Exe, binID, in)
	if errors.As(err, &ce) {
		return setStatus(Blocked, ce.Error())
	}
	if err != nil {
		return out, err
	}

	if err := c.syncLogTargets(ctx, w, in, m); err != nil {
		return c.workloadErr(ctx, out, err)
	}
	if out.Pushed, err = c.syncFiles(ctx, w, d, m); err != nil {
		return c.workloadErr(ctx, out, err)
	}
	pinsChanged, tuningChanged, err := c.syncPeerFiles(ctx, w, peers)
	if err != nil {
		return c.workloadErr(ctx, out, err)
	}

	phase("files")
	agent := apiclient.Local(d.StatusPort)
	env, err := w.ServiceEnv(ctx, ServiceName)
	if err != nil {
		return c.workloadErr(ctx, out, err)
	}
	svc, err := w.ServiceStatus(ctx, ServiceName)
	if err != nil {
		return c.workloadErr(ctx, out, err)
	}
	var prevStart time.Time
	if env[hashEnv] != d.InputsHash || svc != "active" {
		if st, err := agent.Status(ctx); err == nil {
			prevStart = st.StartedAt
		}
		retiring := false
		if env[hashEnv] != d.InputsHash {
			// Only when the layer changes: switching engines always does (the agent's config).
			if retiring, err = c.retireFalco(ctx, w, s, d); err != nil {
				return c.workloadErr(ctx, out, err)
			}
			if err := w.AddLayer(ctx, LayerLabel, d.Layer); err != nil {
				return c.workloadErr(ctx, out, err)
			}
		}
		if err := w.Replan(ctx); err != nil {
			return c.workloadErr(ctx, out, err)
		}
		out.Replanned = true
		if retiring {
			if err := w.Stop(ctx, FalcoServiceName); err != nil {
				return c.workloadErr(ctx, out, err)
			}
		}
		c.Log.Info().Str("inputs", d.InputsHash).Str("was", svc).Msg("agent layer applied, replanned")
	} else if slices.ContainsFunc(out.Pushed, func(f string) bool {
		return f == TLSCertPath || f == TLSKeyPath || f == PeerTLSCertPath || f == PeerTLSKeyPath
	}) {
		// A renewed certificate (the same paths, so the same inputs hash): SIGHUP makes the
		// agent swap it in behind its listener, which never stops accepting requests.
		if err := w.Signal(ctx, ServiceName, "SIGHUP"); err != nil {
			return c.workloadErr(ctx, out, err)
		}
		out.Reloaded = true
		c.Log.Info().Msg("serving certificate renewed; agent reloaded it without a restart")
	}

	if err := c.reloadFalcoTLS(ctx, w, s, out); err != nil {
		return c.workloadErr(ctx, out, err)
	}
	phase("layer")
	if err := c.syncPort(ctx, s.WebhookPort); err != nil {
		return out, err
	}
	if err := c.syncAdmissionWebhook(ctx, s, creds.TLSCA); err != nil {
		if errors.As(err, &be) {
			return setStatus(Blocked, be.msg)
		}
		return out, err
	}
	if err := c.syncVersion(ctx); err != nil {
		return out, err
	}

	phase("ports-version")
	st, err := c.agentStatus(ctx, agent, w, out.Replanned, prevStart)
	phase("agent")
	if err != nil {
		var we *waitingError
		if errors.As(err, &we) {
			// The agent validates with Falco: a Falco that cannot start (a plugin that does not
			// load) stops it too, and Falco's reason is the one to show.
			if s.Engine == EngineFalco {
				if fs, msg, down, ferr := c.falcoDown(ctx, w); ferr == nil && down {
					return setStatus(fs, msg)
				}
			}
			return setStatus(Waiting, we.msg)
		}
		return c.workloadErr(ctx, out, err)
	}
	if !st.Ready {
		return setStatus(Waiting, "agent is loading its rules")
	}
	st, pr, err := c.PeerConverge(ctx, peers, agent, st, pinsChanged, tuningChanged, out.Replanned)
	if err != nil {
		return c.workloadErr(ctx, out, err)
	}
	if pr != nil {
		return setStatus(pr.Status, pr.Message)
	}
	if p := in.Problem(); p != "" {
		// The agent runs with every valid relation; the user has to fix or remove this one.
		return setStatus(Blocked, p)
	}
	es, msg, err := c.engineStatus(ctx, w, s, st)
	if err != nil {
		return c.workloadErr(ctx, out, err)
	}
	return setStatus(es, msg)
}

// workloadErr turns a lost Pebble connection mid-hook (the container restarting) into waiting.
func (c *Context) workloadErr(ctx context.Context, out *Outcome, err error) (*Outcome, error) {
	if errors.Is(err, ErrPebbleNotReady) {
		out.Status, out.Message = Waiting, "waiting for the "+Container+" container (Pebble not reachable yet)"
		return out, c.SetStatus(ctx, out.Status, out.Message)
	}
	return out, err
}

// agentStatus reads /status; after a replan it waits until the restarted agent (a new
// started_at) answers, so the status the hook leaves describes the new configuration.
func (c *Context) agentStatus(ctx context.Context, a *apiclient.Client, w Workload, replanned bool, prevStart time.Time) (*status.Status, error) {
	deadline := time.Now().Add(waitForAgent)
	if !replanned {
		deadline = time.Now().Add(2 * time.Second)
	}
	// A local HTTP GET costs well under a millisecond, so polling finely keeps the hook from
	// sleeping past the moment the agent is ready.
	const delay = 5 * time.Millisecond
	for {
		st, err := a.Status(ctx)
		if err == nil && (!replanned || !st.StartedAt.Equal(prevStart)) && st.Ready {
			return st, nil
		}
		if time.Now().After(deadline) {
			if err == nil {
				return st, nil
			}
			svc, serr := w.ServiceStatus(ctx, ServiceName)
			if serr != nil {
				return nil, serr
			}
			return nil, &waitingError{fmt.Sprintf("agent not answering (service %s); see juju debug-log", svc)}
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(delay):
		}
	}
}

// manifest is the record of what the charm put in the workload.
type manifest struct {
	Files map[string]string `json:"files"` // workload path → hash
	// Resolved caches index-name references (indexes key + name → full reference), so an index
	// is fetched when the configuration changes, not on every hook.
	Resolved map[string]string `json:"resolved,omitempty"`
	// Signers caches, with the same keys, the keyless signer of the index entry (indexes.go).
	Signers map[string]RefSigner `json:"signers,omitempty"`
	// LogTargets are the Pebble log targets ever put in the logging layer (name → location) and
	// LogLayer the hash of the layer last applied (relations_workload.go).
	LogTargets map[string]string `json:"log_targets,omitempty"`
	LogLayer   string            `json:"log_layer,omitempty"`
	// Peers is the peer relation as the last full hook read it (peers.go: peerAgent).
	Peers *peerSnapshot `json:"peers,omitempty"`
	// Relations caches each endpoint's contribution (relations.go).
	// Present (possibly empty) once a hook has read every endpoint.
	Relations *RelationCache `json:"relations"`
	dirty     bool
}

// readManifest reads the workload's manifest; a missing or unreadable one is empty, which makes
// the charm push everything again.
func readManifest(ctx context.Context, w Workload, root string) (*manifest, error) {
	m := &manifest{}
	b, err := w.Pull(ctx, root+ManifestPath)
	switch {
	case err == nil:
		if json.Unmarshal(b, m) != nil {
			m = &manifest{}
		}
	case errors.Is(err, os.ErrNotExist):
	default:
		return nil, err
	}
	if m.Files == nil {
		m.Files = map[string]string{}
	}
	return m, nil
}

// syncFiles pushes the files whose hash differs from the workload's manifest and removes the
// ones the charm no longer wants (e.g. credentials after the option was cleared).
func (c *Context) syncFiles(ctx context.Context, w Workload, d *Desired, m *manifest) ([]string, error) {
	root := c.Env.WorkloadRoot
	next := map[string]string{}
	var pushed []string
	for _, f := range d.Files {
		next[f.Path] = f.Hash
		if m.Files[f.Path] == f.Hash {
			continue
		}
		if err := c.pushFile(ctx, w, root, f); err != nil {
			return pushed, err
		}
		pushed = append(pushed, f.Path)
	}
	for p := range m.Files {
		if _, ok := next[p]; !ok {
			if err := w.Remove(ctx, root+p); err != nil {
				return pushed, err
			}
			pushed = append(pushed, p)
		}
	}
	if len(pushed) == 0 && !m.dirty {
		return nil, nil
	}
	m.Files = next
	nb, err := json.Marshal(m)
	if err != nil {
		return pushed, fmt.Errorf("manifest: %w", err)
	}
	// 0600: the hash of a low-entropy password could be guessed offline.
	if err := w.Push(ctx, root+ManifestPath, bytes.NewReader(nb), 0o600); err != nil {
		return pushed, err
	}
	if len(pushed) > 0 {
		c.Log.Info().Strs("files", pushed).Msg("workload files updated")
	}
	return pushed, nil
}

func (c *Context) pushFile(ctx context.Context, w Workload, root string, f File) error {
	if f.Source == "" {
		return w.Push(ctx, root+f.Path, bytes.NewReader(f.Content), f.Mode)
	}
	src, err := os.Open(f.Source)
	if err != nil {
		return fmt.Errorf("open %s: %w", f.Source, err)
	}
	defer src.Close()
	return w.Push(ctx, root+f.Path, src, f.Mode)
}

// binaryIdentity identifies the charm binary by version, size and modification time: a
// refreshed charm is a new file, and stat costs microseconds where hashing costs ~100 ms.
func binaryIdentity(exe, version string) (string, error) {
	fi, err := os.Stat(exe)
	if err != nil {
		return "", fmt.Errorf("charm binary: %w", err)
	}
	return fmt.Sprintf("%s/%d/%d", version, fi.Size(), fi.ModTime().UnixNano()), nil
}

// syncPort opens the webhook port on the application's Service and closes any other port a
// previous webhook-port left open. When an earlier hook saw exactly that port open (jujuRecord),
// Juju still has it and nothing is asked.
func (c *Context) syncPort(ctx context.Context, port int) error {
	want := fmt.Sprintf("%d/tcp", port)
	rec := c.juju()
	if rec.Port == want {
		return nil
	}
	opened, err := c.Tools.OpenedPorts(ctx)
	if err != nil {
		return fmt.Errorf("opened-ports: %w", err)
	}
	if slices.Equal(opened, []string{want}) {
		rec.Port, rec.changed = want, true
		return nil
	}
	// A change: Juju commits it only if the hook succeeds, so the next hook looks again.
	if err := rec.forget(); err != nil {
		return err
	}
	rec.Port = ""
	have := false
	for _, p := range opened {
		if p == want {
			have = true
			continue
		}
		if err := c.Tools.ClosePort(ctx, p); err != nil {
			return fmt.Errorf("close-port %s: %w", p, err)
		}
	}
	if !have {
		if err := c.Tools.OpenPort(ctx, want); err != nil {
			return fmt.Errorf("open-port %s: %w", want, err)
		}
	}
	return nil
}

// syncVersion is application-version-set, unless Juju has this version from an earlier hook
// (jujuRecord; upgrade-charm always sets it).
func (c *Context) syncVersion(ctx context.Context) error {
	rec := c.juju()
	if rec.AppVersion == c.Version && c.Version != "" {
		return nil
	}
	if err := rec.forget(); err != nil {
		return err
	}
	if err := c.Tools.ApplicationVersionSet(ctx, c.Version); err != nil {
		return fmt.Errorf("application-version-set: %w", err)
	}
	rec.AppVersion = c.Version
	return nil
}

// Credentials resolves registry credentials (Kubernetes Secret and Juju secret) and the
// webhook's TLS material. Every problem the user can fix is a blockedError naming the fix.
func (c *Context) Credentials(ctx context.Context, s *Settings) (Creds, error) {
	var cr Creds
	var entries []string
	if name := s.RegistryAuthSecret; name != "" {
		k, err := c.Kube()
		if err != nil {
			return cr, blocked("registry-auth-secret %s needs the Kubernetes API: deploy with --trust (juju trust %s --scope=cluster)", name, c.Env.App)
		}
		v, err := k.SecretKey(ctx, c.Env.Model, name, "falcoctl")
		switch {
		case errors.Is(err, ErrSecretNotFound):
			return cr, blocked("secret %s is expected in namespace %s", name, c.Env.Model)
		case errors.Is(err, ErrSecretKeyMissing):
			return cr, blocked("secret %s has no key falcoctl", name)
		case err != nil:
			return cr, blocked("cannot read secret %s in namespace %s: %s (juju trust %s --scope=cluster)", name, c.Env.Model, c.Redact(err.Error()), c.Env.App)
		}
		val := strings.TrimSpace(string(v))
		if err := c.checkBasic(val); err != nil {
			return cr, blocked("secret %s key falcoctl: %v", name, err)
		}
		entries = append(entries, val)
	}
	if uri := s.RegistryCredentials; uri != "" {
		m, err := c.Tools.SecretGet(ctx, uri, c.refresh(uri))
		if errors.Is(err, ErrSecretNotGranted) {
			return cr, blocked("registry-credentials: secret not granted (juju grant-secret %s %s)", uri, c.Env.App)
		}
		if err != nil {
			return cr, fmt.Errorf("secret-get registry-credentials: %w", err)
		}
		// The registry host and user name are not credentials, and redacting them would hide
		// the registry the status must name (and any word equal to the user name); the
		// password (and whole falcoctl value) are registered by checkBasic below.
		for k, v := range m {
			if k != "registry" && k != "username" {
				c.AddSecret(v)
			}
		}
		var val string
		switch {
		case m["falcoctl"] != "":
			val = strings.TrimSpace(m["falcoctl"])
		case m["registry"] != "" && m["username"] != "" && m["password"] != "":
			val = m["registry"] + "," + m["username"] + "," + m["password"]
		default:
			return cr, blocked("registry-credentials: the secret needs a key falcoctl, or the keys registry, username and password")
		}
		if err := c.checkBasic(val); err != nil {
			return cr, blocked("registry-credentials: %v", err)
		}
		entries = append(entries, val)
	}
	cr.RegistryAuth = joinBasic(entries)

	var err error
	cr.TLSCert, cr.TLSKey, cr.TLSCA, err = c.WebhookTLS(ctx, s)
	return cr, err
}

// WebhookTLS reads the webhook-tls secret: certificate, private key and the CA kube-apiserver
// should trust (the certificate itself when the secret has no ca-certificate). All nil when
// webhook-tls is not set.
func (c *Context) WebhookTLS(ctx context.Context, s *Settings) (cert, key, ca []byte, err error) {
	uri := s.WebhookTLS
	if uri == "" {
		return nil, nil, nil, nil
	}
	m, err := c.Tools.SecretGet(ctx, uri, c.refresh(uri))
	if errors.Is(err, ErrSecretNotGranted) {
		return nil, nil, nil, blocked("webhook-tls: secret not granted (juju grant-secret %s %s)", uri, c.Env.App)
	}
	if err != nil {
		return nil, nil, nil, fmt.Errorf("secret-get webhook-tls: %w", err)
	}
	c.AddSecret(m["private-key"])
	if m["certificate"] == "" || m["private-key"] == "" {
		return nil, nil, nil, blocked("webhook-tls: the secret needs the keys certificate and private-key (PEM)")
	}
	if _, err := tls.X509KeyPair([]byte(m["certificate"]), []byte(m["private-key"])); err != nil {
		return nil, nil, nil, blocked("webhook-tls: certificate and private-key are not a valid pair: %v", err)
	}
	cert, key, ca = []byte(m["certificate"]), []byte(m["private-key"]), []byte(m["ca-certificate"])
	if len(ca) == 0 {
		ca = cert
	}
	return cert, key, ca, nil
}

// checkBasic validates FALCOCTL_REGISTRY_AUTH_BASIC content and registers its passwords for
// redaction. The parser's errors never quote the input.
func (c *Context) checkBasic(v string) error {
	c.AddSecret(v)
	b, err := auth.ParseBasicEnv(v)
	if err != nil {
		return err
	}
	for _, e := range b {
		c.AddSecret(e.Password)
	}
	return nil
}

// joinBasic combines several credential lists. The JSON list form cannot be concatenated with
// ';', so when any source uses it everything is written as one JSON list.
func joinBasic(entries []string) string {
	if len(entries) <= 1 {
		return strings.Join(entries, "")
	}
	var all []auth.Basic
	jsonNeeded := false
	for _, e := range entries {
		b, _ := auth.ParseBasicEnv(e) // validated already
		all = append(all, b...)
		if strings.HasPrefix(e, "[{") {
			jsonNeeded = true
		}
	}
	if !jsonNeeded {
		return strings.Join(entries, ";")
	}
	j, _ := json.Marshal(all)
	return string(j)
}

// refresh reports whether secret-get should move to the latest revision: in secret-changed for
// that secret, Juju tells the consumer a new revision exists.
func (c *Context) refresh(uri string) bool {
	if c.Env.Kind != "hooks" || c.Env.Name != "secret-changed" || c.Env.SecretID == "" {
		return false
	}
	return secretID(c.Env.SecretID) == secretID(uri)
}

func secretID(uri string) string {
	if i := strings.LastIndex(uri, "/"); i >= 0 {
		return uri[i+1:]
	}
	return strings.TrimPrefix(uri, "secret:")
}
