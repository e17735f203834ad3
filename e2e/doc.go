// Package e2e is the end-to-end tier: a real kube-apiserver (built from the pinned
// k8s.io/kubernetes by scripts/build-kube-apiserver.sh) with Debian's etcd, its audit webhook in
// batch mode pointed at the real falco-k8s agent running as a separate process, and client-go
// creating the objects the built-in rules must alert on. TestAdmissionWebhook points a
// ValidatingWebhookConfiguration (https, caBundle, the agent's token through
// --admission-control-config-file) at the same agent binary: deny and warn modes, a tuned
// namespace, a server-side dry run, a pods/exec CONNECT, and the agent stopped under
// failurePolicy Ignore and Fail.
//
// The tests skip unless the tier is requested (FALCO_K8S_E2E=1, or FALCO_K8S_E2E_ASSETS set);
// see internal/kubetest. Run it with `make e2e-kube`.
//
// e2e/kube-apiserver is a separate tools module (its own go.mod) that only pins kube-apiserver's
// build; it is not part of this package.
package e2e
