package k8saudit

import (
	"bytes"
	"strings"

	"github.com/valyala/fastjson"
)

const pluginK8sAudit = "k8saudit"

// kaFields is the k8saudit plugin's field list, in its listing order.
func kaFields() []fieldDef {
	str := func(name, desc string, b builder) fieldDef {
		return fieldDef{Field{Name: name, Desc: desc, Type: TypeString, Plugin: pluginK8sAudit}, b}
	}
	list := func(name, desc string, b builder) fieldDef {
		return fieldDef{Field{Name: name, Desc: desc, Type: TypeString, List: true, Plugin: pluginK8sAudit}, b}
	}
	idxList := func(name, desc string, b builder) fieldDef {
		f := list(name, desc, b)
		f.Arg = ArgIndex
		return f
	}
	key := func(name, desc string, b builder) fieldDef {
		f := str(name, desc, b)
		f.Arg = ArgKey
		return f
	}
	deprecated := func(f fieldDef) fieldDef {
		f.Deprecated = true
		return f
	}
	ann := func(k string) builder { return scalarKeys("annotations", k) }

	fs := []fieldDef{
		str("ka.auditid", "The unique id of the audit event", scalarKeys("auditID")),
		str("ka.stage", "Stage of the request (e.g. RequestReceived, ResponseComplete, etc.)", scalarKeys("stage")),
		str("ka.auth.decision", "The authorization decision", ann("authorization.k8s.io/decision")),
		str("ka.auth.reason", "The authorization reason", ann("authorization.k8s.io/reason")),
		str("ka.auth.openshift.decision", "The authentication decision of the OpenShift apiserver extension. Only available on OpenShift clusters", ann("authentication.openshift.io/decision")),
		str("ka.validations.admission.policy.failure", "The validation failure reason from a Validating Admission Policy", ann("validation.policy.admission.k8s.io/validation_failure")),
		str("ka.security.pod.violations", "The violation reason for pod security policy", ann("pod-security.kubernetes.io/audit-violations")),
		str("ka.auth.openshift.username", "The user name performing the OpenShift authentication operation. Only available on OpenShift clusters", ann("authentication.openshift.io/username")),
		str("ka.user.name", "The user name performing the request", scalarKeys("user", "username")),
		list("ka.user.groups", "The groups to which the user belongs", listKeys("user", "groups")),
		str("ka.impuser.name", "The impersonated user name", scalarKeys("impersonatedUser", "username")),
		str("ka.verb", "The action being performed", scalarKeys("verb")),
		str("ka.uri", "The request URI as sent from client to server", scalarKeys("requestURI")),
		key("ka.uri.param", "The value of a given query parameter in the uri (e.g. when uri=/foo?key=val, ka.uri.param[key] is val)", uriParam),
		str("ka.target.name", "The target object name", scalarKeys("objectRef", "name")),
		str("ka.target.namespace", "The target object namespace", scalarKeys("objectRef", "namespace")),
		str("ka.target.resource", "The target object resource", scalarKeys("objectRef", "resource")),
		str("ka.target.subresource", "The target object subresource", scalarKeys("objectRef", "subresource")),
		str("ka.target.pod.name", "The target pod name (the response object's name when the target is a pod, not a pod subresource)", targetPodName),
		list("ka.req.binding.subjects", "When the request object refers to a cluster role binding, the subject (e.g. account/users) being linked by the binding", listKeys("requestObject", "subjects")),
		list("ka.req.binding.subjects.user_names", "When the request object refers to a cluster role binding, the subject user names being linked by the binding", subjectNames("User", false)),
		list("ka.req.binding.subjects.serviceaccount_names", "When the request object refers to a cluster role binding, the subject service account names being linked by the binding", subjectNames("ServiceAccount", false)),
		list("ka.req.binding.subjects.serviceaccount_ns_names", "When the request object refers to a cluster role binding, the subject service account namespaced names being linked by the binding, e.g. mynamespace:myserviceaccount", subjectNames("ServiceAccount", true)),
		list("ka.req.binding.subjects.group_names", "When the request object refers to a cluster role binding, the subject group names being linked by the binding", subjectNames("Group", false)),
		str("ka.req.binding.role", "When the request object refers to a cluster role binding, the role being linked by the binding", scalarKeys("requestObject", "roleRef", "name")),
		deprecated(key("ka.req.binding.subject.has_name", "Deprecated, always returns \"true\" (documented upstream as N/A). Only provided for backwards compatibility", constant(litTrue))),
		str("ka.req.configmap.name", "If the request object refers to a configmap, the configmap name", scalarKeys("objectRef", "name")),
		str("ka.req.configmap.obj", "If the request object refers to a configmap, the entire configmap object", scalarKeys("requestObject", "data")),
		idxList("ka.req.pod.containers.args", "When the request object refers to a pod, the container's args, each container's joined with spaces", commandOrArgs("containers", "args")),
		idxList("ka.req.pod.containers.command", "When the request object refers to a pod, the container's command, each container's joined with spaces", commandOrArgs("containers", "command")),
		idxList("ka.req.pod.containers.name", "When the request object refers to a pod, the container's names", containerStrict("containers", "name", false)),
		idxList("ka.req.pod.containers.image", "When the request object refers to a pod, the container's images", containerStrict("containers", "image", false)),
		deprecated(str("ka.req.container.image", "Deprecated by ka.req.pod.containers.image. Returns the image of the first container only", firstContainerImage(false))),
		idxList("ka.req.pod.containers.image.repository", "The same as ka.req.pod.containers.image, but only the repository part (e.g. falcosecurity/falco). Upstream cuts at the first ':', so a registry port ends the repository (reg:5000/x:tag gives reg)", containerStrict("containers", "image", true)),
		deprecated(str("ka.req.container.image.repository", "Deprecated by ka.req.pod.containers.image.repository. Returns the repository of the first container only", firstContainerImage(true))),
		str("ka.req.pod.host_ipc", "When the request object refers to a pod, the value of the hostIPC flag", scalarKeys("requestObject", "spec", "hostIPC")),
		str("ka.req.pod.host_network", "When the request object refers to a pod, the value of the hostNetwork flag", scalarKeys("requestObject", "spec", "hostNetwork")),
		deprecated(str("ka.req.container.host_network", "Deprecated alias for ka.req.pod.host_network", scalarKeys("requestObject", "spec", "hostNetwork"))),
		str("ka.req.pod.host_pid", "When the request object refers to a pod, the value of the hostPID flag", scalarKeys("requestObject", "spec", "hostPID")),
		idxList("ka.req.pod.containers.host_port", "When the request object refers to a pod, all container's hostPort values (containerPort where hostPort is unset)", hostPorts("containers")),
		idxList("ka.req.pod.containers.privileged", "When the request object refers to a pod, the value of the privileged flag for all containers", securityContext("containers", "privileged")),
		deprecated(str("ka.req.container.privileged", "Deprecated by ka.req.pod.containers.privileged. Returns true if any container has privileged=true", anyPrivileged)),
		idxList("ka.req.pod.containers.allow_privilege_escalation", "When the request object refers to a pod, the value of the allowPrivilegeEscalation flag for all containers", securityContext("containers", "allowPrivilegeEscalation")),
		idxList("ka.req.pod.containers.read_only_fs", "When the request object refers to a pod, the value of the readOnlyRootFilesystem flag for all containers", securityContext("containers", "readOnlyRootFilesystem")),
		str("ka.req.pod.run_as_user", "When the request object refers to a pod, the runAsUser uid specified in the security context for the pod. See ....containers.run_as_user for the runAsUser for individual containers", scalarKeys("requestObject", "spec", "securityContext", "runAsUser")),
		idxList("ka.req.pod.containers.run_as_user", "When the request object refers to a pod, the runAsUser uid for all containers", securityContext("containers", "runAsUser")),
		idxList("ka.req.pod.containers.eff_run_as_user", effDesc("uid", "containers", "runAsUser"), effective("containers", "runAsUser")),
		str("ka.req.pod.run_as_group", "When the request object refers to a pod, the runAsGroup gid specified in the security context for the pod. See ....containers.run_as_group for the runAsGroup for individual containers", scalarKeys("requestObject", "spec", "securityContext", "runAsGroup")),
		idxList("ka.req.pod.containers.run_as_group", "When the request object refers to a pod, the runAsGroup gid for all containers", securityContext("containers", "runAsGroup")),
		idxList("ka.req.pod.containers.eff_run_as_group", effDesc("gid", "containers", "runAsGroup"), effective("containers", "runAsGroup")),
		idxList("ka.req.pod.containers.proc_mount", "When the request object refers to a pod, the procMount types for all containers", securityContext("containers", "procMount")),
		list("ka.req.role.rules", "When the request object refers to a role/cluster role, the rules associated with the role", listKeys("requestObject", "rules")),
		idxList("ka.req.role.rules.apiGroups", "When the request object refers to a role/cluster role, the api groups associated with the role's rules", rulesField("apiGroups")),
		idxList("ka.req.role.rules.nonResourceURLs", "When the request object refers to a role/cluster role, the non resource urls associated with the role's rules", rulesField("nonResourceURLs")),
		idxList("ka.req.role.rules.verbs", "When the request object refers to a role/cluster role, the verbs associated with the role's rules", rulesField("verbs")),
		idxList("ka.req.role.rules.resources", "When the request object refers to a role/cluster role, the resources associated with the role's rules", rulesField("resources")),
		str("ka.req.pod.fs_group", "When the request object refers to a pod, the fsGroup gid specified by the security context", scalarKeys("requestObject", "spec", "securityContext", "fsGroup")),
		list("ka.req.pod.supplemental_groups", "When the request object refers to a pod, the supplementalGroup gids specified by the security context", listKeys("requestObject", "spec", "securityContext", "supplementalGroups")),
		idxList("ka.req.pod.containers.add_capabilities", capDesc("containers"), securityContext("containers", "capabilities", "add")),
		str("ka.req.service.type", "When the request object refers to a service, the service type", scalarKeys("requestObject", "spec", "type")),
		idxList("ka.req.service.ports", "When the request object refers to a service, the service's ports. Upstream quirk: one element holding the JSON text of the whole ports array; the index has no effect", servicePorts),
		idxList("ka.req.pod.volumes.hostpath", "When the request object refers to a pod, all hostPath paths specified for all volumes", skipNilPath("requestObject", "spec", "volumes", "hostPath", "path")),
		deprecated(key("ka.req.volume.hostpath", "Deprecated by ka.req.pod.volumes.hostpath. Return true if the provided (host) path, or path prefix when it ends in *, is used by a volume. Upstream quirk: only the first volume is checked, and it must have a hostPath", volumeHostPath)),
		idxList("ka.req.pod.volumes.flexvolume_driver", "When the request object refers to a pod, all flexvolume drivers specified for all volumes", skipNilPath("requestObject", "spec", "volumes", "flexVolume", "driver")),
		idxList("ka.req.pod.volumes.volume_type", "When the request object refers to a pod, all volume types for all volumes (every key of each volume except name)", volumeTypes),
		str("ka.resp.name", "The response object name", scalarKeys("responseObject", "metadata", "name")),
		str("ka.response.code", "The response code", scalarKeys("responseStatus", "code")),
		str("ka.response.reason", "The response reason (usually present only for failures)", scalarKeys("responseStatus", "reason")),
		str("ka.useragent", "The useragent of the client who made the request to the apiserver", scalarKeys("userAgent")),
		idxList("ka.sourceips", "The IP addresses of the client who made the request to the apiserver. Upstream bug: read from requestObject.rules[].sourceIPs rather than the event's sourceIPs, so it is practically always missing", rulesField("sourceIPs")),
		str("ka.cluster.name", "The name of the k8s cluster", ann("cluster_name")),
	}

	for _, c := range []struct {
		kind, what string
		hostPort   bool
	}{{"initContainers", "init containers", true}, {"ephemeralContainers", "ephemeral containers", false}} {
		p := "ka.req.pod." + c.kind + "."
		fs = append(fs,
			idxList(p+"name", "When the request object refers to a pod, the "+c.what+" names", containerStrict(c.kind, "name", false)),
			idxList(p+"image", "When the request object refers to a pod, the "+c.what+" images", containerStrict(c.kind, "image", false)),
			idxList(p+"image.repository", "The same as "+p+"image, but only the repository part (e.g. falcosecurity/falco)", containerStrict(c.kind, "image", true)),
			idxList(p+"command", "When the request object refers to a pod, the "+c.what+" commands, each joined with spaces", commandOrArgs(c.kind, "command")),
			idxList(p+"args", "When the request object refers to a pod, the "+c.what+" args, each joined with spaces", commandOrArgs(c.kind, "args")),
			idxList(p+"privileged", "When the request object refers to a pod, the value of the privileged flag for all "+c.what, securityContext(c.kind, "privileged")),
			idxList(p+"allow_privilege_escalation", "When the request object refers to a pod, the value of the allowPrivilegeEscalation flag for all "+c.what, securityContext(c.kind, "allowPrivilegeEscalation")),
			idxList(p+"read_only_fs", "When the request object refers to a pod, the value of the readOnlyRootFilesystem flag for all "+c.what, securityContext(c.kind, "readOnlyRootFilesystem")),
			idxList(p+"run_as_user", "When the request object refers to a pod, the runAsUser uid for all "+c.what, securityContext(c.kind, "runAsUser")),
			idxList(p+"eff_run_as_user", effDesc("uid", c.what, "runAsUser"), effective(c.kind, "runAsUser")),
			idxList(p+"run_as_group", "When the request object refers to a pod, the runAsGroup gid for all "+c.what, securityContext(c.kind, "runAsGroup")),
			idxList(p+"eff_run_as_group", effDesc("gid", c.what, "runAsGroup"), effective(c.kind, "runAsGroup")),
			idxList(p+"proc_mount", "When the request object refers to a pod, the procMount type for all "+c.what, securityContext(c.kind, "procMount")),
			idxList(p+"add_capabilities", capDesc(c.what), securityContext(c.kind, "capabilities", "add")),
		)
		if c.hostPort {
			fs = append(fs, idxList(p+"host_port", "When the request object refers to a pod, all "+c.what+" hostPort values (containerPort where hostPort is unset)", hostPorts(c.kind)))
		}
	}
	return fs
}

