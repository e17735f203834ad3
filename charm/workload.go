package charm

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path"
	"regexp"
	"sort"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	agentconfig "github.com/falco-k8s/falco-k8s/agent/config"
)

// Paths inside the workload container (before FALCO_K8S_WORKLOAD_ROOT).
const (
	BinaryPath       = "/usr/local/bin/falco-k8s"
	ConfigDir        = "/etc/falco-k8s"
	AgentConfigPath  = ConfigDir + "/agent.yaml"
	RegistryAuthPath = ConfigDir + "/registry-auth"
	TLSCertPath      = ConfigDir + "/tls/tls.crt"
	TLSKeyPath       = ConfigDir + "/tls/tls.key"
	RegistryCADir    = ConfigDir + "/registry-ca"
	SigningKeyPath   = ConfigDir + "/rules-signing-key.pub"
	TrustedRootPath  = ConfigDir + "/rules-trusted-root.json"
	// ManifestPath records what the charm pushed (hashes), next to the files themselves, so a
	// new container (which lost the files) also lost the manifest and gets everything again.
	ManifestPath = ConfigDir + "/charm-manifest.json"
	StateDir     = "/var/lib/falco-k8s"
	// ServiceName and LayerLabel name the Pebble service and layer.
	ServiceName = "agent"
	LayerLabel  = "falco-k8s"
	// hashEnv carries the hash of everything the agent reads at start-up in the service's
	// environment: a change makes Replan restart the agent, no change leaves it alone.
	hashEnv = "FALCO_K8S_INPUTS_SHA256"
	// drainTimeout is the agent's webhook.shutdown_timeout and killMargin what Pebble's
	// kill-delay adds to it: 20 s + 5 s fits Kubernetes' 30 s termination grace period.
	drainTimeout = 20 * time.Second
	killMargin   = 5 * time.Second
)

// File is one file the charm keeps in the workload.
type File struct {
	Path    string // container path, before the workload root
	Mode    os.FileMode
	Content []byte // nil for the binary, which is streamed from Source
	Source  string // local file to stream (the charm's own executable)
	// Hash identifies the content: sha256 of Content, or the binary's identity.
	Hash string
}

// Desired is the workload state computed from config, secrets and the charm binary.
type Desired struct {
	Files       []File
	AgentConfig []byte
	Layer       []byte
	InputsHash  string
	StatusPort  int
}

// Creds are the resolved registry credentials and TLS material.
type Creds struct {
	RegistryAuth string // FALCOCTL_REGISTRY_AUTH_BASIC format, "" for none
	TLSCert      []byte
	TLSKey       []byte
	TLSCA        []byte
	// FalcoAlertsToken is the token of the agent's /falco/alerts/<token> (engine=falco).
	FalcoAlertsToken string
}

