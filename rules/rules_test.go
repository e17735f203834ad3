package rules_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/falco-k8s/falco-k8s/engine"
	"github.com/falco-k8s/falco-k8s/engine/k8saudit"
	"github.com/falco-k8s/falco-k8s/rules"

	"github.com/falco-k8s/falco-k8s/internal/testshared"
)

// apiserverBatches and upstreamRules are under ../shared (internal/testshared).
var (
	apiserverBatches = []string{"testdata", "apiserver-1.31", "audit-batches.jsonl"}
	upstreamRules    = []string{"testdata", "upstream", "k8s_audit_rules.latest.yaml"}
)

const exampleEvents = "../examples/audit-events.jsonl"

// load compiles the built-in ruleset and fails the test on any error or warning.
func load(t *testing.T) *engine.Ruleset {
	t.Helper()
	rs, results, err := engine.Load([]engine.File{{Name: rules.DefaultName, Content: rules.Default()}}, engine.DefaultOptions())
	for _, r := range results {
		for _, d := range r.Errors {
			t.Errorf("error: %s", d.FalcoVerbose())
		}
		// No warning is expected: every list and macro is used, no deprecated or <NA> construct.
		for _, d := range r.Warnings {
			t.Errorf("warning: %s", d.FalcoVerbose())
		}
	}
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	return rs
}

func TestDefaultLoads(t *testing.T) {
	rs := load(t)
	if n := len(rs.Rules()); n < 25 {
		t.Fatalf("only %d rules", n)
	}
	if len(rs.ActiveRules()) != len(rs.Rules()) {
		t.Errorf("%d of %d rules active; all should be enabled", len(rs.ActiveRules()), len(rs.Rules()))
	}
	if rs.RequiredEngineVersion == "" || len(rs.PluginRequirements) != 2 {
		t.Errorf("required versions not declared: engine %q, plugins %v", rs.RequiredEngineVersion, rs.PluginRequirements)
	}
}

func TestDefaultIsEmbeddedFileAndCopied(t *testing.T) {
	disk, err := os.ReadFile("k8s_audit_default.yaml")
	if err != nil {
		t.Fatal(err)
	}
	a := rules.Default()
	if !bytes.Equal(a, disk) {
		t.Fatal("Default() differs from k8s_audit_default.yaml")
	}
	a[0] ^= 0xff
	if !bytes.Equal(rules.Default(), disk) {
		t.Fatal("Default() returns shared memory: a caller changed the built-in ruleset")
	}
	if !strings.HasPrefix(rules.DefaultName, "builtin:") || !strings.HasSuffix(rules.DefaultName, ".yaml") {
		t.Errorf("DefaultName %q", rules.DefaultName)
	}
}

// TestRuleConventions checks what every rule must carry: source, tags (k8s and MITRE ATT&CK),
// a real description, and outputs identifying who did what from where.
func TestRuleConventions(t *testing.T) {
	rs := load(t)
	for _, r := range rs.Rules() {
		t.Run(r.Name, func(t *testing.T) {
			if r.Source != engine.SourceK8sAudit {
				t.Errorf("source %q", r.Source)
			}
			if !slices.Contains(r.Tags, "k8s") {
				t.Errorf("tags %v lack k8s", r.Tags)
			}
			var tactic, technique bool
			for _, tag := range r.Tags {
				tactic = tactic || strings.HasPrefix(tag, "mitre_")
				technique = technique || (len(tag) >= 5 && tag[0] == 'T' && tag[1] >= '0' && tag[1] <= '9')
			}
			if !tactic || !technique {
				t.Errorf("tags %v need a mitre_ tactic and a T technique", r.Tags)
			}
			if len(r.Desc) < 60 {
				t.Errorf("desc too short: %q", r.Desc)
			}
			for _, f := range []string{"%ka.user.name", "%ka.verb", "%ka.useragent", "%jevt.value[/sourceIPs/0]", "%ka.response.code"} {
				if !strings.Contains(r.Output, f) {
					t.Errorf("output lacks %s", f)
				}
			}
			if !strings.Contains(r.Output, "%ka.target.") {
				t.Errorf("output lacks the target")
			}
			if strings.Contains(r.Output, "%ka.sourceips") {
				t.Errorf("output uses the broken ka.sourceips")
			}
			if strings.Contains(r.Condition, "pod_create") && !strings.Contains(r.Output, "%ka.req.pod.containers.image") {
				t.Errorf("pod rule output lacks the images")
			}
		})
	}
}

// ---------------------------------------------------------------------------------------------
// Crafted audit events
// ---------------------------------------------------------------------------------------------

// ev describes one audit.k8s.io/v1 Event; zero fields get realistic defaults.
type ev struct {
	stage      string // default ResponseComplete
	verb       string
	user       string // default alice
	groups     []string
	resource   string
	sub        string
	apiGroup   string // "" = core
	ns, name   string
	uri        string // default derived from objectRef
	code       int    // default 201 for create, 200 otherwise
	decision   string // default allow
	ua         string // default kubectl
	req, resp  string // requestObject / responseObject JSON
	noObjName  bool   // objectRef without name (generateName creates, lists)
	clusterURI bool   // list across all namespaces
}

var auditSeq int