func effDesc(id, what, key string) string {
	return "When the request object refers to a pod, the initial " + id + " that will be used for all " + what +
		", combining pod and container settings and using 0 if none is specified. Upstream bug: it reads " + key +
		" directly under the container and under spec, not under securityContext, so it is usually 0"
}

func capDesc(what string) string {
	return "When the request object refers to a pod, the capabilities to add for all " + what +
		". Upstream quirk: one element per container holding the JSON text of its whole add list, e.g. [\"NET_ADMIN\",\"SYS_TIME\"]"
}

// ka guards an extractor with the plugin's precondition: events without a top-level auditID
// are not audit events, and every ka.* field is missing for them.
func ka(fn Extractor) Extractor {
	return func(ev *Event, dst [][]byte) ([][]byte, bool) {
		if !ev.hasAuditID {
			return dst, false
		}
		return fn(ev, dst)
	}
}

func constant(v []byte) builder {
	return func(string, int) Extractor {
		return ka(func(ev *Event, dst [][]byte) ([][]byte, bool) { return append(dst, v), true })
	}
}

// scalarKeys is the plugin's extractFromKeys for non-list fields: literal keys, no pointer
// escaping, so an annotation name containing '/' is a single key.
func scalarKeys(keys ...string) builder {
	return func(string, int) Extractor {
		return ka(func(ev *Event, dst [][]byte) ([][]byte, bool) {
			v := ev.root.Get(keys...)
			if v == nil {
				return dst, false
			}
			return ev.appendValue(dst, v), true
		})
	}
}