func sha(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

var nonFileChars = regexp.MustCompile(`[^A-Za-z0-9._-]`)

// BuildDesired renders the agent configuration and the Pebble layer. binID identifies the
// charm's own executable (exe) cheaply: hashing ~50 MB on every hook would cost the whole
// latency budget.
//
// in carries what relations add (an HTTP output per falcosidekick); without it there is none.
func BuildDesired(s *Settings, c Creds, env Env, exe, binID string, in ...*Integrations) (*Desired, error) {
	var integ Integrations
	if len(in) > 0 && in[0] != nil {
		integ = *in[0]
	}
	root, unit := env.WorkloadRoot, env.Unit
	d := &Desired{StatusPort: statusPortFor(s.WebhookPort)}
	p := func(x string) string { return root + x }
	// Credential files (secret=true) are 0600: only the agent's user may read them.
	add := func(path string, mode os.FileMode, content []byte, secret bool) {
		if secret {
			mode = 0o600
		}
		d.Files = append(d.Files, File{Path: path, Mode: mode, Content: content, Hash: sha(content)})
	}

	level := s.LogLevel
	if level == "warning" {
		level = "warn"
	}
	tls := map[string]any{"cert_file": "", "key_file": ""}
	if len(c.TLSCert) > 0 {
		tls = map[string]any{"cert_file": p(TLSCertPath), "key_file": p(TLSKeyPath)}
		add(TLSCertPath, 0o644, c.TLSCert, false)
		add(TLSKeyPath, 0o600, c.TLSKey, true)
	}
	follow := map[string]any{
		"refs":       nonNil(s.RulesArtifacts),
		"interval":   s.FollowInterval.String(),
		"rule_files": nonNil(s.RuleFiles),
	}
	if s.AllowRuleRemoval {
		follow["allow_rule_removal"] = []string{"*"}
	}
	// The trusted root serves the configured identity and the index entries' signers; with
	// neither there is nothing keyless to verify.
	keyless := s.TrustedRoot != "" && (s.SigningIdentity != "" || len(s.IndexSigners) > 0)
	if s.SigningKey != "" || keyless || s.SignaturePolicy != "" {
		sig := map[string]any{"policy": s.SignaturePolicy}
		if s.SigningKey != "" {
			sig["key_file"] = p(SigningKeyPath)
			add(SigningKeyPath, 0o644, []byte(s.SigningKey), false)
		}
		if keyless {
			sig["trusted_root_file"] = p(TrustedRootPath)
			sig["certificate_identity"] = s.SigningIdentity
			sig["certificate_oidc_issuer"] = s.SigningIssuer
			add(TrustedRootPath, 0o644, []byte(s.TrustedRoot), false)
		}
		if keyless && len(s.IndexSigners) > 0 {
			perRef := map[string]any{}
			for r, sg := range s.IndexSigners {
				perRef[r] = map[string]string{"certificate_identity": sg.Identity, "certificate_identity_regexp": sg.IdentityRegexp,
					"certificate_oidc_issuer": sg.Issuer, "certificate_oidc_issuer_regexp": sg.IssuerRegexp}
			}
			sig["per_ref"] = perRef
		}
		follow["signature"] = sig
	}
	if c.RegistryAuth != "" {
		follow["registry_auth_file"] = p(RegistryAuthPath)
		add(RegistryAuthPath, 0o600, []byte(c.RegistryAuth), true)
	}
	if len(s.PlainHTTP) > 0 {
		follow["plain_http"] = s.PlainHTTP
	}
	if len(s.RegistryCA) > 0 {
		cas := map[string]string{}
		hosts := make([]string, 0, len(s.RegistryCA))
		for h := range s.RegistryCA {
			hosts = append(hosts, h)
		}
		sort.Strings(hosts)
		for _, h := range hosts {
			f := path.Join(RegistryCADir, nonFileChars.ReplaceAllString(h, "_")+".pem")
			cas[h] = p(f)
			add(f, 0o644, []byte(s.RegistryCA[h]), false)
		}
		follow["registry_ca"] = cas
	}
	cfg := map[string]any{
		// The drain must fit in the 30 s Kubernetes gives a terminating pod (Pebble's kill-delay
		// below is derived from it).
		"webhook": map[string]any{"listen": fmt.Sprintf(":%d", s.WebhookPort), "tls": tls, "shutdown_timeout": drainTimeout.String()},
		// /status, /alerts, /rules, /sync and /reload stay on loopback; only /metrics and the
		// probes are on the pod address, for Prometheus (metrics-endpoint).
		"observability": map[string]any{"listen": fmt.Sprintf("127.0.0.1:%d", d.StatusPort),
			"metrics_listen": fmt.Sprintf(":%d", metricsPortFor(s.WebhookPort))},
		"rules": map[string]any{"min_priority": s.MinPriority, "state_dir": p(StateDir)},
		"outputs": map[string]any{
			"hostname":    unit,
			"json_output": s.JSONOutput,
			"http":        map[string]any{"url": s.HTTPOutput, "extra_urls": nonNil(integ.HTTPURLs)},
			// As Canonical's falco charm does: alerts from several models can be told apart.
			"output_fields": TopologyOf(env).Labels(),
		},
		"follow": follow,
		// The agent records "artifacts accepted/ignored" as Events on the unit's pod.
		"kubernetes": map[string]any{"pod_name": env.PodName(), "namespace": env.Model},
		// JSON lines: Pebble's log forwarding and `kubectl logs` consumers parse them.
		"log": map[string]any{"level": level, "format": "json"},
		// The validating admission webhook (enforce-mode, enforce-rules).
		"admission": s.Enforce.agentSection(),
	}
	integ.Peer.agentSections(cfg, follow, p, add)
	if s.Engine == EngineFalco {
		if err := falcoDesired(cfg, s, c, env, d.StatusPort, p, add); err != nil {
			return nil, err
		}
	}
	body, err := yaml.Marshal(cfg)
	if err != nil {
		return nil, fmt.Errorf("render agent config: %w", err)
	}
	d.AgentConfig = append([]byte("# Written by the falco-k8s charm on every hook; edits are overwritten.\n"), body...)
	// The agent's own validation, in-process (this binary is the agent): a value the charm
	// accepted but the agent would refuse becomes a blocked status instead of a crash loop.
	ac, err := agentconfig.Parse(d.AgentConfig, nil)
	if err == nil {
		err = ac.Validate()
	}
	if err != nil {
		return nil, &ConfigError{Option: "(agent configuration)", Problem: oneLine(err.Error()), Fix: "check the options named above"}
	}
	add(AgentConfigPath, 0o644, d.AgentConfig, false)
	// Pebble sends SIGTERM, waits kill-delay, then SIGKILL: a little longer than the agent's
	// drain, and both inside the pod's 30 s grace period.
	killDelay := ac.Webhook.ShutdownTimeout + killMargin

	d.Files = append([]File{{Path: BinaryPath, Mode: 0o755, Source: exe, Hash: "id:" + binID}}, d.Files...)
	hashes := make([]string, 0, len(d.Files))
	for _, f := range d.Files {
		h := f.Hash
		if isFalcoReloaded(f.Path) {
			continue
		}
		if f.Path == TLSCertPath || f.Path == TLSKeyPath {
			// A renewed certificate is reloaded on SIGHUP, never by a restart: only whether
			// TLS is on belongs in the layer's inputs.
			h = "tls"
		}
		if f.Path == PeerTLSCertPath || f.Path == PeerTLSKeyPath {
			h = "peer-tls" // likewise, SIGHUP reloads the peer API's certificate
		}
		hashes = append(hashes, f.Path+"="+h)
	}
	sort.Strings(hashes)
	d.InputsHash = sha([]byte(strings.Join(hashes, "\n")))[:32]

	layer := map[string]any{
		"summary":     "falco-k8s agent",
		"description": "Kubernetes audit webhook and Falco rules engine; managed by the falco-k8s charm.",
		"services": map[string]any{ServiceName: map[string]any{
			"override":    "replace",
			"summary":     "falco-k8s agent",
			"command":     fmt.Sprintf("%s agent -c %s", p(BinaryPath), p(AgentConfigPath)),
			"startup":     "enabled",
			"environment": map[string]string{hashEnv: d.InputsHash, "FALCO_HOSTNAME": unit},
			// A stuck agent is restarted by Pebble itself (agent-restart has no level, so Kubernetes
			// does not see it); a failed liveness probe would restart the whole container and
			// lose every pushed file until the next pebble-ready.
			"on-check-failure": map[string]string{"agent-restart": "restart"},
			"kill-delay":       killDelay.String(),
		}},
		"checks": map[string]any{
			"agent-restart": map[string]any{
				"override": "replace", "period": "10s", "timeout": "3s", "threshold": 3,
				"http": map[string]any{"url": fmt.Sprintf("http://127.0.0.1:%d/healthz", d.StatusPort)},
			},
			// Juju's liveness probe: only when Pebble's own restarts have not helped for five
			// minutes is the container restarted.
			"agent-alive": map[string]any{
				"override": "replace", "level": "alive", "period": "30s", "timeout": "5s", "threshold": 10,
				"http": map[string]any{"url": fmt.Sprintf("http://127.0.0.1:%d/healthz", d.StatusPort)},
			},
			"agent-ready": map[string]any{
				"override": "replace", "level": "ready", "period": "10s", "timeout": "3s", "threshold": 3,
				"http": map[string]any{"url": fmt.Sprintf("http://127.0.0.1:%d/readyz", d.StatusPort)},
			},
		},
	}
	if s.Engine == EngineFalco {
		svc, check := falcoService(env, s.WebhookPort, p)
		layer["services"].(map[string]any)[FalcoServiceName] = svc
		layer["checks"].(map[string]any)[FalcoCheckName] = check
	}
	if d.Layer, err = yaml.Marshal(layer); err != nil {
		return nil, fmt.Errorf("render pebble layer: %w", err)
	}
	return d, nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
