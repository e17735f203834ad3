// Package config is the falco-k8s agent's configuration file: its Go types, the commented default
// file (DefaultYAML, which is also the source of the defaults), loading with `-o dotted.key=value`
// overrides, and validation whose errors name the offending key.
//
// The charm writes this file; people read it. Unknown keys are errors rather than being ignored
// so that a typo (say `max_body` for `max_body_size`) cannot silently leave a limit at its
// default.
package config

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"maps"
	"math"
	"net"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/falco-k8s/falco-k8s/engine"
	"github.com/falco-k8s/falco-k8s/internal/redact"
)

// DefaultYAML is the default configuration file with a comment on every key. Default() is
// decoded from it, so the documentation cannot drift from the defaults.
//
//go:embed default.yaml
var DefaultYAML []byte

// Config is the whole agent configuration.
type Config struct {
	// Engine is what evaluates the audit events: falco-k8s (this agent) or falco (a real Falco
	// beside it, configured by the charm; see Falco).
	Engine        string        `yaml:"engine"`
	Falco         Falco         `yaml:"falco"`
	Webhook       Webhook       `yaml:"webhook"`
	Observability Observability `yaml:"observability"`
	Rules         Rules         `yaml:"rules"`
	Outputs       Outputs       `yaml:"outputs"`
	Follow        Follow        `yaml:"follow"`
	Journal       Journal       `yaml:"journal"`
	Kubernetes    Kubernetes    `yaml:"kubernetes"`
	Log           Log           `yaml:"log"`
	Admission     Admission     `yaml:"admission"`
}

// Kubernetes configures the Events the agent records on its own pod when a ruleset candidate is
// accepted or ignored ("ArtifactsAccepted", "ArtifactsIgnored").
type Kubernetes struct {
	// Events is auto (on when running in a cluster or with a kubeconfig), true or false.
	Events string `yaml:"events"`
	// PodName and Namespace name the pod; empty means $POD_NAME / the host name and
	// $POD_NAMESPACE / the service account's namespace.
	PodName   string `yaml:"pod_name"`
	Namespace string `yaml:"namespace"`
	// Kubeconfig replaces the in-cluster service account when set.
	Kubeconfig string `yaml:"kubeconfig"`
}

// Journal configures the durable alert journal behind GET /alerts (in <state_dir>/journal).
type Journal struct {
	Enabled    bool          `yaml:"enabled"`
	MaxBytes   ByteSize      `yaml:"max_bytes"`
	MaxAge     time.Duration `yaml:"max_age"`
	BufferSize int           `yaml:"buffer_size"`
}

// JournalDir is where the alert journal lives.
func (c *Config) JournalDir() string { return filepath.Join(c.Rules.StateDir, "journal") }

// TuningPath is rules.tuning_file, defaulting to <state_dir>/tuning.yaml.
func (r Rules) TuningPath() string {
	if r.TuningFile != "" {
		return r.TuningFile
	}
	if r.StateDir == "" {
		return ""
	}
	return filepath.Join(r.StateDir, "tuning.yaml")
}

// Webhook configures the audit webhook endpoint.
type Webhook struct {
	Listen            string        `yaml:"listen"`
	Path              string        `yaml:"path"`
	TLS               ServerTLS     `yaml:"tls"`
	BearerTokenFile   string        `yaml:"bearer_token_file"`
	MaxEventSize      ByteSize      `yaml:"max_event_size"`
	MaxBodySize       ByteSize      `yaml:"max_body_size"`
	MaxInflight       int           `yaml:"max_inflight"`
	MaxEvents         int           `yaml:"max_events"`
	MemoryBudget      ByteSize      `yaml:"memory_budget"`
	BodyTimeout       time.Duration `yaml:"body_timeout"`
	BodyGrace         time.Duration `yaml:"body_grace"`
	MinBodyRate       ByteSize      `yaml:"min_body_rate"`
	Queue             Queue         `yaml:"queue"`
	RetryAfter        time.Duration `yaml:"retry_after"`
	ReadHeaderTimeout time.Duration `yaml:"read_header_timeout"`
	ReadTimeout       time.Duration `yaml:"read_timeout"`
	WriteTimeout      time.Duration `yaml:"write_timeout"`
	IdleTimeout       time.Duration `yaml:"idle_timeout"`
	ShutdownTimeout   time.Duration `yaml:"shutdown_timeout"`
}