// listKeys is extractFromKeys for list fields: the value must be an array (anything else is
// an extraction error) and each element is stringified.
func listKeys(keys ...string) builder {
	return func(string, int) Extractor {
		return ka(func(ev *Event, dst [][]byte) ([][]byte, bool) {
			v := ev.root.Get(keys...)
			if v == nil || v.Type() != fastjson.TypeArray {
				return dst, false
			}
			n := len(dst)
			for _, e := range v.GetArray() {
				dst = ev.appendValue(dst, e)
			}
			return dst, len(dst) > n
		})
	}
}

func skipNilPath(keys ...string) builder {
	return func(_ string, idx int) Extractor {
		return ka(func(ev *Event, dst [][]byte) ([][]byte, bool) {
			vals, ok := ev.walk(idx, keys)
			if !ok {
				return dst, false
			}
			return ev.appendSkipNil(dst, vals)
		})
	}
}

// securityContext reads C[].securityContext.<keys>, skipping containers that do not set it.
// For capabilities.add this yields the JSON text of each container's whole add array, which
// is the plugin's behaviour (the array is the walk's final value and is not flattened).
func securityContext(containers string, keys ...string) builder {
	return skipNilPath(append([]string{"requestObject", "spec", containers, "securityContext"}, keys...)...)
}