func (e ev) JSON() []byte {
	auditSeq++
	if e.stage == "" {
		e.stage = "ResponseComplete"
	}
	if e.user == "" {
		e.user = "alice@example.com"
	}
	if e.groups == nil {
		switch {
		case e.user == "system:anonymous":
			e.groups = []string{"system:unauthenticated"}
		case strings.HasPrefix(e.user, "system:serviceaccount:"):
			ns := strings.Split(e.user, ":")[2]
			e.groups = []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"}
		case strings.HasPrefix(e.user, "system:node:"):
			e.groups = []string{"system:nodes", "system:authenticated"}
		default:
			e.groups = []string{"platform-admins", "system:authenticated"}
		}
	}
	if e.code == 0 {
		e.code = 200
		if e.verb == "create" {
			e.code = 201
		}
		if e.stage == "ResponseStarted" {
			e.code = 101
		}
	}
	if e.decision == "" {
		e.decision = "allow"
	}
	if e.ua == "" {
		e.ua = "kubectl/v1.31.4 (linux/amd64) kubernetes/a78aa47"
	}
	version := "v1"
	if e.uri == "" {
		p := "/api/v1"
		if e.apiGroup != "" {
			p = "/apis/" + e.apiGroup + "/" + version
		}
		if e.ns != "" && !e.clusterURI {
			p += "/namespaces/" + e.ns
		}
		p += "/" + e.resource
		if e.name != "" && (e.verb != "create" || e.sub != "") {
			p += "/" + e.name
		}
		if e.sub != "" {
			p += "/" + e.sub
		}
		e.uri = p
	}
	obj := map[string]any{"resource": e.resource, "apiVersion": version}
	if e.apiGroup != "" {
		obj["apiGroup"] = e.apiGroup
	}
	if e.ns != "" && !e.clusterURI {
		obj["namespace"] = e.ns
	}
	if e.name != "" && !e.noObjName {
		obj["name"] = e.name
	}
	if e.sub != "" {
		obj["subresource"] = e.sub
	}
	level := "Metadata"
	m := map[string]any{
		"kind": "Event", "apiVersion": "audit.k8s.io/v1",
		"auditID":    fmt.Sprintf("6f1c2a7e-0000-4000-8000-%012d", auditSeq),
		"stage":      e.stage,
		"requestURI": e.uri,
		"verb":       e.verb,
		"user":       map[string]any{"username": e.user, "groups": e.groups},
		"sourceIPs":  []string{"203.0.113.7"},
		"userAgent":  e.ua,
		"objectRef":  obj,
		"responseStatus": map[string]any{
			"metadata": map[string]any{}, "code": e.code,
		},
		"requestReceivedTimestamp": "2026-11-22T12:40:38.100970Z",
		"stageTimestamp":           "2026-11-22T12:40:38.113640Z",
		"annotations": map[string]any{
			"authorization.k8s.io/decision": e.decision,
			"authorization.k8s.io/reason":   "",
		},
	}
	if e.req != "" {
		level = "Request"
		m["requestObject"] = json.RawMessage(e.req)
	}
	if e.resp != "" {
		level = "RequestResponse"
		m["responseObject"] = json.RawMessage(e.resp)
	}
	m["level"] = level
	b, err := json.Marshal(m)
	if err != nil {
		panic(fmt.Sprintf("bad crafted event %+v: %v", e, err))
	}
	return b
}

// pod returns a pod create event. spec is the JSON of the pod's spec.
func pod(user, ns, name, spec string) ev {
	return ev{
		verb: "create", user: user, resource: "pods", ns: ns, name: name,
		req:  fmt.Sprintf(`{"kind":"Pod","apiVersion":"v1","metadata":{"name":%q,"namespace":%q,"creationTimestamp":null},"spec":%s,"status":{}}`, name, ns, spec),
		resp: fmt.Sprintf(`{"kind":"Pod","apiVersion":"v1","metadata":{"name":%q,"namespace":%q,"uid":"884a80e5-fb89-4cf5-be76-4bce74f68420"},"spec":%s,"status":{"phase":"Pending"}}`, name, ns, spec),
	}
}

// ctrPod is a pod spec with containers (JSON objects) and extra spec members (",..." or "").
func ctrPod(extra string, containers ...string) string {
	return `{"containers":[` + strings.Join(containers, ",") + `],"restartPolicy":"Always","dnsPolicy":"ClusterFirst","serviceAccountName":"default"` + extra + `}`
}

func ctr(name, image, securityContext string) string {
	c := fmt.Sprintf(`{"name":%q,"image":%q,"resources":{},"terminationMessagePath":"/dev/termination-log","imagePullPolicy":"IfNotPresent"`, name, image)
	if securityContext != "" {
		c += `,"securityContext":` + securityContext
	}
	return c + "}"
}

func hostPathPod(image string, paths ...string) string {
	var vols, mounts []string
	for i, p := range paths {
		vols = append(vols, fmt.Sprintf(`{"name":"v%d","hostPath":{"path":%q,"type":""}}`, i, p))
		mounts = append(mounts, fmt.Sprintf(`{"name":"v%d","mountPath":"/host%d"}`, i, i))
	}
	c := fmt.Sprintf(`{"name":"c","image":%q,"volumeMounts":[%s]}`, image, strings.Join(mounts, ","))
	return ctrPod(`,"volumes":[`+strings.Join(vols, ",")+`]`, c)
}

func ephemeral(user, ns, podName, securityContext string) ev {
	c := `{"name":"debugger-x7k2p","image":"nicolaka/netshoot","stdin":true,"tty":true,"targetContainerName":"app"`
	if securityContext != "" {
		c += `,"securityContext":` + securityContext
	}
	c += "}"
	return ev{
		verb: "patch", user: user, resource: "pods", sub: "ephemeralcontainers", ns: ns, name: podName,
		req: `{"spec":{"$setElementOrder/ephemeralContainers":[{"name":"debugger-x7k2p"}],"ephemeralContainers":[` + c + `]}}`,
	}
}

func session(user, ns, podName, sub, query string) ev {
	return ev{
		stage: "ResponseStarted", verb: "create", user: user, resource: "pods", sub: sub, ns: ns, name: podName,
		uri: "/api/v1/namespaces/" + ns + "/pods/" + podName + "/" + sub + "?" + query,
	}
}

func nodeProxy(stage, verb, user, node, path string) ev {
	return ev{
		stage: stage, verb: verb, user: user, resource: "nodes", sub: "proxy", name: node,
		uri: "/api/v1/nodes/" + node + "/proxy/" + path, ua: "curl/8.5.0",
	}
}

func role(kind, user, ns, name, rulesJSON string) ev {
	resource := map[string]string{"Role": "roles", "ClusterRole": "clusterroles"}[kind]
	meta := fmt.Sprintf(`{"name":%q}`, name)
	if ns != "" {
		meta = fmt.Sprintf(`{"name":%q,"namespace":%q}`, name, ns)
	}
	return ev{
		verb: "create", user: user, resource: resource, apiGroup: "rbac.authorization.k8s.io", ns: ns, name: name,
		req: fmt.Sprintf(`{"kind":%q,"apiVersion":"rbac.authorization.k8s.io/v1","metadata":%s,"rules":%s}`, kind, meta, rulesJSON),
	}
}

func binding(kind, user, ns, name, roleKind, roleName, subjects string) ev {
	resource := map[string]string{"RoleBinding": "rolebindings", "ClusterRoleBinding": "clusterrolebindings"}[kind]
	meta := fmt.Sprintf(`{"name":%q}`, name)
	if ns != "" {
		meta = fmt.Sprintf(`{"name":%q,"namespace":%q}`, name, ns)
	}
	return ev{
		verb: "create", user: user, resource: resource, apiGroup: "rbac.authorization.k8s.io", ns: ns, name: name,
		req: fmt.Sprintf(`{"kind":%q,"apiVersion":"rbac.authorization.k8s.io/v1","metadata":%s,"subjects":%s,"roleRef":{"apiGroup":"rbac.authorization.k8s.io","kind":%q,"name":%q}}`,
			kind, meta, subjects, roleKind, roleName),
	}
}