// MemoryBound is the peak resident memory that follows from the configuration: the webhook's
// memory budget (bodies being read, batches being parsed by the webhook and the workers), the
// queue's bytes (admitted bodies) and BaseMemory for the rest. agent/doc.go ("Memory") explains
// each part; TestPeakRSSFollowsConfiguration measures it.
func (c *Config) MemoryBound() int64 {
	return int64(c.Webhook.MemoryBudget) + int64(c.Webhook.Queue.MaxBytes) + BaseMemory +
		int64(2*c.EvaluationWorkers())*KeptParserCost
}

// GoMemLimit is the Go runtime's soft memory limit the agent sets unless GOMEMLIMIT is: the
// bound less half the base allowance (the binary's code and the runtime's own memory are outside
// the Go heap), so the garbage collector works harder as the heap nears the bound instead of
// letting garbage double it.
func (c *Config) GoMemLimit() int64 { return c.MemoryBound() - BaseMemory/2 }

// KeptParserCost is the largest parse (charged cost, webhook.CostPerToken per JSON token)
// whose parser is kept for the next batch, by each evaluation worker and by the webhook (as many
// as there are workers): a fresh parser per batch costs a third of the CPU, and kube-apiserver's
// default batch (400 events) costs about 30 MiB. A kept parser retains at most this much (about
// a third of it for real audit events), outside the memory budget.
const KeptParserCost = 32 << 20

// EvaluationWorkers is rules.workers, or one evaluation worker per core when it is 0.
func (c *Config) EvaluationWorkers() int {
	if c.Rules.Workers > 0 {
		return c.Rules.Workers
	}
	return runtime.GOMAXPROCS(0)
}

// BaseMemory is the allowance for everything but request bodies and their parsing: rules,
// evaluators, output and journal buffers, the runtime and the binary (about 40 MiB measured
// with the built-in rules), plus the collector's slack.
const BaseMemory = 128 << 20

// ServerTLS is the webhook's serving certificate and optional client CA.
type ServerTLS struct {
	CertFile     string `yaml:"cert_file"`
	KeyFile      string `yaml:"key_file"`
	ClientCAFile string `yaml:"client_ca_file"`
}

// Enabled reports whether the listener serves TLS.
func (t ServerTLS) Enabled() bool { return t.CertFile != "" }

// Queue bounds the accepted-but-not-evaluated events.
type Queue struct {
	Capacity int           `yaml:"capacity"`
	MaxBytes ByteSize      `yaml:"max_bytes"`
	Wait     time.Duration `yaml:"wait"`
}

// Observability configures /healthz, /readyz, /metrics and /status.
type Observability struct {
	Listen string `yaml:"listen"`
	// MetricsListen is a plain HTTP listener serving only /metrics, /healthz and /readyz, for a
	// Prometheus on the pod network; empty disables it.
	MetricsListen string `yaml:"metrics_listen"`
}

// Rules configures what is loaded and how it is evaluated.
type Rules struct {
	Builtin      bool     `yaml:"builtin"`
	Files        []string `yaml:"files"`
	MinPriority  string   `yaml:"min_priority"`
	RuleMatching string   `yaml:"rule_matching"`
	Workers      int      `yaml:"workers"`
	StateDir     string   `yaml:"state_dir"`
	TuningFile   string   `yaml:"tuning_file"`
}

// Priority returns the parsed MinPriority (valid after Validate).
func (r Rules) Priority() engine.Priority {
	p, _ := engine.ParsePriority(r.MinPriority)
	return p
}

// AllMatches reports whether every matching rule alerts (rule_matching: all).
func (r Rules) AllMatches() bool { return r.RuleMatching == "all" }

// Outputs configures where alerts go.
type Outputs struct {
	Hostname   string     `yaml:"hostname"`
	JSONOutput bool       `yaml:"json_output"`
	Stdout     StdoutOut  `yaml:"stdout"`
	File       FileOut    `yaml:"file"`
	HTTP       HTTPOutput `yaml:"http"`
	// OutputFields are added to every alert's output_fields (Falco's
	// append_output.extra_output_fields), e.g. the Juju topology.
	OutputFields map[string]string `yaml:"output_fields"`
}

// ResolvedHostname applies Falco's rule: the configured name, else $FALCO_HOSTNAME, else the
// machine's host name.
func (o Outputs) ResolvedHostname() string {
	if o.Hostname != "" {
		return o.Hostname
	}
	if h := os.Getenv("FALCO_HOSTNAME"); h != "" {
		return h
	}
	h, _ := os.Hostname()
	return h
}

// StdoutOut is the standard output.
type StdoutOut struct {
	Enabled     bool   `yaml:"enabled"`
	JSON        *bool  `yaml:"json"`
	MinPriority string `yaml:"min_priority"`
}