// containerStrict reads C[].<key> where a container without the key makes the whole field
// missing (the plugin's readContainerImages), optionally reduced to the image repository.
func containerStrict(containers, key string, repository bool) builder {
	path := []string{"requestObject", "spec", containers, key}
	return func(_ string, idx int) Extractor {
		return ka(func(ev *Event, dst [][]byte) ([][]byte, bool) {
			vals, ok := ev.walk(idx, path)
			if !ok {
				return dst, false
			}
			n := len(dst)
			if dst, ok = ev.appendStrict(dst, vals); ok && repository {
				for i := n; i < len(dst); i++ {
					dst[i] = imageRepository(dst[i])
				}
			}
			return dst, ok
		})
	}
}

// imageRepository cuts the image at the first ':' and then at the first '@', as the plugin
// does. It does not know about registry ports: "reg:5000/x:tag" gives "reg".
func imageRepository(image []byte) []byte {
	if i := bytes.IndexByte(image, ':'); i >= 0 {
		image = image[:i]
	}
	if i := bytes.IndexByte(image, '@'); i >= 0 {
		image = image[:i]
	}
	return image[:len(image):len(image)]
}

// firstContainerImage is the deprecated single-container form: the plugin reads the images
// with index filter 0, so only containers[0] matters.
func firstContainerImage(repository bool) builder {
	inner := containerStrict("containers", "image", repository)
	return func(string, int) Extractor { return inner("", 0) }
}

