package k8saudit

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"
)

const podEvent = `{"kind":"Event","auditID":"a1","stage":"ResponseComplete",
"stageTimestamp":"2024-01-02T03:04:05.123456789Z","verb":"create","userAgent":"kubectl/v1.31",
"requestURI":"/api/v1/namespaces/default/pods?dryRun=All&fieldManager=kubectl%20x&a=1&a=2&plus=a+b&empty=",
"user":{"username":"alice","groups":["g1","g2"]},"impersonatedUser":{"username":"mallory"},
"sourceIPs":["10.0.0.1"],
"annotations":{"authorization.k8s.io/decision":"allow","authorization.k8s.io/reason":"RBAC: allowed",
 "authentication.openshift.io/decision":"allow","authentication.openshift.io/username":"os-user",
 "validation.policy.admission.k8s.io/validation_failure":"[{\"message\":\"no\"}]",
 "pod-security.kubernetes.io/audit-violations":"privileged","cluster_name":"prod"},
"objectRef":{"resource":"pods","namespace":"default","name":"p","apiVersion":"v1"},
"responseStatus":{"metadata":{},"code":201},
"responseObject":{"metadata":{"name":"p-resp"}},
"requestObject":{"kind":"Pod","spec":{
 "containers":[
  {"name":"c1","image":"reg:5000/team/app:1.0","command":["sh","-c","echo hi"],"args":["--x"],
   "ports":[{"containerPort":80},{"containerPort":443,"hostPort":8443}],
   "securityContext":{"privileged":true,"runAsUser":1000,"runAsGroup":10,"capabilities":{"add":["NET_ADMIN","SYS_TIME"]},
    "allowPrivilegeEscalation":false,"procMount":"Default","readOnlyRootFilesystem":true}},
  {"name":"c2","image":"nginx@sha256:abc","runAsUser":7}],
 "initContainers":[{"name":"i1","image":"busybox:1.36","command":["true"],"ports":[{"hostPort":9000,"containerPort":1}],
   "securityContext":{"privileged":false,"capabilities":{"add":["SYS_ADMIN"]}}}],
 "ephemeralContainers":[{"name":"e1","image":"debug","args":["a","b"],"securityContext":{"privileged":true}}],
 "hostNetwork":true,"hostPID":false,
 "securityContext":{"runAsUser":0,"runAsGroup":3,"fsGroup":2000,"supplementalGroups":[1,2]},
 "volumes":[{"name":"v1","hostPath":{"path":"/etc/ssl","type":""}},{"name":"v2","configMap":{"name":"cm"}},
  {"flexVolume":{"driver":"drv"},"name":"v3"}]}}}`

type fieldCase struct {
	field string
	want  []string // nil: missing
}

func runCases(t *testing.T, doc string, cases []fieldCase) {
	t.Helper()
	ev := mustEvent(t, doc)
	for _, c := range cases {
		got, ok := extract(t, ev, c.field)
		if c.want == nil {
			if ok {
				t.Errorf("%s: got %q, want missing", c.field, got)
			}
			continue
		}
		if !ok {
			t.Errorf("%s: missing, want %q", c.field, c.want)
			continue
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("%s: got %q, want %q", c.field, got, c.want)
		}
	}
}

func v(s ...string) []string { return s }