// FileOut appends alerts to a file.
type FileOut struct {
	Path        string `yaml:"path"`
	JSON        *bool  `yaml:"json"`
	MinPriority string `yaml:"min_priority"`
}

// HTTPOutput posts Falco JSON alerts.
type HTTPOutput struct {
	URL string `yaml:"url"`
	// ExtraURLs are more endpoints posted to with the same settings, each with its own buffer
	// (output names http-2, http-3, ...).
	ExtraURLs      []string      `yaml:"extra_urls"`
	MinPriority    string        `yaml:"min_priority"`
	Timeout        time.Duration `yaml:"timeout"`
	MaxRetries     int           `yaml:"max_retries"`
	InitialBackoff time.Duration `yaml:"initial_backoff"`
	MaxBackoff     time.Duration `yaml:"max_backoff"`
	BufferSize     int           `yaml:"buffer_size"`
	TLS            ClientTLS     `yaml:"tls"`
}

// ClientTLS configures an outgoing TLS connection.
type ClientTLS struct {
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"`
	CAFile             string `yaml:"ca_file"`
	ClientCertFile     string `yaml:"client_cert_file"`
	ClientKeyFile      string `yaml:"client_key_file"`
}

// Follow configures the OCI rules follower (agent/follower). The charm writes these keys; their
// names are part of its contract.
type Follow struct {
	Refs     []string      `yaml:"refs"`
	Interval time.Duration `yaml:"interval"`
	// Jitter spreads checks over interval x (1 ± jitter) so that many agents do not hit a
	// registry in step (GHCR rate-limits falcoctl's fixed schedule).
	Jitter    float64  `yaml:"jitter"`
	RuleFiles []string `yaml:"rule_files"`
	// RegistryAuthFile holds FALCOCTL_REGISTRY_AUTH_BASIC-format credentials
	// ("registry,user,password;..."); it must not be readable by group or others.
	RegistryAuthFile string `yaml:"registry_auth_file"`
	// PlainHTTP lists registry hosts (host[:port]) reached over plain HTTP.
	PlainHTTP []string `yaml:"plain_http"`
	// RegistryCA maps a registry host to a PEM CA bundle trusted for it, on top of the system
	// roots.
	RegistryCA map[string]string `yaml:"registry_ca"`
	// MaxArtifactSize bounds an artifact's compressed layer and its extracted content.
	MaxArtifactSize ByteSize `yaml:"max_artifact_size"`
	// AllowRuleRemoval lists the references (as in Refs, or "*" for all) whose new artifacts may
	// remove, disable or lower below rules.minimum_priority a rule evaluated now; other
	// candidates that would are ignored, naming those rules (the detection-regression guard).
	AllowRuleRemoval []string `yaml:"allow_rule_removal"`
	// Signature configures cosign signature verification of followed artifacts.
	Signature Signature `yaml:"signature"`
}

// Signature configures the cosign signature check of each new digest (artifact/signature).
type Signature struct {
	// KeyFile is a PEM public key (cosign.pub).
	KeyFile string `yaml:"key_file"`
	// TrustedRootFile is a Sigstore trusted_root.json; with a certificate identity and OIDC
	// issuer (exact or regexp, named as in falcoctl's index), keyless signatures are verified.
	TrustedRootFile             string `yaml:"trusted_root_file"`
	CertificateIdentity         string `yaml:"certificate_identity"`
	CertificateIdentityRegexp   string `yaml:"certificate_identity_regexp"`
	CertificateOIDCIssuer       string `yaml:"certificate_oidc_issuer"`
	CertificateOIDCIssuerRegexp string `yaml:"certificate_oidc_issuer_regexp"`
	// Policy is required, if-present or off; empty: required when KeyFile is set, else off.
	Policy string `yaml:"policy"`
	// Policies override Policy per reference (keys exactly as in follow.refs).
	Policies map[string]string `yaml:"policies"`
}

// PolicyFor is the signature policy of a reference (as in follow.refs).
func (s Signature) PolicyFor(ref string) string {
	if p, ok := s.Policies[ref]; ok && p != "" {
		return p
	}
	if s.Policy != "" {
		return s.Policy
	}
	if s.KeyFile != "" || s.TrustedRootFile != "" {
		return "required"
	}
	return "off"
}

// Log configures the agent's own logs.
type Log struct {
	Level  string `yaml:"level"`
	Format string `yaml:"format"`
}

// JSONFor resolves a per-output json setting against outputs.json_output.
func (o Outputs) JSONFor(v *bool) bool {
	if v != nil {
		return *v
	}
	return o.JSONOutput
}

// ByteSize is a size in bytes, written as a number or with a KiB/MiB/GiB (Ki/Mi/Gi, KB/MB/GB
// meaning the same binary units) suffix.
type ByteSize int64