// commandOrArgs joins each container's command (or args) array with spaces. Containers
// without the key are skipped; a non-array value or a non-string element fails the field.
func commandOrArgs(containers, key string) builder {
	path := []string{"requestObject", "spec", containers, key}
	return func(_ string, idx int) Extractor {
		return ka(func(ev *Event, dst [][]byte) ([][]byte, bool) {
			vals, ok := ev.walk(idx, path)
			if !ok {
				return dst, false
			}
			n := len(dst)
			for _, v := range vals {
				if v == nil {
					continue
				}
				if v.Type() != fastjson.TypeArray {
					return dst[:n], false
				}
				parts := v.GetArray()
				size := 0
				for i, p := range parts {
					if p.Type() != fastjson.TypeString {
						return dst[:n], false
					}
					if i > 0 {
						size++
					}
					size += len(p.GetStringBytes())
				}
				b := ev.Scratch(size)[:0]
				for i, p := range parts {
					if i > 0 {
						b = append(b, ' ')
					}
					b = append(b, p.GetStringBytes()...)
				}
				dst = append(dst, b)
			}
			return dst, len(dst) > n
		})
	}
}

// hostPorts yields, for each C[].ports[] entry, hostPort if set, else containerPort (with
// hostNetwork the two are the same port). A ports value that is not an array fails the field.
func hostPorts(containers string) builder {
	path := []string{"requestObject", "spec", containers, "ports"}
	return func(_ string, idx int) Extractor {
		return ka(func(ev *Event, dst [][]byte) ([][]byte, bool) {
			vals, ok := ev.walk(idx, path)
			if !ok {
				return dst, false
			}
			n := len(dst)
			for _, ports := range vals {
				if ports == nil {
					continue
				}
				if ports.Type() != fastjson.TypeArray {
					return dst[:n], false
				}
				for _, p := range ports.GetArray() {
					if v := p.Get("hostPort"); v != nil {
						dst = ev.appendValue(dst, v)
					} else if v := p.Get("containerPort"); v != nil {
						dst = ev.appendValue(dst, v)
					}
				}
			}
			return dst, len(dst) > n
		})
	}
}