func subject(kind, name string) string {
	if kind == "ServiceAccount" {
		ns, n, _ := strings.Cut(name, "/")
		return fmt.Sprintf(`{"kind":"ServiceAccount","name":%q,"namespace":%q}`, n, ns)
	}
	return fmt.Sprintf(`{"kind":%q,"apiGroup":"rbac.authorization.k8s.io","name":%q}`, kind, name)
}

func csrApproval(user, condition, signer string) ev {
	return ev{
		verb: "update", user: user, resource: "certificatesigningrequests", sub: "approval",
		apiGroup: "certificates.k8s.io", name: "csr-ops-backup",
		req: fmt.Sprintf(`{"kind":"CertificateSigningRequest","apiVersion":"certificates.k8s.io/v1","metadata":{"name":"csr-ops-backup"},"spec":{"request":"LS0tLS1CRUdJTi...","signerName":%q,"usages":["client auth"],"username":"mallory","groups":["system:authenticated"]},"status":{"conditions":[{"type":%q,"status":"True","reason":"KubectlApprove","message":"This CSR was approved by kubectl certificate approve.","lastUpdateTime":null,"lastTransitionTime":null}]}}`,
			signer, condition),
	}
}

func webhookCfg(verb, user, kind, name string) ev {
	resource := strings.ToLower(kind)
	if strings.HasSuffix(resource, "y") {
		resource = strings.TrimSuffix(resource, "y") + "ie"
	}
	resource += "s"
	e := ev{verb: verb, user: user, resource: resource, apiGroup: "admissionregistration.k8s.io", name: name}
	switch verb {
	case "create":
		e.req = fmt.Sprintf(`{"kind":%q,"apiVersion":"admissionregistration.k8s.io/v1","metadata":{"name":%q},"webhooks":[{"name":"inject.example.com","clientConfig":{"url":"https://203.0.113.50/mutate"},"rules":[{"operations":["CREATE"],"apiGroups":[""],"apiVersions":["v1"],"resources":["pods"]}],"sideEffects":"None","admissionReviewVersions":["v1"]}]}`, kind, name)
	case "patch":
		e.req = `{"webhooks":[{"name":"webhook.cert-manager.io","clientConfig":{"caBundle":"LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0t"}}]}`
	}
	return e
}

func configmap(verb, user, ns, name, data string) ev {
	return ev{
		verb: verb, user: user, resource: "configmaps", ns: ns, name: name,
		req: fmt.Sprintf(`{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":%q,"namespace":%q},"data":%s}`, name, ns, data),
	}
}

func service(verb, user, ns, name, typ string) ev {
	return ev{
		verb: verb, user: user, resource: "services", ns: ns, name: name,
		req: fmt.Sprintf(`{"kind":"Service","apiVersion":"v1","metadata":{"name":%q,"namespace":%q},"spec":{"type":%q,"selector":{"app":%q},"ports":[{"protocol":"TCP","port":80,"targetPort":8080}]}}`, name, ns, typ, name),
	}
}

const (
	sa         = "system:serviceaccount:default:compromised"
	rsCtrl     = "system:serviceaccount:kube-system:replicaset-controller"
	dsCtrl     = "system:serviceaccount:kube-system:daemon-set-controller"
	kcm        = "system:kube-controller-manager"
	apiserver  = "system:apiserver"
	prometheus = "system:serviceaccount:monitoring:prometheus-k8s"
)

var (
	plainPod = ctrPod("", ctr("app", "nginx:1.27", ""))
	privPod  = ctrPod("", ctr("app", "nginx:1.27", `{"privileged":true}`))
)

type ruleCase struct {
	name string
	rule string // the rule under test
	ev   ev
	// fire: the rule must match and be the first (highest-precedence) match, i.e. the one
	// Falco alerts with rule_matching: first. Otherwise the rule must not match at all, and
	// with quiet no rule may match.
	fire  bool
	quiet bool
}

func mod(e ev, f func(*ev)) ev { f(&e); return e }