// ParseByteSize parses "262144", "256KiB", "12Mi", "1GiB".
func ParseByteSize(s string) (ByteSize, error) {
	t := strings.TrimSpace(s)
	mult := int64(1)
	for _, suf := range []struct {
		s string
		m int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"Ki", 1 << 10}, {"Mi", 1 << 20}, {"Gi", 1 << 30}, {"KB", 1 << 10}, {"MB", 1 << 20}, {"GB", 1 << 30}, {"B", 1}} {
		if strings.HasSuffix(t, suf.s) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, suf.s)), suf.m
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 || n > math.MaxInt64/mult {
		return 0, fmt.Errorf("invalid size %q: want bytes or a number with KiB, MiB or GiB", s)
	}
	return ByteSize(n * mult), nil
}

func (b ByteSize) String() string {
	switch {
	case b > 0 && b%(1<<30) == 0:
		return fmt.Sprintf("%dGiB", b>>30)
	case b > 0 && b%(1<<20) == 0:
		return fmt.Sprintf("%dMiB", b>>20)
	case b > 0 && b%(1<<10) == 0:
		return fmt.Sprintf("%dKiB", b>>10)
	}
	return strconv.FormatInt(int64(b), 10)
}

// MarshalYAML writes the short form.
func (b ByteSize) MarshalYAML() (any, error) { return b.String(), nil }

// Default returns the default configuration (decoded from DefaultYAML).
func Default() *Config {
	c := &Config{}
	var doc yaml.Node
	if err := yaml.Unmarshal(DefaultYAML, &doc); err != nil {
		panic("config: default.yaml: " + err.Error())
	}
	if err := decodeNode(doc.Content[0], reflect.ValueOf(c).Elem(), ""); err != nil {
		panic("config: default.yaml: " + err.Error())
	}
	return c
}

// Load reads the configuration: defaults, then the file at path (if path is not empty), then the
// overrides ("dotted.key=value", value parsed as YAML). It does not validate; call Validate.
func Load(path string, overrides []string) (*Config, error) {
	var content []byte
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("read config: %w", err)
		}
		content = b
	}
	c, err := Parse(content, overrides)
	if err != nil && path != "" {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, err
}

// Parse is Load on in-memory content.
func Parse(content []byte, overrides []string) (*Config, error) {
	c := Default()
	root := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	if len(bytes.TrimSpace(content)) > 0 {
		var doc yaml.Node
		if err := yaml.Unmarshal(content, &doc); err != nil {
			return nil, fmt.Errorf("parse config: %w", err)
		}
		if len(doc.Content) > 0 && !isNull(doc.Content[0]) {
			root = doc.Content[0]
		}
	}
	for _, o := range overrides {
		if err := applyOverride(root, o); err != nil {
			return nil, err
		}
	}
	if err := decodeNode(root, reflect.ValueOf(c).Elem(), ""); err != nil {
		return nil, err
	}
	return c, nil
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && (n.Tag == "!!null" || n.Value == "" && n.Tag == "")
}

// applyOverride sets one dotted key in the YAML tree, creating intermediate mappings. Override
// nodes get line 0, which error messages print as "from -o".
func applyOverride(root *yaml.Node, o string) error {
	key, val, ok := strings.Cut(o, "=")
	key = strings.TrimSpace(key)
	if !ok || key == "" {
		// Not the override itself: "-o outputs.http.url http://user:password@..." holds a secret.
		return fmt.Errorf("invalid override %s: want -o dotted.key=value", shownKey(key))
	}
	if root.Kind != yaml.MappingNode {
		return fmt.Errorf("config: top level must be a mapping")
	}
	var vdoc yaml.Node
	if strings.TrimSpace(val) == "" {
		vdoc.Content = []*yaml.Node{{Kind: yaml.ScalarNode, Tag: "!!str", Value: ""}}
	} else if err := yaml.Unmarshal([]byte(val), &vdoc); err != nil {
		// The value is not shown: it may be a URL with a password or a token.
		return fmt.Errorf("override %s: the value is not valid YAML (%w): quote it, e.g. -o '%s=\"...\"'", shownKey(key), err, shownKey(key))
	}
	// A value that is only a comment ("-o key=#x") is an empty document: YAML's null, as in a file.
	value := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null"}
	if len(vdoc.Content) > 0 {
		value = vdoc.Content[0]
	}
	zeroLines(value)
	n := root
	parts := strings.Split(key, ".")
	for i, p := range parts {
		var child *yaml.Node
		for j := 0; j+1 < len(n.Content); j += 2 {
			if n.Content[j].Value == p {
				child = n.Content[j+1]
				if i == len(parts)-1 {
					n.Content[j+1] = value
				}
				break
			}
		}
		if i == len(parts)-1 {
			if child == nil {
				n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: p}, value)
			}
			return nil
		}
		if child == nil || child.Kind != yaml.MappingNode {
			m := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
			if child == nil {
				n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: p}, m)
			} else {
				*child = *m
				m = child
			}
			child = m
		}
		n = child
	}
	return nil
}

