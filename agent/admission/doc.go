// Package admission is the agent's validating admission webhook (POST /k8s-admission): it turns
// an admission.k8s.io/v1 AdmissionRequest into the audit event kube-apiserver would log for that
// request if it succeeded, evaluates it with the running ruleset (the audit path's, so the
// tuning file's exceptions apply) and, for the rules selected to enforce, warns or denies. It
// owns the request-to-event mapping, the decision, its alerts and its metrics.
//
// # Mapping (AdmissionRequest → audit.k8s.io/v1 Event)
//
//   - auditID: request.uid; level RequestResponse; stage ResponseComplete; annotations
//     authorization.k8s.io/decision "allow" (the request was authorized to get here) and an
//     empty authorization.k8s.io/reason.
//   - user: userInfo (username, uid, groups, extra). For an impersonated request this is the
//     impersonated user (the audit log has the impersonator in user and the target in
//     impersonatedUser); impersonatedUser is never set.
//   - objectRef: requestResource (resource, apiGroup, apiVersion) and requestSubResource when
//     set, else resource and subResource; namespace and name from the request.
//   - verb and responseStatus.code: CREATE → create / 201; UPDATE → update / 200 (a PATCH also
//     arrives as UPDATE, so rules see verb update, never patch); DELETE → delete / 200; CONNECT
//     (pods/exec, pods/attach, pods/portforward) → create / 101, as two events, stage
//     ResponseStarted and stage ResponseComplete, as the audit log records an upgraded
//     connection; a match in either counts. A WebSocket client (kubectl 1.30 and later) opens
//     the connection with GET, which the audit log records as verb get: admission cannot tell
//     GET from POST, so rules that test ka.verb on a CONNECT decide as for create (the upstream
//     Attach/Exec Pod rule accepts both; k8saudit 0.6.0's accepted only create).
//   - requestURI: rebuilt from the resource (/api/v1/namespaces/ns/pods,
//     /apis/group/version/..., the name except for a CREATE on the collection, the
//     subresource); for CONNECT the options object (PodExecOptions, PodAttachOptions,
//     PodPortForwardOptions) becomes the query (command=..&container=..&stdin=true), so
//     ka.uri.param[command] works; a proxy CONNECT (nodes/proxy, pods/proxy, services/proxy,
//     code 200) appends the options' path (/api/v1/nodes/n1/proxy/exec/...). The URI never
//     carries dryRun: a dry run is decided as the real request would be (the built-in rules
//     skip dry runs on the audit path, which would let every `--dry-run=server` preview pass)
//     and recorded as a dry run.
//   - requestObject: object (for DELETE: options, the DeleteOptions). Unlike the audit log, this
//     is the object after defaulting and mutating admission, and for a PATCH the whole patched
//     object rather than the patch document. responseObject: object for CREATE and UPDATE (what
//     the validating phase sees is what is stored), oldObject for DELETE.
//   - oldObject: the request's oldObject for UPDATE and DELETE, as a top-level oldObject key.
//     It is not an audit field: only rules written for admission read it
//     (jevt.value[/oldObject/...]); it is never set on the audit path.
//   - Not available, so absent: sourceIPs, userAgent, impersonatedUser, responseStatus.reason,
//     and annotations other admission plugins add (pod-security.kubernetes.io/*,
//     validation.policy.admission.k8s.io/*). Rules whose condition reads them cannot decide
//     the same way as on the audit path.
//
// # Decisions
//
// Every active rule is evaluated (as rule_matching: all). The rules selected by
// admission.enforce (names, tags, minimum priority) and not in NotDecidable decide: in warn
// mode the request is allowed and each matching rule's rendered output is returned as an
// admission warning (kubectl prints "Warning: falco-k8s: rule ..."); in deny mode it is refused
// with 403 and "denied by falco-k8s: rule "<name>" (<priority>): <output>". Other rules do not
// alert here: they alert from the audit log once the request has happened. Each decision is
// also an alert (output_fields admission.decision = warned or denied, admission.dry_run) on the
// agent's outputs and journal, and is counted in falco_k8s_admission_requests_total and
// falco_k8s_admission_rule_decisions_total. A dry run (request.dryRun) is decided the same way
// and recorded with admission.dry_run true and dry_run="true". In warn mode, and for rules
// that do not check the response code in deny mode, the audit log then alerts too: the
// admission alert says what was decided, the audit alert what happened.
//
// A request that cannot be evaluated (no ruleset yet, an unknown operation, an object that is
// not JSON) is answered per admission.failure_policy: Ignore allows it with a warning, Fail
// refuses it (400). An AdmissionReview that cannot be parsed at all has no uid to answer with:
// it gets HTTP 400 with the reason, too many at once get 429 and an oversized one 413, and
// kube-apiserver applies the webhook configuration's failurePolicy (Ignore: allowed, Fail:
// refused).
//
// # Not decidable at admission
//
// These rules never block or warn, even when selected; they keep alerting from the audit log.
// The built-in ruleset:
//
//   - Secret Read by User, Secrets Listed Cluster-Wide by Service Account: reads (get, list,
//     watch) are never sent to admission.
//
// The upstream ruleset (falcosecurity/plugins k8s_audit_rules.yaml):
//
//   - K8s Secret Get Successfully: reads (get, list, watch) are never sent to admission.
//   - K8s Secret Get Unsuccessfully Tried: a read, and it needs a failed response.
//   - Untrusted Node Unsuccessfully Tried to Join the Cluster: it needs a failed response.
//
// # Equivalence with the audit path
//
// TestEquivalence takes every audit event of the shared regression traces, the real kube-apiserver
// 1.31 batches and testdata/crafted.jsonl that records a successful admissible request (create,
// update, patch, delete, connect), rebuilds the AdmissionRequest kube-apiserver sent for it,
// converts that back with Events and checks that the same rules match on both paths (the
// built-in ruleset, the upstream one and k8saudit 0.6.0), NotDecidable excepted. The documented
// differences above are the only ones it allows: a WebSocket (GET) CONNECT under a rule that
// wants create, and a dry run under rules that skip dry runs.
//
// Rules matching reads as well as writes (Disallowed K8s User, Anonymous Request Allowed, Full
// K8s Administrative Access, All K8s Audit Events) decide the writes only.
package admission