func ruleCases() []ruleCase {
	const (
		rPriv      = "Privileged Container Started in Pod"
		rPrivEph   = "Privileged Ephemeral Container Added to Pod"
		rMount     = "Pod Mounts Sensitive Host Path"
		rCaps      = "Container With Dangerous Capabilities"
		rPID       = "Pod Uses Host PID Namespace"
		rIPC       = "Pod Uses Host IPC Namespace"
		rNet       = "Pod Uses Host Network"
		rKubePod   = "Pod Created Directly in Kube Namespace"
		rEph       = "Ephemeral Container Added to Pod"
		rExec      = "Exec or Attach Into Pod"
		rPF        = "Port-Forward Into Pod"
		rKubelet   = "Kubelet Command Through Node Proxy"
		rProxy     = "Node Proxy Access by User"
		rAnon      = "Anonymous Request Authorized"
		rAdmin     = "Binding to Cluster-Admin Role"
		rEveryone  = "Binding Grants Access to Anonymous or All Users"
		rWildcard  = "Role With Wildcard Permissions"
		rExecRole  = "Role Grants Pod Exec or Node Proxy"
		rToken     = "Service Account Token Requested"
		rCSR       = "Certificate Signing Request Approved"
		rAdmDel    = "Admission Controller Configuration Deleted"
		rAdmChg    = "Admission Controller Configuration Changed"
		rEvents    = "Kubernetes Events Deleted by User"
		rSecret    = "Secret Read by User"
		rSecretAll = "Secrets Listed Cluster-Wide by Service Account"
		rCM        = "ConfigMap With Credentials"
		rSvc       = "Service Exposed With NodePort or LoadBalancer"
		rKubeSA    = "Service Account Added to Kube Namespace"
		rKubeNS    = "Kube Namespace Changed by User"
	)
	secretGet := ev{verb: "get", resource: "secrets", ns: "payments", name: "db-credentials"}
	var cs []ruleCase
	add := func(rule, name string, fire, quiet bool, e ev) {
		cs = append(cs, ruleCase{name: name, rule: rule, ev: e, fire: fire, quiet: quiet})
	}
	yes := func(rule, name string, e ev) { add(rule, name, true, false, e) }
	no := func(rule, name string, e ev) { add(rule, name, false, false, e) }
	quiet := func(rule, name string, e ev) { add(rule, name, false, true, e) }

	// Privileged containers.
	yes(rPriv, "privileged container", pod("alice", "default", "evil", privPod))
	yes(rPriv, "privileged second container", pod("alice", "default", "two", ctrPod("", ctr("app", "nginx", ""), ctr("side", "busybox", `{"privileged":true}`))))
	yes(rPriv, "privileged init container only", pod("alice", "default", "init", ctrPod(`,"initContainers":[`+ctr("setup", "busybox", `{"privileged":true,"runAsUser":0}`)+`]`, ctr("app", "nginx", ""))))
	yes(rPriv, "privileged pod made by a controller", mod(pod(rsCtrl, "default", "web-7d5b5dd9cf-t8ngb", privPod), func(e *ev) { e.noObjName = true }))
	yes(rPriv, "privileged pod in kube-system by user", pod("alice", "kube-system", "kube-proxy-x", privPod))
	quiet(rPriv, "same pod unprivileged", pod("alice", "default", "ok", ctrPod("", ctr("app", "nginx:1.27", `{"privileged":false,"allowPrivilegeEscalation":false}`))))
	quiet(rPriv, "plain pod", pod("alice", "default", "plain", plainPod))
	quiet(rPriv, "trusted CNI image", pod(dsCtrl, "kube-system", "calico-node-abcde", ctrPod("", ctr("calico-node", "docker.io/calico/node:v3.28.0", `{"privileged":true}`))))
	quiet(rPriv, "server-side dry run", mod(pod("alice", "default", "evil", privPod), func(e *ev) {
		e.uri = "/api/v1/namespaces/default/pods?dryRun=All&fieldManager=kubectl-client-side-apply"
	}))
	quiet(rPriv, "privileged:true only inside an env string", pod("alice", "default", "env", ctrPod(`,"initContainers":[{"name":"setup","image":"busybox","env":[{"name":"NOTE","value":"\"privileged\":true"}]}]`, ctr("app", "nginx", ""))))

	// Ephemeral containers.
	yes(rPrivEph, "kubectl debug --profile=sysadmin", ephemeral("alice", "payments", "api-0", `{"privileged":true}`))
	no(rPrivEph, "unprivileged debug container", ephemeral("alice", "payments", "api-0", ""))
	yes(rEph, "kubectl debug", ephemeral("alice", "payments", "api-0", ""))
	yes(rEph, "kubectl debug by a service account", ephemeral(sa, "payments", "api-0", `{"runAsNonRoot":true}`))
	quiet(rEph, "reading ephemeral containers", ev{verb: "get", resource: "pods", sub: "ephemeralcontainers", ns: "payments", name: "api-0"})
	quiet(rEph, "debug container denied", mod(ephemeral("alice", "payments", "api-0", ""), func(e *ev) { e.stage = "RequestReceived" }))

	// Sensitive host paths.
	for _, p := range []string{"/", "/var/run/docker.sock", "/run/containerd/containerd.sock", "/etc", "/proc/1/root", "//root/.ssh", "/etc/kubernetes/pki/", "/var/lib/kubelet/pki/kubelet-client-current.pem", "/./var/lib/etcd", "/var/run/crio/crio.sock", "/home/admin"} {
		yes(rMount, "hostPath "+p, pod("alice", "default", "mnt", hostPathPod("busybox", "/tmp/cache", p)))
	}
	for _, p := range []string{"/etc/localtime", "/var/log", "/data", "/etcd-data", "/rootfs", "/etc/ssl/certs", "/var/lib/kubelet/plugins_registry", "/procedures", "/mnt/disks/ssd0"} {
		quiet(rMount, "benign hostPath "+p, pod("alice", "default", "mnt", hostPathPod("busybox", p)))
	}
	yes(rMount, "hostPath type before path, runtime state subtree", pod("alice", "default", "mnt", ctrPod(`,"volumes":[{"name":"rt","hostPath":{"type":"Directory","path":"/run/containerd/io.containerd.runtime.v2.task"}}]`, ctr("app", "busybox", ""))))
	quiet(rMount, "node-exporter mounting /proc and /", pod(dsCtrl, "monitoring", "node-exporter-x", hostPathPod("quay.io/prometheus/node-exporter:v1.8.2", "/proc", "/sys", "/")))
	quiet(rMount, "emptyDir and configMap volumes", pod("alice", "default", "vols", ctrPod(`,"volumes":[{"name":"a","emptyDir":{}},{"name":"b","configMap":{"name":"root"}}]`, ctr("app", "nginx", ""))))

	// Capabilities.
	yes(rCaps, "SYS_ADMIN", pod("alice", "default", "caps", ctrPod("", ctr("app", "nginx", `{"capabilities":{"add":["SYS_ADMIN"]}}`))))
	yes(rCaps, "CAP_SYS_PTRACE among others", pod("alice", "default", "caps", ctrPod("", ctr("app", "nginx", `{"capabilities":{"drop":["ALL"],"add":["NET_BIND_SERVICE","CAP_SYS_PTRACE"]}}`))))
	yes(rCaps, "ALL in an init container", pod("alice", "default", "caps", ctrPod(`,"initContainers":[`+ctr("init", "busybox", `{"capabilities":{"add":["ALL"]}}`)+`]`, ctr("app", "nginx", ""))))
	yes(rCaps, "NET_ADMIN in a debug container", ephemeral("alice", "payments", "api-0", `{"capabilities":{"add":["NET_ADMIN","NET_RAW"]}}`))
	quiet(rCaps, "NET_BIND_SERVICE only", pod("alice", "default", "caps", ctrPod("", ctr("app", "nginx", `{"capabilities":{"add":["NET_BIND_SERVICE"],"drop":["ALL"]}}`))))
	quiet(rCaps, "dropping SYS_ADMIN", pod("alice", "default", "caps", ctrPod("", ctr("app", "nginx", `{"capabilities":{"drop":["SYS_ADMIN","NET_RAW"]}}`))))
	quiet(rCaps, "capability name in an env value", pod("alice", "default", "caps", ctrPod("", `{"name":"app","image":"nginx","env":[{"name":"add","value":"SYS_ADMIN"}]}`)))

	// Host namespaces.
	yes(rPID, "hostPID", pod("alice", "default", "pid", ctrPod(`,"hostPID":true`, ctr("app", "busybox", ""))))
	quiet(rPID, "hostPID false", pod("alice", "default", "pid", ctrPod(`,"hostPID":false`, ctr("app", "busybox", ""))))
	no(rPID, "node-exporter with hostPID", pod(dsCtrl, "monitoring", "node-exporter-x", ctrPod(`,"hostPID":true,"hostNetwork":true`, ctr("ne", "quay.io/prometheus/node-exporter:v1.8.2", ""))))
	yes(rIPC, "hostIPC", pod("alice", "default", "ipc", ctrPod(`,"hostIPC":true`, ctr("app", "busybox", ""))))
	quiet(rIPC, "hostIPC false", pod("alice", "default", "ipc", ctrPod(`,"hostIPC":false`, ctr("app", "busybox", ""))))
	yes(rNet, "hostNetwork", pod("alice", "default", "net", ctrPod(`,"hostNetwork":true`, ctr("app", "busybox", ""))))
	quiet(rNet, "kube-proxy from its DaemonSet", pod(dsCtrl, "kube-system", "kube-proxy-7xk2p", ctrPod(`,"hostNetwork":true`, ctr("kube-proxy", "registry.k8s.io/kube-proxy:v1.31.4", ""))))
	quiet(rNet, "hostNetwork false", pod("alice", "default", "net", ctrPod(`,"hostNetwork":false`, ctr("app", "busybox", ""))))

	// Pods in kube namespaces.
	yes(rKubePod, "user pod in kube-system", pod("alice", "kube-system", "kube-dns-helper", plainPod))
	yes(rKubePod, "foreign service account pod in kube-system", pod(sa, "kube-system", "coredns-helper", plainPod))
	quiet(rKubePod, "ReplicaSet pod in kube-system", mod(pod(rsCtrl, "kube-system", "coredns-6f6b679f8f-abcde", ctrPod("", ctr("coredns", "registry.k8s.io/coredns/coredns:v1.11.3", ""))), func(e *ev) { e.noObjName = true }))
	quiet(rKubePod, "mirror pod of a static pod", pod("system:node:cp-1", "kube-system", "etcd-cp-1", ctrPod("", ctr("etcd", "registry.k8s.io/etcd:3.5.15-0", ""))))
	no(rKubePod, "user pod in default", pod("alice", "default", "kube-dns-helper", plainPod))

	// Sessions.
	yes(rExec, "kubectl exec (SPDY)", session("alice", "payments", "api-0", "exec", "command=sh&command=-c&command=cat+%2Fvar%2Frun%2Fsecrets%2Fkubernetes.io%2Fserviceaccount%2Ftoken&container=app&stdin=true&stdout=true&tty=true"))
	yes(rExec, "kubectl attach (websocket)", mod(session("alice", "payments", "api-0", "attach", "container=app&stdin=true&stdout=true"), func(e *ev) { e.verb = "get" }))
	quiet(rExec, "end of the same exec session", mod(session("alice", "payments", "api-0", "exec", "command=sh&container=app"), func(e *ev) { e.stage = "ResponseComplete" }))
	quiet(rExec, "kubectl logs", ev{verb: "get", resource: "pods", sub: "log", ns: "payments", name: "api-0"})
	yes(rPF, "kubectl port-forward", session("alice", "payments", "postgres-0", "portforward", "ports=5432"))
	quiet(rPF, "end of the port-forward", mod(session("alice", "payments", "postgres-0", "portforward", "ports=5432"), func(e *ev) { e.stage = "ResponseComplete" }))

	// Node proxy.
	yes(rKubelet, "kubelet /run through nodes/proxy", nodeProxy("ResponseStarted", "create", sa, "node-1", "run/kube-system/kube-proxy-7xk2p/kube-proxy?cmd=id"))
	yes(rKubelet, "kubelet /exec by a user", nodeProxy("ResponseStarted", "get", "alice", "node-1", "exec/payments/api-0/app?command=sh&input=1&output=1&tty=1"))
	quiet(rKubelet, "Prometheus scraping cAdvisor", nodeProxy("ResponseComplete", "get", prometheus, "node-1", "metrics/cadvisor"))
	quiet(rKubelet, "Prometheus scraping cAdvisor (started)", nodeProxy("ResponseStarted", "get", prometheus, "node-1", "metrics/cadvisor"))
	yes(rProxy, "user lists pods through the kubelet", nodeProxy("ResponseComplete", "get", "alice", "node-1", "pods"))
	no(rProxy, "end of a user's kubelet exec", nodeProxy("ResponseComplete", "get", "alice", "node-1", "exec/payments/api-0/app?command=sh"))

	// Anonymous access.
	yes(rAnon, "anonymous lists pods", ev{verb: "list", user: "system:anonymous", resource: "pods", ns: "default", ua: "python-requests/2.32.3"})
	yes(rAnon, "unauthenticated group creates", ev{verb: "create", user: "system:anonymous", groups: []string{"system:unauthenticated"}, resource: "namespaces", name: "x",
		req: `{"kind":"Namespace","apiVersion":"v1","metadata":{"name":"x"}}`})
	quiet(rAnon, "anonymous /healthz", ev{verb: "get", user: "system:anonymous", uri: "/healthz"})
	quiet(rAnon, "anonymous /readyz?verbose", ev{verb: "get", user: "system:anonymous", uri: "/readyz?verbose"})
	quiet(rAnon, "anonymous /livez/etcd", ev{verb: "get", user: "system:anonymous", uri: "/livez/etcd"})
	quiet(rAnon, "anonymous OIDC discovery", ev{verb: "get", user: "system:anonymous", uri: "/.well-known/openid-configuration"})
	quiet(rAnon, "anonymous request forbidden", ev{verb: "list", user: "system:anonymous", resource: "secrets", ns: "default", code: 403, decision: "forbid"})

	// RBAC bindings.
	yes(rAdmin, "ClusterRoleBinding to cluster-admin", binding("ClusterRoleBinding", "alice", "", "ops-break-glass", "ClusterRole", "cluster-admin", "["+subject("User", "mallory@example.com")+"]"))
	yes(rAdmin, "RoleBinding to cluster-admin by a service account", binding("RoleBinding", sa, "payments", "sa-admin", "ClusterRole", "cluster-admin", "["+subject("ServiceAccount", "default/compromised")+"]"))
	yes(rAdmin, "cluster-admin to anonymous", binding("ClusterRoleBinding", "alice", "", "oops", "ClusterRole", "cluster-admin", "["+subject("User", "system:anonymous")+"]"))
	quiet(rAdmin, "binding to view", binding("RoleBinding", "alice", "payments", "devs-view", "ClusterRole", "view", "["+subject("Group", "devs")+"]"))
	quiet(rAdmin, "apiserver bootstrap binding", binding("ClusterRoleBinding", apiserver, "", "cluster-admin", "ClusterRole", "cluster-admin", "["+subject("Group", "system:masters")+"]"))
	yes(rEveryone, "view to system:unauthenticated", binding("ClusterRoleBinding", "alice", "", "public-view", "ClusterRole", "view", "["+subject("Group", "devs")+","+subject("Group", "system:unauthenticated")+"]"))
	yes(rEveryone, "edit to all authenticated users", binding("RoleBinding", "alice", "payments", "everyone-edit", "ClusterRole", "edit", "["+subject("Group", "system:authenticated")+"]"))
	quiet(rEveryone, "apiserver bootstrap public-info-viewer", binding("ClusterRoleBinding", apiserver, "", "system:public-info-viewer", "ClusterRole", "system:public-info-viewer", "["+subject("Group", "system:authenticated")+","+subject("Group", "system:unauthenticated")+"]"))
	no(rEveryone, "binding to a named group", binding("ClusterRoleBinding", "alice", "", "auditors", "ClusterRole", "view", "["+subject("Group", "system-auditors")+"]"))

	// RBAC roles.
	yes(rWildcard, "ClusterRole with * verbs", role("ClusterRole", "alice", "", "ops-all", `[{"apiGroups":[""],"resources":["pods"],"verbs":["*"]}]`))
	yes(rWildcard, "Role with * resources", role("Role", sa, "payments", "all-in-ns", `[{"apiGroups":["","apps"],"resources":["*"],"verbs":["get","list"]}]`))
	quiet(rWildcard, "read-only ClusterRole", role("ClusterRole", "alice", "", "pod-reader", `[{"apiGroups":[""],"resources":["pods","pods/log"],"verbs":["get","list","watch"]}]`))
	quiet(rWildcard, "apiserver reconciling cluster-admin", role("ClusterRole", apiserver, "", "cluster-admin", `[{"apiGroups":["*"],"resources":["*"],"verbs":["*"]},{"nonResourceURLs":["*"],"verbs":["*"]}]`))
	yes(rExecRole, "ClusterRole with pods/exec", role("ClusterRole", "alice", "", "debugger", `[{"apiGroups":[""],"resources":["pods"],"verbs":["get","list"]},{"apiGroups":[""],"resources":["pods/exec"],"verbs":["create","get"]}]`))
	yes(rExecRole, "Role with nodes/proxy", role("ClusterRole", sa, "", "kubelet-api", `[{"apiGroups":[""],"resources":["nodes/proxy"],"verbs":["get"]}]`))
	quiet(rExecRole, "pods/log reader", role("ClusterRole", "alice", "", "log-reader", `[{"apiGroups":[""],"resources":["pods/log"],"verbs":["get"]}]`))
	quiet(rExecRole, "aggregation controller updating admin", mod(role("ClusterRole", "system:serviceaccount:kube-system:clusterrole-aggregation-controller", "", "admin", `[{"apiGroups":[""],"resources":["pods/attach","pods/exec","pods/portforward","pods/proxy"],"verbs":["create","delete","get","list","patch","update","watch"]}]`), func(e *ev) { e.verb = "update" }))

	// Token requests and certificates.
	tokenReq := func(user, ns, name string) ev {
		return ev{verb: "create", user: user, resource: "serviceaccounts", sub: "token", ns: ns, name: name,
			req: `{"kind":"TokenRequest","apiVersion":"authentication.k8s.io/v1","metadata":{"creationTimestamp":null},"spec":{"audiences":null,"expirationSeconds":315360000,"boundObjectRef":null},"status":{"token":"","expirationTimestamp":null}}`}
	}
	yes(rToken, "kubectl create token for a kube-system SA", tokenReq("alice", "kube-system", "clusterrole-aggregation-controller"))
	yes(rToken, "service account minting another's token", tokenReq(sa, "payments", "deployer"))
	quiet(rToken, "kubelet projecting a pod token", tokenReq("system:node:node-1", "payments", "default"))
	quiet(rToken, "controller manager", tokenReq(kcm, "kube-system", "replicaset-controller"))
	yes(rCSR, "user approves a client certificate", csrApproval("alice", "Approved", "kubernetes.io/kube-apiserver-client"))
	quiet(rCSR, "user denies a CSR", csrApproval("alice", "Denied", "kubernetes.io/kube-apiserver-client"))
	quiet(rCSR, "csrapproving controller", csrApproval("system:serviceaccount:kube-system:certificate-controller", "Approved", "kubernetes.io/kube-apiserver-client-kubelet"))

	// Admission control and events.
	yes(rAdmDel, "user deletes a validating webhook", webhookCfg("delete", "alice", "ValidatingWebhookConfiguration", "gatekeeper-validating-webhook-configuration"))
	yes(rAdmDel, "service account deletes an admission policy", webhookCfg("delete", sa, "ValidatingAdmissionPolicy", "deny-privileged"))
	quiet(rAdmDel, "garbage collector deletes a webhook", webhookCfg("delete", "system:serviceaccount:kube-system:generic-garbage-collector", "MutatingWebhookConfiguration", "old-injector"))
	yes(rAdmChg, "user creates a mutating webhook", webhookCfg("create", "alice", "MutatingWebhookConfiguration", "pod-injector"))
	yes(rAdmChg, "service account creates a mutating webhook", webhookCfg("create", sa, "MutatingWebhookConfiguration", "pod-injector"))
	yes(rAdmChg, "user patches a webhook", webhookCfg("patch", "alice", "ValidatingWebhookConfiguration", "kyverno-resource-validating-webhook-cfg"))
	quiet(rAdmChg, "cainjector patches caBundle", webhookCfg("patch", "system:serviceaccount:cert-manager:cert-manager-cainjector", "ValidatingWebhookConfiguration", "cert-manager-webhook"))
	quiet(rAdmChg, "user reads webhooks", webhookCfg("list", "alice", "MutatingWebhookConfiguration", ""))
	yes(rEvents, "user deletes events", ev{verb: "deletecollection", resource: "events", ns: "payments"})
	quiet(rEvents, "namespace controller deletes events", ev{verb: "deletecollection", user: "system:serviceaccount:kube-system:namespace-controller", resource: "events", ns: "old-team"})
	quiet(rEvents, "user lists events", ev{verb: "list", resource: "events", ns: "payments"})

	// Secrets.
	yes(rSecret, "user gets a secret", secretGet)
	yes(rSecret, "user lists secrets", ev{verb: "list", resource: "secrets", ns: "payments"})
	quiet(rSecret, "service account gets a secret", mod(secretGet, func(e *ev) { e.user = "system:serviceaccount:payments:api" }))
	quiet(rSecret, "user denied", mod(secretGet, func(e *ev) { e.code = 403; e.decision = "forbid" }))
	quiet(rSecret, "helm reads its release", mod(secretGet, func(e *ev) { e.name = "sh.helm.release.v1.payments.v7"; e.ua = "Helm/3.16.2" }))
	quiet(rSecret, "helm lists its releases", ev{verb: "list", resource: "secrets", ns: "payments", ua: "Helm/3.16.2", uri: "/api/v1/namespaces/payments/secrets?labelSelector=owner%3Dhelm"})
	quiet(rSecret, "user creates a secret", mod(secretGet, func(e *ev) { e.verb = "create" }))
	yes(rSecretAll, "service account lists all secrets", ev{verb: "list", user: sa, resource: "secrets", uri: "/api/v1/secrets?limit=500", ua: "kubectl/v1.31.4 (linux/amd64) kubernetes/a78aa47"})
	quiet(rSecretAll, "service account lists its namespace", ev{verb: "list", user: sa, resource: "secrets", ns: "default"})
	quiet(rSecretAll, "garbage collector lists all secrets", ev{verb: "list", user: "system:serviceaccount:kube-system:generic-garbage-collector", resource: "secrets", uri: "/api/v1/secrets?limit=500"})

	// ConfigMaps.
	yes(rCM, "DB_PASSWORD key", configmap("create", "alice", "payments", "api-env", `{"DB_HOST":"db.payments","DB_PASSWORD":"hunter2"}`))
	yes(rCM, "password in an embedded properties file", configmap("update", "alice", "payments", "app-config", `{"application.properties":"spring.datasource.url=jdbc:postgresql://db/app\nspring.datasource.password=s3cr3t\n"}`))
	yes(rCM, "AWS keys", configmap("patch", sa, "payments", "aws", `{"credentials":"[default]\naws_access_key_id = AKIAIOSFODNN7EXAMPLE\naws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n"}`))
	yes(rCM, "PEM private key", configmap("create", "alice", "payments", "tls", `{"key.pem":"-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA...\n-----END RSA PRIVATE KEY-----\n"}`))
	quiet(rCM, "ordinary settings", configmap("create", "alice", "payments", "cm1", `{"a":"b","LOG_LEVEL":"debug"}`))
	quiet(rCM, "password policy settings", configmap("create", "alice", "payments", "auth-settings", `{"password_policy":"strong","min_password_length":"12","docs":"users must rotate their password yearly"}`))
	quiet(rCM, "CA certificate", configmap("create", "alice", "payments", "ca", `{"ca.crt":"-----BEGIN CERTIFICATE-----\nMIIC...\n-----END CERTIFICATE-----\n"}`))

	// Services.
	yes(rSvc, "NodePort service", service("create", "alice", "payments", "api", "NodePort"))
	yes(rSvc, "patched to LoadBalancer", mod(service("patch", "alice", "payments", "postgres", ""), func(e *ev) {
		e.req = `{"spec":{"type":"LoadBalancer"}}`
	}))
	quiet(rSvc, "ClusterIP service", service("create", "alice", "payments", "api", "ClusterIP"))
	quiet(rSvc, "service controller updates status", mod(service("update", "system:serviceaccount:kube-system:service-controller", "payments", "lb", "LoadBalancer"), func(e *ev) { e.sub = "status" }))

	// Kube namespaces.
	yes(rKubeSA, "user creates a service account in kube-system", ev{verb: "create", resource: "serviceaccounts", ns: "kube-system", name: "kube-dns-backup",
		req: `{"kind":"ServiceAccount","apiVersion":"v1","metadata":{"name":"kube-dns-backup","namespace":"kube-system"}}`})
	quiet(rKubeSA, "controller manager creates a controller account", ev{verb: "create", user: kcm, resource: "serviceaccounts", ns: "kube-system", name: "replicaset-controller"})
	quiet(rKubeSA, "user creates a service account in default", ev{verb: "create", resource: "serviceaccounts", ns: "default", name: "builder"})
	yes(rKubeNS, "user patches coredns config", configmap("patch", "alice", "kube-system", "coredns", `{"Corefile":".:53 {\n forward . 203.0.113.53\n}\n"}`))
	yes(rKubeNS, "user deletes kube-public", ev{verb: "delete", resource: "namespaces", ns: "kube-public", name: "kube-public"})
	yes(rKubeNS, "user creates a DaemonSet in kube-system", ev{verb: "create", resource: "daemonsets", apiGroup: "apps", ns: "kube-system", name: "node-helper"})
	quiet(rKubeNS, "user reads kube-system", ev{verb: "list", resource: "pods", ns: "kube-system"})
	quiet(rKubeNS, "end of an exec session in kube-system", mod(session("alice", "kube-system", "etcd-cp-1", "exec", "command=sh"), func(e *ev) { e.stage = "ResponseComplete" }))
	quiet(rKubeNS, "controller updates kube-system", ev{verb: "update", user: "system:serviceaccount:kube-system:endpointslice-controller", resource: "endpointslices", apiGroup: "discovery.k8s.io", ns: "kube-system", name: "kube-dns-x"})
	quiet(rKubeNS, "kubelet renews its lease", ev{verb: "update", user: "system:node:node-1", resource: "leases", apiGroup: "coordination.k8s.io", ns: "kube-node-lease", name: "node-1"})

	return cs
}