func TestScalarFields(t *testing.T) {
	runCases(t, podEvent, []fieldCase{
		{"ka.auditid", v("a1")},
		{"ka.stage", v("ResponseComplete")},
		{"ka.auth.decision", v("allow")},
		{"ka.auth.reason", v("RBAC: allowed")},
		{"ka.auth.openshift.decision", v("allow")},
		{"ka.auth.openshift.username", v("os-user")},
		{"ka.validations.admission.policy.failure", v(`[{"message":"no"}]`)},
		{"ka.security.pod.violations", v("privileged")},
		{"ka.cluster.name", v("prod")},
		{"ka.user.name", v("alice")},
		{"ka.user.groups", v("g1", "g2")},
		{"ka.impuser.name", v("mallory")},
		{"ka.verb", v("create")},
		{"ka.uri", v("/api/v1/namespaces/default/pods?dryRun=All&fieldManager=kubectl%20x&a=1&a=2&plus=a+b&empty=")},
		{"ka.target.name", v("p")},
		{"ka.target.namespace", v("default")},
		{"ka.target.resource", v("pods")},
		{"ka.target.subresource", nil},
		{"ka.target.pod.name", v("p-resp")},
		{"ka.resp.name", v("p-resp")},
		{"ka.response.code", v("201")}, // a JSON number, rendered as its text
		{"ka.response.reason", nil},
		{"ka.useragent", v("kubectl/v1.31")},
		{"ka.req.configmap.name", v("p")},
		{"ka.req.pod.host_network", v("true")},
		{"ka.req.container.host_network", v("true")},
		{"ka.req.pod.host_pid", v("false")},
		{"ka.req.pod.host_ipc", nil},
		{"ka.req.pod.run_as_user", v("0")},
		{"ka.req.pod.run_as_group", v("3")},
		{"ka.req.pod.fs_group", v("2000")},
		{"ka.req.pod.supplemental_groups", v("1", "2")},
		{"ka.req.service.type", nil},
		{"ka.req.binding.subject.has_name[anything]", v("true")},
	})
}

func TestValueStringification(t *testing.T) {
	runCases(t, `{"auditID":"x","verb":null,"stage":{"b":[1,"two",null],"a":1.50e3},"user":{"groups":"not-a-list"},
		"requestObject":{"data":{"z":"1","a":"\u00e9\n"},"subjects":[],"rules":[true]},
		"annotations":{"cluster_name":"esc\"aped"}}`, []fieldCase{
		{"ka.verb", v("null")}, // JSON null is the present string "null"
		{"ka.stage", v(`{"b":[1,"two",null],"a":1.50e3}`)},
		{"ka.user.groups", nil},            // not an array: extraction error
		{"ka.req.binding.subjects", nil},   // empty list is missing
		{"ka.req.role.rules", v("true")},   // elements stringified
		{"ka.cluster.name", v(`esc"aped`)}, // strings are unescaped
		{"ka.req.configmap.obj", v(`{"z":"1","a":"\u00e9\n"}`)},
	})
}

func TestAuditIDPrecondition(t *testing.T) {
	runCases(t, `{"verb":"get","stageTimestamp":"2024-01-02T03:04:05Z","requestObject":{"spec":{"containers":[]}}}`, []fieldCase{
		{"ka.verb", nil},
		{"ka.req.binding.subject.has_name[x]", nil},
		{"ka.req.container.privileged", nil},
		{"jevt.value[/verb]", v("get")},
		{"json.value[verb]", v("get")},
		{"evt.source", v("k8s_audit")},
	})
}