// shownKey returns key when it looks like a dotted configuration key and a placeholder
// otherwise, so a malformed override never echoes a value that may be secret.
func shownKey(key string) string {
	ok := key != "" && len(key) <= 64
	for _, r := range key {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' || r == '.') {
			ok = false
			break
		}
	}
	if !ok {
		return "(key not shown)"
	}
	return key
}

func zeroLines(n *yaml.Node) {
	n.Line, n.Column = 0, 0
	for _, c := range n.Content {
		zeroLines(c)
	}
}

var (
	durationType = reflect.TypeOf(time.Duration(0))
	byteSizeType = reflect.TypeOf(ByteSize(0))
)

// keyError names the dotted key and where its value came from.
func keyError(key string, n *yaml.Node, format string, args ...any) error {
	where := "from -o"
	if n.Line > 0 {
		where = fmt.Sprintf("line %d", n.Line)
	}
	return fmt.Errorf("config key %s (%s): %s", key, where, fmt.Sprintf(format, args...))
}

// decodeNode decodes n into v field by field, so that every error names the dotted key and
// unknown keys are rejected.
func decodeNode(n *yaml.Node, v reflect.Value, key string) error {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	switch {
	case v.Type() == durationType:
		d, err := time.ParseDuration(strings.TrimSpace(n.Value))
		if n.Kind != yaml.ScalarNode || err != nil {
			return keyError(key, n, "invalid duration %q: want e.g. 500ms, 30s or 6h", n.Value)
		}
		v.SetInt(int64(d))
		return nil
	case v.Type() == byteSizeType:
		if n.Kind != yaml.ScalarNode {
			return keyError(key, n, "want a size such as 262144 or 256KiB")
		}
		b, err := ParseByteSize(n.Value)
		if err != nil {
			return keyError(key, n, "%v", err)
		}
		v.SetInt(int64(b))
		return nil
	}
	switch v.Kind() {
	case reflect.Struct:
		if isNull(n) {
			return nil
		}
		if n.Kind != yaml.MappingNode {
			return keyError(orTop(key), n, "want a mapping")
		}
		fields := map[string]int{}
		t := v.Type()
		for i := 0; i < t.NumField(); i++ {
			if tag := strings.Split(t.Field(i).Tag.Get("yaml"), ",")[0]; tag != "" {
				fields[tag] = i
			}
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			sub := k.Value
			if key != "" {
				sub = key + "." + k.Value
			}
			idx, ok := fields[k.Value]
			if !ok {
				return keyError(sub, k, "unknown key")
			}
			if err := decodeNode(val, v.Field(idx), sub); err != nil {
				return err
			}
		}
		return nil
	case reflect.Pointer:
		if isNull(n) {
			v.SetZero()
			return nil
		}
		p := reflect.New(v.Type().Elem())
		if err := decodeNode(n, p.Elem(), key); err != nil {
			return err
		}
		v.Set(p)
		return nil
	case reflect.Slice:
		if isNull(n) {
			v.SetZero()
			return nil
		}
		if n.Kind != yaml.SequenceNode {
			return keyError(key, n, "want a list, e.g. [a, b]")
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, e := range n.Content {
			if err := decodeNode(e, s.Index(i), fmt.Sprintf("%s[%d]", key, i)); err != nil {
				return err
			}
		}
		v.Set(s)
		return nil
	case reflect.String:
		if n.Kind != yaml.ScalarNode {
			return keyError(key, n, "want a string")
		}
		if isNull(n) {
			v.SetString("")
			return nil
		}
		v.SetString(n.Value)
		return nil
	case reflect.Bool:
		var b bool
		if n.Kind != yaml.ScalarNode || n.Decode(&b) != nil {
			return keyError(key, n, "invalid value %q: want true or false", n.Value)
		}
		v.SetBool(b)
		return nil
	case reflect.Int, reflect.Int64:
		var i int64
		if n.Kind != yaml.ScalarNode || n.Decode(&i) != nil {
			return keyError(key, n, "invalid value %q: want an integer", n.Value)
		}
		v.SetInt(i)
		return nil
	case reflect.Float64:
		var f float64
		if n.Kind != yaml.ScalarNode || n.Decode(&f) != nil {
			return keyError(key, n, "invalid value %q: want a number such as 0.1", n.Value)
		}
		v.SetFloat(f)
		return nil
	case reflect.Map:
		// Only string-keyed maps (follow.registry_ca); keys are free-form (host names contain
		// dots), so they are not checked against a field list.
		if isNull(n) {
			v.SetZero()
			return nil
		}
		if n.Kind != yaml.MappingNode || v.Type().Key().Kind() != reflect.String {
			return keyError(key, n, "want a mapping, e.g. {ghcr.io: /etc/ssl/ghcr-ca.pem}")
		}
		m := reflect.MakeMapWithSize(v.Type(), len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			e := reflect.New(v.Type().Elem()).Elem()
			if err := decodeNode(val, e, key+"["+k.Value+"]"); err != nil {
				return err
			}
			m.SetMapIndex(reflect.ValueOf(k.Value).Convert(v.Type().Key()), e)
		}
		v.Set(m)
		return nil
	}
	return keyError(key, n, "unsupported type %s", v.Type())
}

func orTop(key string) string {
	if key == "" {
		return "(top level)"
	}
	return key
}

// Validate checks values and their combinations. The error lists every problem, each naming
// its key.
func (c *Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("config key %s: %s", key, fmt.Sprintf(format, args...)))
	}
	w := &c.Webhook
	checkAddr := func(key, addr string) {
		if _, port, err := net.SplitHostPort(addr); err != nil {
			bad(key, "invalid listen address %q: want host:port, e.g. :9765", addr)
		} else if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
			bad(key, "invalid port %q", port)
		}
	}
	checkAddr("webhook.listen", w.Listen)
	if !strings.HasPrefix(w.Path, "/") || path.Clean(w.Path) != w.Path {
		bad("webhook.path", "invalid path %q: want a clean absolute URL path such as /k8s-audit", w.Path)
	}
	for _, p := range []string{"/healthz", "/readyz", "/metrics", "/status", "/alerts"} {
		if w.Path == p && c.Observability.Listen == "" {
			bad("webhook.path", "%s is taken by the observability endpoints on the same listener", p)
		}
	}
	if (w.TLS.CertFile == "") != (w.TLS.KeyFile == "") {
		bad("webhook.tls", "cert_file and key_file must be set together")
	}
	if w.TLS.ClientCAFile != "" && !w.TLS.Enabled() {
		bad("webhook.tls.client_ca_file", "client certificates need TLS: set webhook.tls.cert_file and key_file")
	}
	positive := func(key string, v int64) {
		if v <= 0 {
			bad(key, "must be greater than 0, got %d", v)
		}
	}
	positive("webhook.max_event_size", int64(w.MaxEventSize))
	positive("webhook.max_body_size", int64(w.MaxBodySize))
	positive("webhook.max_inflight", int64(w.MaxInflight))
	positive("webhook.queue.capacity", int64(w.Queue.Capacity))
	positive("webhook.queue.max_bytes", int64(w.Queue.MaxBytes))
	positive("webhook.max_events", int64(w.MaxEvents))
	if w.MemoryBudget < 2*w.MaxBodySize {
		bad("webhook.memory_budget", "%s is less than twice webhook.max_body_size (%s): no full-size batch could be read and checked", w.MemoryBudget, w.MaxBodySize)
	}
	if w.MinBodyRate < 0 {
		bad("webhook.min_body_rate", "must not be negative, got %d", w.MinBodyRate)
	}
	if w.Queue.MaxBytes > 0 && w.Queue.MaxBytes < w.MaxBodySize {
		bad("webhook.queue.max_bytes", "%s is smaller than webhook.max_body_size (%s): a full-size batch could never be queued", w.Queue.MaxBytes, w.MaxBodySize)
	}
	for _, d := range []struct {
		key string
		v   time.Duration
	}{{"webhook.queue.wait", w.Queue.Wait}, {"webhook.retry_after", w.RetryAfter}, {"webhook.body_timeout", w.BodyTimeout}, {"webhook.body_grace", w.BodyGrace}, {"webhook.read_header_timeout", w.ReadHeaderTimeout},
		{"webhook.read_timeout", w.ReadTimeout}, {"webhook.write_timeout", w.WriteTimeout}, {"webhook.idle_timeout", w.IdleTimeout},
		{"webhook.shutdown_timeout", w.ShutdownTimeout}, {"outputs.http.timeout", c.Outputs.HTTP.Timeout},
		{"outputs.http.initial_backoff", c.Outputs.HTTP.InitialBackoff}, {"outputs.http.max_backoff", c.Outputs.HTTP.MaxBackoff}} {
		if d.v < 0 {
			bad(d.key, "must not be negative, got %s", d.v)
		}
	}
	if w.RetryAfter <= 0 {
		bad("webhook.retry_after", "must be at least 1s")
	}
	if m := c.Observability.MetricsListen; m != "" {
		checkAddr("observability.metrics_listen", m)
		// Port 0 (any free port, in tests) never clashes.
		if !strings.HasSuffix(m, ":0") && (m == w.Listen || m == c.Observability.Listen) {
			bad("observability.metrics_listen", "must differ from webhook.listen and observability.listen")
		}
	}
	for k := range c.Outputs.OutputFields {
		if k == "" || strings.ContainsAny(k, " \t\n\"") {
			bad("outputs.output_fields", "invalid field name %q", k)
		}
	}
	if c.Observability.Listen != "" {
		checkAddr("observability.listen", c.Observability.Listen)
		if c.Observability.Listen == w.Listen {
			bad("observability.listen", "same as webhook.listen: leave it empty to share the webhook listener")
		}
	}
	priority := func(key, v string) {
		if _, err := engine.ParsePriority(v); err != nil {
			bad(key, "%v", err)
		}
	}
	priority("rules.min_priority", c.Rules.MinPriority)
	if c.Rules.RuleMatching != "first" && c.Rules.RuleMatching != "all" {
		bad("rules.rule_matching", "invalid value %q: use first or all", c.Rules.RuleMatching)
	}
	if c.Rules.Workers < 0 {
		bad("rules.workers", "must not be negative, got %d", c.Rules.Workers)
	}
	for i, f := range c.Rules.Files {
		if strings.TrimSpace(f) == "" {
			bad(fmt.Sprintf("rules.files[%d]", i), "empty path")
		}
	}
	if !c.Rules.Builtin && len(c.Rules.Files) == 0 && len(c.Follow.Refs) == 0 {
		bad("rules", "nothing to load: rules.builtin is false and neither rules.files nor follow.refs is set")
	}
	o := &c.Outputs
	priority("outputs.stdout.min_priority", o.Stdout.MinPriority)
	priority("outputs.file.min_priority", o.File.MinPriority)
	priority("outputs.http.min_priority", o.HTTP.MinPriority)
	for i, x := range o.HTTP.ExtraURLs {
		u, err := url.Parse(x)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad(fmt.Sprintf("outputs.http.extra_urls[%d]", i), "invalid URL: want http(s)://host[:port]/path")
		}
	}
	if o.HTTP.URL != "" || len(o.HTTP.ExtraURLs) > 0 {
		if o.HTTP.URL != "" {
			u, err := url.Parse(o.HTTP.URL)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				bad("outputs.http.url", "invalid URL %q: want http(s)://host[:port]/path", redact.URL(o.HTTP.URL))
			}
		}
		if o.HTTP.MaxRetries < 0 {
			bad("outputs.http.max_retries", "must not be negative, got %d", o.HTTP.MaxRetries)
		}
		positive("outputs.http.buffer_size", int64(o.HTTP.BufferSize))
		if o.HTTP.Timeout <= 0 {
			bad("outputs.http.timeout", "must be greater than 0")
		}
		if (o.HTTP.TLS.ClientCertFile == "") != (o.HTTP.TLS.ClientKeyFile == "") {
			bad("outputs.http.tls", "client_cert_file and client_key_file must be set together")
		}
	}
	f := &c.Follow
	for i, r := range f.Refs {
		if strings.TrimSpace(r) == "" || strings.ContainsAny(r, " \t\n") {
			bad(fmt.Sprintf("follow.refs[%d]", i), "invalid reference %q", redact.URL(r))
		}
	}
	if len(f.Refs) > 0 {
		if f.Interval < time.Second {
			bad("follow.interval", "must be at least 1s, got %s", f.Interval)
		}
		if len(f.RuleFiles) == 0 {
			bad("follow.rule_files", "required when follow.refs is set: list the rule files to load from the artifacts, e.g. [k8s_audit_rules.yaml]")
		}
		if c.Rules.StateDir == "" {
			bad("rules.state_dir", "required when follow.refs is set")
		}
	}
	if f.Jitter < 0 || f.Jitter > 0.5 || math.IsNaN(f.Jitter) {
		bad("follow.jitter", "must be between 0 and 0.5, got %v", f.Jitter)
	}
	positive("follow.max_artifact_size", int64(f.MaxArtifactSize))
	// Hosts are host[:port] as in references: a scheme or path would never match one.
	checkHost := func(key, h string) {
		if h == "" || strings.Contains(h, "://") || strings.ContainsAny(h, "/ \t@") {
			bad(key, "invalid registry host %q: want host[:port] as in the reference, e.g. ghcr.io or 10.0.0.5:5000", redact.URL(h))
		}
	}
	for i, h := range f.PlainHTTP {
		checkHost(fmt.Sprintf("follow.plain_http[%d]", i), h)
	}
	// Sorted so that the error (and hence logs and status) is the same from one run to the next.
	for _, h := range slices.Sorted(maps.Keys(f.RegistryCA)) {
		checkHost("follow.registry_ca["+h+"]", h)
		if strings.TrimSpace(f.RegistryCA[h]) == "" {
			bad("follow.registry_ca["+h+"]", "empty CA file path")
		}
	}
	validPolicy := func(p string) bool { return p == "" || p == "required" || p == "if-present" || p == "off" }
	if !validPolicy(f.Signature.Policy) {
		bad("follow.signature.policy", "%q: want required, if-present or off", f.Signature.Policy)
	}
	for _, r := range slices.Sorted(maps.Keys(f.Signature.Policies)) {
		p := f.Signature.Policies[r]
		switch {
		case !slices.Contains(f.Refs, r):
			bad("follow.signature.policies["+r+"]", "not in follow.refs: use the reference exactly as in follow.refs")
		case !validPolicy(p):
			bad("follow.signature.policies["+r+"]", "%q: want required, if-present or off", p)
		}
	}
	if sg := f.Signature; sg.KeyFile == "" && sg.TrustedRootFile == "" {
		for _, r := range f.Refs {
			if p := sg.PolicyFor(r); p == "required" || p == "if-present" {
				bad("follow.signature.key_file", "required for signature policy %s (%s): set the cosign public key file (cosign.pub), or trusted_root_file with a certificate identity and issuer", p, r)
				break
			}
		}
	} else if sg.TrustedRootFile != "" && ((sg.CertificateIdentity == "") == (sg.CertificateIdentityRegexp == "") ||
		(sg.CertificateOIDCIssuer == "") == (sg.CertificateOIDCIssuerRegexp == "")) {
		bad("follow.signature.trusted_root_file", "keyless verification needs exactly one of certificate_identity and certificate_identity_regexp, and one of certificate_oidc_issuer and certificate_oidc_issuer_regexp")
	}
	for i, r := range f.AllowRuleRemoval {
		if r != "*" && !slices.Contains(f.Refs, r) {
			bad(fmt.Sprintf("follow.allow_rule_removal[%d]", i), "%q is not in follow.refs: list references exactly as in follow.refs, or \"*\" for all", r)
		}
	}
	seen := map[string]bool{}
	for i, rf := range f.RuleFiles {
		key := fmt.Sprintf("follow.rule_files[%d]", i)
		switch {
		case rf == "" || path.IsAbs(rf) || path.Clean(rf) != rf || rf == ".." || strings.HasPrefix(rf, "../"):
			bad(key, "invalid path %q: want a clean relative path inside the artifact", rf)
		case !strings.HasSuffix(rf, ".yaml") && !strings.HasSuffix(rf, ".yml"):
			bad(key, "%q: rule files must end in .yaml or .yml", rf)
		case seen[rf]:
			bad(key, "%q listed twice", rf)
		}
		seen[rf] = true
	}
	if j := c.Journal; j.Enabled {
		if c.Rules.StateDir == "" {
			bad("rules.state_dir", "required when journal.enabled is true")
		}
		if j.MaxBytes < 64<<10 {
			bad("journal.max_bytes", "must be at least 64KiB, got %s", j.MaxBytes)
		}
		if j.MaxAge < time.Minute {
			bad("journal.max_age", "must be at least 1m, got %s", j.MaxAge)
		}
		positive("journal.buffer_size", int64(j.BufferSize))
	}
	c.validateAdmission(bad)
	c.validateFalco(bad)
	switch c.Kubernetes.Events {
	case "auto", "true", "false":
	default:
		bad("kubernetes.events", "invalid value %q: use auto, true or false", c.Kubernetes.Events)
	}
	if c.Log.Format != "auto" && c.Log.Format != "text" && c.Log.Format != "json" && c.Log.Format != "color" {
		bad("log.format", "invalid value %q: use auto, text or json", c.Log.Format)
	}
	switch strings.ToLower(c.Log.Level) {
	case "trace", "debug", "info", "warn", "error":
	default:
		bad("log.level", "invalid value %q: use trace, debug, info, warn or error", c.Log.Level)
	}
	return errors.Join(errs...)
}