// matches evaluates one event against every active rule (rule_matching: all).
func matches(t *testing.T, e *engine.Evaluator, data []byte) []string {
	t.Helper()
	event, err := k8saudit.NewEvent(data)
	if err != nil {
		t.Fatalf("event: %v\n%s", err, data)
	}
	var names []string
	e.Match(event, true, func(r *engine.Rule) { names = append(names, r.Name) })
	return names
}

func TestRules(t *testing.T) {
	rs := load(t)
	e := rs.NewEvaluator()
	fired, missed := map[string]int{}, map[string]int{}
	for _, c := range ruleCases() {
		if rs.Rule(c.rule) == nil {
			t.Errorf("case %q names unknown rule %q", c.name, c.rule)
			continue
		}
		t.Run(c.rule+"/"+c.name, func(t *testing.T) {
			data := c.ev.JSON()
			got := matches(t, e, data)
			switch {
			case c.fire:
				fired[c.rule]++
				if len(got) == 0 || got[0] != c.rule {
					t.Errorf("want first match %q, got %q\n%s", c.rule, got, data)
				}
			case c.quiet:
				missed[c.rule]++
				if len(got) != 0 {
					t.Errorf("want no match, got %q\n%s", got, data)
				}
			default:
				missed[c.rule]++
				if slices.Contains(got, c.rule) {
					t.Errorf("rule %q fired (all matches %q)\n%s", c.rule, got, data)
				}
			}
		})
	}
	for _, r := range rs.Rules() {
		if fired[r.Name] == 0 || missed[r.Name] == 0 {
			t.Errorf("rule %q needs a firing case and a near miss (have %d and %d)", r.Name, fired[r.Name], missed[r.Name])
		}
	}
}