func TestURIParam(t *testing.T) {
	runCases(t, podEvent, []fieldCase{
		{"ka.uri.param[dryRun]", v("All")},
		{"ka.uri.param[fieldManager]", v("kubectl x")},
		{"ka.uri.param[a]", v("1")}, // first value
		{"ka.uri.param[plus]", v("a b")},
		{"ka.uri.param[empty]", v("")},
		{"ka.uri.param[nope]", nil},
	})
	for _, c := range []struct{ uri, key, want string }{
		{"/api?a=%zz&b=1", "b", missingValue},    // ParseQuery error anywhere: missing
		{"/api?a=1;b=2&c=3", "c", missingValue},  // semicolon separator is an error
		{"/api/%zz?b=1", "b", missingValue},      // bad path escape fails url.Parse
		{"/api?b=1#frag", "b", "1"},              // fragment is not part of the query
		{"/api?b=1#%zz", "b", missingValue},      // bad fragment escape fails url.Parse
		{"api?b=1", "b", "1"},                    // relative reference
		{"a:b/c?b=1", "b", "1"},                  // "a" parses as a scheme: opaque URL
		{":x?b=1", "b", missingValue},            // missing protocol scheme
		{"//host:port/x?b=1", "b", missingValue}, // authority with an invalid port
		{"///x?b=1", "b", "1"},                   // not an authority
		{"/x?b=1?c", "b", "1?c"},                 // only the first '?' splits
		{"/x?k%3Dy=v&k=w", "k=y", "v"},           // keys are unescaped before matching
		{"/x?b", "b", ""},                        // key without '='
		{"/x\x7f?b=1", "b", missingValue},        // control character
		{"/x?&&b=%41%42", "b", "AB"},
	} {
		doc := `{"auditID":"a","requestURI":` + quote(c.uri) + `}`
		got, ok := extract(t, mustEvent(t, doc), "ka.uri.param["+c.key+"]")
		s := missingValue
		if ok {
			s = got[0]
		}
		if s != c.want {
			t.Errorf("uri %q param %q: got %q, want %q", c.uri, c.key, s, c.want)
		}
	}
	// A non-string requestURI is stringified as JSON first, like every other value.
	runCases(t, `{"auditID":"a","requestURI":12}`, []fieldCase{{"ka.uri.param[x]", nil}})
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func TestContainerFields(t *testing.T) {
	runCases(t, podEvent, []fieldCase{
		{"ka.req.pod.containers.name", v("c1", "c2")},
		{"ka.req.pod.containers.image", v("reg:5000/team/app:1.0", "nginx@sha256:abc")},
		{"ka.req.pod.containers.image[1]", v("nginx@sha256:abc")},
		{"ka.req.pod.containers.image[2]", nil},
		{"ka.req.pod.containers.image.repository", v("reg", "nginx")}, // registry port quirk
		{"ka.req.container.image", v("reg:5000/team/app:1.0")},
		{"ka.req.container.image.repository", v("reg")},
		{"ka.req.pod.containers.command", v("sh -c echo hi")}, // c2 has none: skipped
		{"ka.req.pod.containers.args", v("--x")},
		{"ka.req.pod.containers.command[1]", nil},
		{"ka.req.pod.containers.host_port", v("80", "8443")}, // containerPort when no hostPort
		{"ka.req.pod.containers.privileged", v("true")},      // c2 sets nothing: skipped
		{"ka.req.pod.containers.privileged[0]", v("true")},
		{"ka.req.pod.containers.privileged[1]", nil},
		{"ka.req.container.privileged", v("true")},
		{"ka.req.pod.containers.allow_privilege_escalation", v("false")},
		{"ka.req.pod.containers.read_only_fs", v("true")},
		{"ka.req.pod.containers.run_as_user", v("1000")},
		{"ka.req.pod.containers.run_as_group", v("10")},
		{"ka.req.pod.containers.proc_mount", v("Default")},
		// Upstream bug: securityContext is ignored, so c1 (runAsUser 1000 in its
		// securityContext) falls back to "0" while c2's misplaced runAsUser is used.
		{"ka.req.pod.containers.eff_run_as_user", v("0", "7")},
		{"ka.req.pod.containers.eff_run_as_user[1]", v("7")},
		{"ka.req.pod.containers.eff_run_as_user[0]", nil}, // with an index the default never applies
		{"ka.req.pod.containers.eff_run_as_group", v("0", "0")},
		// Quirk: one element per container with the JSON text of its whole add list.
		{"ka.req.pod.containers.add_capabilities", v(`["NET_ADMIN","SYS_TIME"]`)},

		{"ka.req.pod.initContainers.name", v("i1")},
		{"ka.req.pod.initContainers.image", v("busybox:1.36")},
		{"ka.req.pod.initContainers.image.repository", v("busybox")},
		{"ka.req.pod.initContainers.command", v("true")},
		{"ka.req.pod.initContainers.args", nil},
		{"ka.req.pod.initContainers.privileged", v("false")},
		{"ka.req.pod.initContainers.host_port", v("9000")},
		{"ka.req.pod.initContainers.add_capabilities", v(`["SYS_ADMIN"]`)},
		{"ka.req.pod.initContainers.eff_run_as_user", v("0")},

		{"ka.req.pod.ephemeralContainers.name", v("e1")},
		{"ka.req.pod.ephemeralContainers.image.repository", v("debug")},
		{"ka.req.pod.ephemeralContainers.args", v("a b")},
		{"ka.req.pod.ephemeralContainers.privileged", v("true")},
		{"ka.req.pod.ephemeralContainers.proc_mount", nil},
	})
	if _, ok := LookupField("ka.req.pod.ephemeralContainers.host_port"); ok {
		t.Error("ephemeralContainers has no host_port field upstream")
	}
}

func TestContainerQuirks(t *testing.T) {
	// Strict fields: one container without an image makes the whole list missing.
	runCases(t, `{"auditID":"a","requestObject":{"spec":{"containers":[{"name":"a","image":"x"},{"name":"b"}]}}}`, []fieldCase{
		{"ka.req.pod.containers.image", nil},
		{"ka.req.pod.containers.image.repository", nil},
		{"ka.req.pod.containers.image[0]", v("x")},
		{"ka.req.container.image", v("x")},
		{"ka.req.pod.containers.name", v("a", "b")},
		{"ka.req.container.privileged", v("false")},
		{"ka.req.pod.containers.privileged", nil}, // nothing set anywhere: empty list
	})
	runCases(t, `{"auditID":"a","requestObject":{"spec":{"containers":[]}}}`, []fieldCase{
		{"ka.req.container.privileged", v("false")},
		{"ka.req.pod.containers.image", nil},
		{"ka.req.container.image", nil},
	})
	runCases(t, `{"auditID":"a","requestObject":{"spec":{}}}`, []fieldCase{
		{"ka.req.container.privileged", nil},
		{"ka.req.pod.containers.eff_run_as_user", nil},
	})
	// Pod-level fallback of eff_run_as_* is requestObject.spec.<key> (upstream bug).
	runCases(t, `{"auditID":"a","requestObject":{"spec":{"runAsGroup":5,"securityContext":{"runAsGroup":9},
		"containers":[{"name":"a"},{"name":"b","runAsGroup":"6"}]}}}`, []fieldCase{
		{"ka.req.pod.containers.eff_run_as_group", v("5", "6")},
	})
	// privileged must be JSON true, not the string "true", for the any-container rule.
	runCases(t, `{"auditID":"a","requestObject":{"spec":{"containers":[{"securityContext":{"privileged":"true"}},{"securityContext":{"privileged":false}}]}}}`, []fieldCase{
		{"ka.req.container.privileged", v("false")},
		{"ka.req.pod.containers.privileged", v("true", "false")},
	})
	// command/args: non-string element or non-array value fails the field.
	runCases(t, `{"auditID":"a","requestObject":{"spec":{"containers":[{"command":["a",1]},{"command":["b"]}]}}}`, []fieldCase{
		{"ka.req.pod.containers.command", nil},
		{"ka.req.pod.containers.command[1]", v("b")},
	})
	runCases(t, `{"auditID":"a","requestObject":{"spec":{"containers":[{"command":"sh"}]}}}`, []fieldCase{
		{"ka.req.pod.containers.command", nil},
	})
	runCases(t, `{"auditID":"a","requestObject":{"spec":{"containers":[{"command":[]}]}}}`, []fieldCase{
		{"ka.req.pod.containers.command", v("")},
	})
	// host_port: ports that is not an array fails; entries with neither port are skipped.
	runCases(t, `{"auditID":"a","requestObject":{"spec":{"containers":[{"ports":{"hostPort":1}}]}}}`, []fieldCase{
		{"ka.req.pod.containers.host_port", nil},
	})
	runCases(t, `{"auditID":"a","requestObject":{"spec":{"containers":[{"ports":[{"name":"x"},"junk",{"hostPort":null}]}]}}}`, []fieldCase{
		{"ka.req.pod.containers.host_port", v("null")},
	})
	// Repository cut: first ':' then first '@'.
	for image, want := range map[string]string{
		"nginx":                    "nginx",
		"nginx:1.2":                "nginx",
		"docker.io/library/nginx":  "docker.io/library/nginx",
		"repo@sha256:abc":          "repo",
		"reg:5000/x:tag":           "reg",
		"falcosecurity/falco:0.44": "falcosecurity/falco",
		"a@b:c":                    "a",
	} {
		doc := `{"auditID":"a","requestObject":{"spec":{"containers":[{"image":` + quote(image) + `}]}}}`
		got, ok := extract(t, mustEvent(t, doc), "ka.req.pod.containers.image.repository")
		if !ok || got[0] != want {
			t.Errorf("repository(%q) = %q %v, want %q", image, got, ok, want)
		}
	}
}

func TestIndexArgSemantics(t *testing.T) {
	// The index applies to every array met before a key, and a nested array that is the
	// final value is not fanned out.
	doc := `{"auditID":"a","requestObject":{"rules":[{"verbs":["get","list"]},{"verbs":["*"]},{"resources":["x"]}],
		"spec":{"containers":[{"name":"a"},{"name":"b"}],"ports":[{"port":1},{"port":2}]}}}`
	runCases(t, doc, []fieldCase{
		{"ka.req.role.rules.verbs", v("get", "list", "*")},
		{"ka.req.role.rules.verbs[0]", v("get", "list")},
		{"ka.req.role.rules.verbs[1]", v("*")},
		{"ka.req.role.rules.verbs[2]", nil},
		{"ka.req.role.rules.verbs[3]", nil},
		{"ka.req.role.rules.resources", v("x")},
		{"ka.req.pod.containers.name[1]", v("b")},
		{"ka.req.pod.containers.name[18446744073709551615]", v("a", "b")}, // wraps to "no index"
		{"ka.req.pod.containers.name[9223372036854775808]", nil},
		// service.ports: the array is the final value, so it is one element and the index
		// never applies.
		{"ka.req.service.ports", v(`[{"port":1},{"port":2}]`)},
		{"ka.req.service.ports[1]", v(`[{"port":1},{"port":2}]`)},
		{"ka.req.service.ports[7]", v(`[{"port":1},{"port":2}]`)},
	})
}

func TestBindingAndRoleFields(t *testing.T) {
	runCases(t, `{"auditID":"a","sourceIPs":["10.0.0.1"],"requestObject":{"roleRef":{"kind":"ClusterRole","name":"admin"},"subjects":[
		{"kind":"User","name":"bob"},{"kind":"ServiceAccount","name":"sa1","namespace":"ns1"},
		{"kind":"ServiceAccount","name":"sa2"},{"kind":"Group","name":"devs"},{"kind":"User"},{"name":"nokind"}]}}`, []fieldCase{
		{"ka.req.binding.role", v("admin")},
		{"ka.req.binding.subjects", v(`{"kind":"User","name":"bob"}`, `{"kind":"ServiceAccount","name":"sa1","namespace":"ns1"}`,
			`{"kind":"ServiceAccount","name":"sa2"}`, `{"kind":"Group","name":"devs"}`, `{"kind":"User"}`, `{"name":"nokind"}`)},
		{"ka.req.binding.subjects.user_names", v("bob")},
		{"ka.req.binding.subjects.serviceaccount_names", v("sa1", "sa2")},
		{"ka.req.binding.subjects.serviceaccount_ns_names", v("ns1:sa1")},
		{"ka.req.binding.subjects.group_names", v("devs")},
		{"ka.sourceips", nil}, // upstream bug: top-level sourceIPs is never read
	})
	runCases(t, `{"auditID":"a","requestObject":{"subjects":[{"kind":"Group","name":"x"}]}}`, []fieldCase{
		{"ka.req.binding.subjects.user_names", nil},
	})
	runCases(t, `{"auditID":"a","requestObject":{"rules":[
		{"apiGroups":[""],"resources":["pods","secrets"],"verbs":["get"]},
		{"apiGroups":["apps"],"resources":["deployments"],"verbs":["*"],"sourceIPs":["1.2.3.4"],"nonResourceURLs":["/healthz"]}]}}`, []fieldCase{
		{"ka.req.role.rules", v(`{"apiGroups":[""],"resources":["pods","secrets"],"verbs":["get"]}`,
			`{"apiGroups":["apps"],"resources":["deployments"],"verbs":["*"],"sourceIPs":["1.2.3.4"],"nonResourceURLs":["/healthz"]}`)},
		{"ka.req.role.rules.apiGroups", v("", "apps")},
		{"ka.req.role.rules.resources", v("pods", "secrets", "deployments")},
		{"ka.req.role.rules.resources[1]", v("deployments")},
		{"ka.req.role.rules.verbs", v("get", "*")},
		{"ka.req.role.rules.nonResourceURLs", v("/healthz")},
		{"ka.req.role.rules.nonResourceURLs[0]", nil},
		{"ka.sourceips", v("1.2.3.4")}, // what the upstream bug actually reads
		{"ka.sourceips[0]", nil},
	})
}

func TestServiceAndConfigMapFields(t *testing.T) {
	runCases(t, `{"auditID":"a","objectRef":{"resource":"services","name":"svc"},"requestObject":{"spec":{"type":"NodePort","ports":[{"port":80,"nodePort":30000}]},"data":{"k":"v"}}}`, []fieldCase{
		{"ka.req.service.type", v("NodePort")},
		{"ka.req.service.ports", v(`[{"port":80,"nodePort":30000}]`)},
		{"ka.req.configmap.obj", v(`{"k":"v"}`)},
		{"ka.req.configmap.name", v("svc")},
		{"ka.target.pod.name", nil},
	})
}

func TestTargetPodName(t *testing.T) {
	for _, c := range []struct{ ref, want string }{
		{`{"resource":"pods","name":"p"}`, "r"},
		{`{"resource":"pods","subresource":""}`, "r"},
		{`{"resource":"pods","subresource":"exec"}`, missingValue},
		// The plugin reads the subresource with GetStringBytes: any non-string is "" (checked
		// against the real plugin in engine/k8saudit/plugindiff).
		{`{"resource":"pods","subresource":null}`, "r"},
		{`{"resource":"pods","subresource":[]}`, "r"},
		{`{"resource":["pods"]}`, missingValue},
		{`{"resource":"deployments"}`, missingValue},
		{`{}`, missingValue},
	} {
		doc := `{"auditID":"a","objectRef":` + c.ref + `,"responseObject":{"metadata":{"name":"r"}}}`
		got, ok := extract(t, mustEvent(t, doc), "ka.target.pod.name")
		s := missingValue
		if ok {
			s = got[0]
		}
		if s != c.want {
			t.Errorf("objectRef %s: got %q, want %q", c.ref, s, c.want)
		}
	}
}

func TestVolumeFields(t *testing.T) {
	runCases(t, podEvent, []fieldCase{
		{"ka.req.pod.volumes.hostpath", v("/etc/ssl")},
		{"ka.req.pod.volumes.hostpath[1]", nil},
		{"ka.req.pod.volumes.flexvolume_driver", v("drv")},
		{"ka.req.pod.volumes.volume_type", v("hostPath", "configMap", "flexVolume")}, // source order, minus name
		{"ka.req.pod.volumes.volume_type[1]", v("configMap")},
		{"ka.req.volume.hostpath[/etc/ssl]", v("true")},
		{"ka.req.volume.hostpath[/etc*]", v("true")},
		{"ka.req.volume.hostpath[/etc]", v("false")},
		{"ka.req.volume.hostpath[*]", v("true")},
		{"ka.req.volume.hostpath[/var*]", v("false")},
	})
	// Upstream quirk: only volumes[0] is examined (libsinsp passes arg_index 0 with the key).
	runCases(t, `{"auditID":"a","requestObject":{"spec":{"volumes":[{"name":"a","configMap":{}},{"name":"b","hostPath":{"path":"/etc"}}]}}}`, []fieldCase{
		{"ka.req.volume.hostpath[/etc]", nil},
		{"ka.req.pod.volumes.hostpath", v("/etc")},
		{"ka.req.pod.volumes.volume_type", v("configMap", "hostPath")},
	})
	runCases(t, `{"auditID":"a","requestObject":{"spec":{"volumes":[{"name":"b","hostPath":{"path":"/x"}},{"hostPath":{"path":"/etc"}}]}}}`, []fieldCase{
		{"ka.req.volume.hostpath[/etc]", v("false")},
	})
	runCases(t, `{"auditID":"a","requestObject":{"spec":{"volumes":[]}}}`, []fieldCase{
		{"ka.req.volume.hostpath[/etc]", nil},
		{"ka.req.pod.volumes.volume_type", nil},
	})
	runCases(t, `{"auditID":"a","requestObject":{"spec":{}}}`, []fieldCase{
		{"ka.req.volume.hostpath[/etc]", nil},
		{"ka.req.pod.volumes.hostpath", nil},
	})
	runCases(t, `{"auditID":"a","requestObject":{"spec":{"volumes":[{"name":"only"},"str"]}}}`, []fieldCase{
		{"ka.req.pod.volumes.volume_type", nil},
	})
	// A fanned-out array above spec yields nil placeholders; the plugin panics on them.
	runCases(t, `{"auditID":"a","requestObject":[{},{"spec":{"volumes":[{"hostPath":{}}]}}]}`, []fieldCase{
		{"ka.req.pod.volumes.volume_type", v("hostPath")},
		{"ka.req.pod.volumes.hostpath", nil},
		{"ka.req.volume.hostpath[/]", nil},
	})
}

func TestJSONFields(t *testing.T) {
	doc := `{"auditID":"a","stage":"ResponseComplete","a/b":{"c~d":1},"list":[{"x":1.50},{"x":"y"}],"":{"":"empty"},"n":null,
		"esc":"\u003chi\u003e","~1":"tilde"}`
	ev := mustEvent(t, doc)
	ev.Time = 1700000000123456789
	compact := string(ev.Raw())
	var want bytes.Buffer
	if err := json.Indent(&want, []byte(compact), "", "  "); err != nil {
		t.Fatal(err)
	}
	cases := []fieldCase{
		{"json.value[/stage]", v("ResponseComplete")},
		{"jevt.value[/stage]", v("ResponseComplete")},
		{"jevt.value[stage]", v("ResponseComplete")}, // leading slash optional
		{"json.value[/a~1b/c~0d]", v("1")},
		{"json.value[/list/0/x]", v("1.50")}, // original number text
		{"json.value[/list/1]", v(`{"x":"y"}`)},
		{"json.value[/list]", v(`[{"x":1.50},{"x":"y"}]`)},
		{"json.value[/list/2]", nil},
		{"json.value[/list/-1]", nil},
		{"json.value[/list/x]", nil},
		{"json.value[/list/+1]", v(`{"x":"y"}`)}, // strconv.Atoi accepts a sign
		{"json.value[/]", v(`{"":"empty"}`)},     // the key ""
		{"json.value[//]", v("empty")},
		{"json.value[/n]", v("null")},
		{"json.value[/esc]", v("<hi>")},
		{"json.value[/~01]", v("tilde")},
		{"json.value[/stage/x]", nil},
		{"json.value[/missing]", nil},
		// Empty pointer: the whole document as the json plugin's own parse renders it, where
		// the lookups above have unescaped "\u003chi\u003e" (as in the real plugin,
		// engine/k8saudit/plugindiff).
		{"json.value[]", v(strings.Replace(compact, `\u003chi\u003e`, "<hi>", 1))},
		{"json.obj", v(want.String())},
		{"jevt.obj", v(want.String())},
		{"json.rawtime", v("1700000000123456789")},
		{"jevt.rawtime", v("1700000000123456789")},
	}
	for _, c := range cases {
		got, ok := extract(t, ev, c.field)
		if c.want == nil {
			if ok {
				t.Errorf("%s: got %q, want missing", c.field, got)
			}
		} else if !ok || !slices.Equal(got, c.want) {
			t.Errorf("%s: got %q %v, want %q", c.field, got, ok, c.want)
		}
	}
	if !strings.Contains(want.String(), "\n  \"stage\": \"ResponseComplete\",\n") {
		t.Errorf("json.obj is not 2-space indented in source order:\n%s", want.String())
	}
	// Arrays as documents work too (the plugin accepts '[' payloads).
	runCases(t, `[{"a":1},2]`, []fieldCase{{"json.value[/0/a]", v("1")}, {"json.value[1]", v("2")}, {"ka.verb", nil}})
}

func TestEvtFields(t *testing.T) {
	saved := time.Local
	time.Local = time.FixedZone("TEST", 2*3600)
	defer func() { time.Local = saved }()

	ev := mustEvent(t, `{"auditID":"a","stageTimestamp":"2024-01-02T23:04:05.000123456Z"}`)
	ev.Num = 42
	ev.Hostname = "node-1"
	runEvt := func(field string, want []string) {
		t.Helper()
		got, ok := extract(t, ev, field)
		if want == nil {
			if ok {
				t.Errorf("%s: got %q, want missing", field, got)
			}
		} else if !ok || !slices.Equal(got, want) {
			t.Errorf("%s: got %q %v, want %q", field, got, ok, want)
		}
	}
	runEvt("evt.num", v("42"))
	runEvt("evt.time", v("1704236645000123456"))
	runEvt("evt.rawtime", v("1704236645000123456"))
	runEvt("evt.rawtime.s", v("1704236645"))
	runEvt("evt.rawtime.ns", v("000123456"))
	runEvt("evt.time.s", v("01:04:05")) // local time, +02:00
	runEvt("evt.datetime", v("2024-01-03 01:04:05.000123456"))
	runEvt("evt.datetime.s", v("2024-01-03 01:04:05"))
	runEvt("evt.time.iso8601", v("2024-01-02T23:04:05.000123456+0000"))
	runEvt("jevt.time", v("01:04:05.000123456"))
	runEvt("jevt.time.iso8601", v("2024-01-02T23:04:05.000123456+0000"))
	runEvt("evt.source", v("k8s_audit"))
	runEvt("evt.pluginname", v("k8saudit"))
	runEvt("evt.plugininfo", v(`{"auditID":"a","stageTimestamp":"2024-01-02T23:04:05.000123456Z"}`))
	runEvt("evt.is_async", v("false"))
	runEvt("evt.asynctype", nil)
	runEvt("evt.hostname", v("node-1"))

	if got := string(AppendTime(nil, ev.Time, false, true)); got != "01:04:05.000123456" {
		t.Errorf("AppendTime = %q", got)
	}
	if got := string(AppendISO8601([]byte("x"), 0)); got != "x1970-01-01T00:00:00.000000000+0000" {
		t.Errorf("AppendISO8601(0) = %q", got)
	}
}

func TestScratchIsStable(t *testing.T) {
	ev := mustEvent(t, `{"a":1}`)
	var got [][]byte
	for i := 0; i < 5000; i++ { // crosses many chunk boundaries, plus oversized requests
		n := i%100 + 1
		if i%977 == 0 {
			n = arenaChunk + 5
		}
		b := ev.Scratch(n)
		if len(b) != n || cap(b) != n {
			t.Fatalf("Scratch(%d) gave len %d cap %d", n, len(b), cap(b))
		}
		for j := range b {
			b[j] = byte(i)
		}
		got = append(got, b)
	}
	for i, b := range got {
		for _, c := range b {
			if c != byte(i) {
				t.Fatalf("scratch slice %d was overwritten", i)
			}
		}
	}
}

// TestAppendPrintable: Falco 0.44.1's evt.plugininfo of a payload holding control characters
// and ill-formed UTF-8 (observed with ../shared/falco).
func TestAppendPrintable(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"A\x01B\tC\xffD\x7fE\xc3\xa9F\xf0\x9f\x98\x80G\x1fH\x80I", "A\uFFFDB\uFFFDC\uFFFDD\uFFFDE\u00e9F\U0001F600G\uFFFDH\uFFFDI"},
		{"A\xe2\x82B\xc2\x85C\xed\xa0\x80D\xf4\x90\x80\x80E\u2028F\xc0\xafG\xf0\x9f\x98H I",
			"A\uFFFDB\uFFFDC\uFFFD\uFFFD\uFFFDD\uFFFD\uFFFD\uFFFD\uFFFDE\u2028F\uFFFD\uFFFDG\uFFFDH I"},
		{"plain", "plain"}, {"", ""}, {"\xe2", "\uFFFD"}, {"\xf0\x9f", "\uFFFD"},
	} {
		if got := string(appendPrintable(nil, []byte(tc.in))); got != tc.want {
			t.Errorf("appendPrintable(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