var privilegedPath = []string{"requestObject", "spec", "containers", "securityContext", "privileged"}

// anyPrivileged is "true" if any container's securityContext.privileged is JSON true, else
// "false"; missing only when the path cannot be walked at all (e.g. no containers).
func anyPrivileged(string, int) Extractor {
	return ka(func(ev *Event, dst [][]byte) ([][]byte, bool) {
		vals, ok := ev.walk(noIndex, privilegedPath)
		if !ok {
			return dst, false
		}
		for _, v := range vals {
			if v != nil && v.Type() == fastjson.TypeTrue {
				return append(dst, litTrue), true
			}
		}
		return append(dst, litFalse), true
	})
}

// effective is eff_run_as_user/eff_run_as_group: one value per container, the container's
// setting, else the pod's, else "0". The plugin looks the keys up directly under the
// container and under spec instead of under securityContext; we replicate that bug, so in
// practice every container yields "0" unless someone put the key at those places.
func effective(containers, key string) builder {
	podPath := []string{"requestObject", "spec", key}
	path := []string{"requestObject", "spec", containers, key}
	zero := []byte("0")[:1:1]
	return func(_ string, idx int) Extractor {
		return ka(func(ev *Event, dst [][]byte) ([][]byte, bool) {
			def := zero
			if v := ev.root.Get(podPath...); v != nil {
				def = ev.valueBytes(v)
			}
			vals, ok := ev.walk(idx, path)
			if !ok {
				return dst, false
			}
			n := len(dst)
			for _, v := range vals {
				if v == nil {
					dst = append(dst, def)
				} else {
					dst = ev.appendValue(dst, v)
				}
			}
			return dst, len(dst) > n
		})
	}
}

// rulesField flattens requestObject.rules[].<key>[] (the index selects one rule). It also
// backs ka.sourceips, whose upstream implementation reads rules[].sourceIPs by mistake.
func rulesField(key string) builder {
	path := []string{"requestObject", "rules", key}
	return func(_ string, idx int) Extractor {
		return ka(func(ev *Event, dst [][]byte) ([][]byte, bool) {
			vals, ok := ev.walk(idx, path)
			if !ok {
				return dst, false
			}
			n := len(dst)
			for _, v := range vals {
				if v != nil && v.Type() == fastjson.TypeArray {
					for _, e := range v.GetArray() {
						dst = ev.appendValue(dst, e)
					}
				}
			}
			return dst, len(dst) > n
		})
	}
}

var servicePortsPath = []string{"requestObject", "spec", "ports"}

// servicePorts walks to spec.ports, which is the final key, so the array is never fanned out
// and the index never applies: one element with the JSON text of the whole array.
func servicePorts(_ string, idx int) Extractor {
	return skipNilPath(servicePortsPath...)("", idx)
}

var volumesPath = []string{"requestObject", "spec", "volumes", ""}