// TestAlertRendering checks that an alert renders every placeholder, in text and JSON.
func TestAlertRendering(t *testing.T) {
	rs := load(t)
	e := rs.NewEvaluator()
	event, err := k8saudit.NewEvent(pod("alice", "default", "evil", privPod).JSON())
	if err != nil {
		t.Fatal(err)
	}
	var alert *engine.Alert
	e.Match(event, false, func(r *engine.Rule) { alert = e.Alert(r, "test-host") })
	if alert == nil {
		t.Fatal("no alert")
	}
	text := alert.Output
	for _, want := range []string{"Critical ", "user=alice ", "verb=create ", "ns=default ", "pod=evil ", "images=(nginx:1.27) ",
		`user_agent="kubectl/v1.31.4 (linux/amd64) kubernetes/a78aa47"`, "src_ip=203.0.113.7"} {
		if !strings.Contains(text, want) {
			t.Errorf("alert lacks %q:\n%s", want, text)
		}
	}
	var j struct {
		Rule         string         `json:"rule"`
		Priority     string         `json:"priority"`
		Source       string         `json:"source"`
		Tags         []string       `json:"tags"`
		OutputFields map[string]any `json:"output_fields"`
	}
	if err := json.Unmarshal(alert.JSON(), &j); err != nil {
		t.Fatalf("alert JSON: %v\n%s", err, alert.JSON())
	}
	if j.Rule != "Privileged Container Started in Pod" || j.Priority != "Critical" || j.Source != "k8s_audit" || !slices.Contains(j.Tags, "T1611") {
		t.Errorf("alert JSON: %+v", j)
	}
	if ip := j.OutputFields["jevt.value[/sourceIPs/0]"]; ip != "203.0.113.7" {
		t.Errorf("source IP field = %v", ip)
	}
}

// decodeFile replays a JSON-lines file of audit payloads through the Decoder.
func decodeFile(t *testing.T, path string, fn func(*k8saudit.Event)) int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dec := k8saudit.Decoder{MaxEventSize: k8saudit.DefaultMaxEventSize, OnDrop: func(err error) { t.Errorf("event dropped: %v", err) }}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 1<<20), 16<<20)
	total := 0
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		n, err := dec.Decode(line, func(ev *k8saudit.Event) error { fn(ev); return nil })
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		total += n
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return total
}

// TestRealApiserverBatches replays what a real kube-apiserver 1.31 posted to its audit webhook.
func TestRealApiserverBatches(t *testing.T) {
	rs := load(t)
	e := rs.NewEvaluator()
	seen := map[string]bool{}
	n := decodeFile(t, testshared.Path(t, apiserverBatches...), func(ev *k8saudit.Event) {
		root := ev.Root()
		name := string(root.GetStringBytes("objectRef", "name"))
		verb := string(root.GetStringBytes("verb"))
		var first string
		e.Match(ev, false, func(r *engine.Rule) { first = r.Name })
		var all []string
		e.Match(ev, true, func(r *engine.Rule) { all = append(all, r.Name) })
		switch {
		case name == "evil" && verb == "create":
			seen[name] = true
			if first != "Privileged Container Started in Pod" {
				t.Errorf("evil: first match %q, want the privileged-pod rule (all: %q)", first, all)
			}
			if !slices.Contains(all, "Pod Uses Host Network") {
				t.Errorf("evil: hostNetwork rule did not match (all: %q)", all)
			}
		case name == "p1" || name == "p2" || name == "p3":
			seen[name] = true
			if len(all) != 0 {
				t.Errorf("plain pod %s fired %q", name, all)
			}
		case len(all) != 0:
			t.Errorf("%s %s fired %q", verb, name, all)
		}
	})
	if n != 6 || len(seen) != 4 {
		t.Errorf("replayed %d events, saw %v", n, seen)
	}
}