// volumeTypes lists, for each volume object, every key except "name" in source order — the
// volume source kind in a well-formed pod (hostPath, configMap, ...).
func volumeTypes(_ string, idx int) Extractor {
	return ka(func(ev *Event, dst [][]byte) ([][]byte, bool) {
		vals, ok := ev.walk(idx, volumesPath)
		if !ok {
			return dst, false
		}
		n := len(dst)
		for _, v := range vals {
			if v == nil {
				continue // the plugin dereferences this and panics
			}
			o, err := v.Object()
			if err != nil {
				continue
			}
			o.Visit(func(k []byte, _ *fastjson.Value) {
				if string(k) != "name" {
					dst = append(dst, k[:len(k):len(k)])
				}
			})
		}
		return dst, len(dst) > n
	})
}

var hostPathPath = []string{"requestObject", "spec", "volumes", "hostPath", "path"}

// volumeHostPath is ka.req.volume.hostpath[p]: "true" when a volume's hostPath.path equals p,
// or starts with p minus a trailing '*'; otherwise "false".
//
// Upstream quirk, replicated: the plugin walks the volumes with the request's index filter,
// and for this key-argument field libsinsp passes arg_present with arg_index 0. So only
// volumes[0] is examined, and the field is missing (not "false") when there are no volumes or
// the first one has no hostPath. spec §5.3 describes a check over all volumes; this follows
// the plugin code instead.
func volumeHostPath(arg string, _ int) Extractor {
	prefix, isPrefix := strings.CutSuffix(arg, "*")
	prefixB := []byte(prefix)
	return ka(func(ev *Event, dst [][]byte) ([][]byte, bool) {
		vals, ok := ev.walk(0, hostPathPath)
		if !ok {
			return dst, false
		}
		for _, v := range vals {
			if v == nil {
				continue
			}
			p := ev.valueBytes(v)
			if string(p) == arg || isPrefix && bytes.HasPrefix(p, prefixB) {
				return append(dst, litTrue), true
			}
		}
		return append(dst, litFalse), true
	})
}

var (
	objectRefResource    = []string{"objectRef", "resource"}
	objectRefSubresource = []string{"objectRef", "subresource"}
	responseName         = []string{"responseObject", "metadata", "name"}
)

// targetPodName is the response object's name, only when the target is a pod itself (no
// subresource), so that e.g. a pods/exec response's name is not taken for the pod's.
func targetPodName(string, int) Extractor {
	return ka(func(ev *Event, dst [][]byte) ([][]byte, bool) {
		if r := ev.root.Get(objectRefResource...); r == nil || r.Type() != fastjson.TypeString || string(r.GetStringBytes()) != "pods" {
			return dst, false
		}
		// The plugin reads the subresource with GetStringBytes: a non-string one is "".
		if s := ev.root.Get(objectRefSubresource...); s != nil && s.Type() == fastjson.TypeString && len(s.GetStringBytes()) != 0 {
			return dst, false
		}
		v := ev.root.Get(responseName...)
		if v == nil {
			return dst, false
		}
		return ev.appendValue(dst, v), true
	})
}

var subjectsPath = []string{"requestObject", "subjects"}

// subjectNames lists requestObject.subjects[].name for subjects of the given kind; with
// namespaced it yields "namespace:name" and skips subjects without a namespace.
func subjectNames(kind string, namespaced bool) builder {
	return func(string, int) Extractor {
		return ka(func(ev *Event, dst [][]byte) ([][]byte, bool) {
			subjects := ev.root.Get(subjectsPath...)
			if subjects == nil || subjects.Type() != fastjson.TypeArray {
				return dst, false
			}
			n := len(dst)
			for _, s := range subjects.GetArray() {
				if string(s.GetStringBytes("kind")) != kind {
					continue
				}
				name := s.Get("name")
				if name == nil {
					continue
				}
				if !namespaced {
					dst = ev.appendValue(dst, name)
					continue
				}
				ns := s.Get("namespace")
				if ns == nil {
					continue
				}
				nsb, nb := ev.valueBytes(ns), ev.valueBytes(name)
				b := ev.Scratch(len(nsb) + 1 + len(nb))
				copy(b, nsb)
				b[len(nsb)] = ':'
				copy(b[len(nsb)+1:], nb)
				dst = append(dst, b)
			}
			return dst, len(dst) > n
		})
	}
}