// TestExampleEvents keeps examples/audit-events.jsonl (the README demo) meaningful: every line
// is an audit event, there is benign traffic, and the attacks raise the expected alerts.
func TestExampleEvents(t *testing.T) {
	rs := load(t)
	e := rs.NewEvaluator()
	counts := map[string]int{}
	quiet := 0
	n := decodeFile(t, exampleEvents, func(ev *k8saudit.Event) {
		if e.Match(ev, false, func(r *engine.Rule) { counts[r.Name]++ }) == 0 {
			quiet++
		}
	})
	if n < 12 || quiet < 4 || len(counts) < 6 {
		t.Errorf("%d events, %d benign, alerts by rule %v", n, quiet, counts)
	}
	for _, want := range []string{"Privileged Container Started in Pod", "Exec or Attach Into Pod", "Binding to Cluster-Admin Role", "Secret Read by User"} {
		if counts[want] == 0 {
			t.Errorf("example events do not trigger %q (got %v)", want, counts)
		}
	}
}

// TestCoexistsWithUpstream loads the built-in rules together with Falco's upstream k8s audit
// rules: no name is shared, so neither file silently redefines the other's items.
func TestCoexistsWithUpstream(t *testing.T) {
	up := testshared.ReadFile(t, upstreamRules...)
	ours := load(t)
	theirs, _, err := engine.Load([]engine.File{{Name: "k8s_audit_rules.yaml", Content: up}}, engine.DefaultOptions())
	if err != nil {
		t.Fatalf("upstream: %v", err)
	}
	names := func(rs *engine.Ruleset) map[string]bool {
		m := map[string]bool{}
		for _, r := range rs.Rules() {
			m["rule "+r.Name] = true
		}
		for _, x := range rs.Macros {
			m["macro "+x] = true
		}
		for _, x := range rs.Lists {
			m["list "+x] = true
		}
		return m
	}
	upNames := names(theirs)
	for n := range names(ours) {
		if upNames[n] {
			t.Errorf("%s is also defined upstream", n)
		}
	}
	both, results, err := engine.Load([]engine.File{
		{Name: rules.DefaultName, Content: rules.Default()},
		{Name: "k8s_audit_rules.yaml", Content: up},
	}, engine.DefaultOptions())
	if err != nil {
		t.Fatalf("loading both: %v", err)
	}
	for _, r := range results {
		for _, d := range r.Warnings {
			t.Errorf("%s: warning %s", r.Name, d)
		}
	}
	if len(both.Rules()) != len(ours.Rules())+len(theirs.Rules()) {
		t.Errorf("%d rules together, want %d+%d", len(both.Rules()), len(ours.Rules()), len(theirs.Rules()))
	}
}
