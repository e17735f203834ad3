// Package charm is the Juju side of falco-k8s: the hook context (environment, hook tools,
// Pebble, Kubernetes) and the one idempotent reconcile every hook runs.
//
// The compiled falco-k8s binary is the charm's `dispatch`. Juju runs it with
// JUJU_DISPATCH_PATH=hooks/<hook> or actions/<action>; Main builds a Context and hands it to
// the hook or action handler (packages hooks and actions). Every hook converges the workload
// on the same desired state computed from config, secrets and the charm binary itself:
//
//   - the agent binary (this executable, multi-call) and its generated agent.yaml, credential
//     and CA files are pushed into the `falco` container through Pebble, only when their
//     content changed (a small manifest of hashes lives next to them in the container, so a
//     restarted container, which lost them, gets them again);
//   - the Pebble layer (service `agent`, HTTP checks on /healthz and /readyz) carries the hash
//     of everything the agent reads at start-up, so Replan restarts the agent exactly when
//     something it reads changed, and never otherwise;
//   - open-port, application-version-set, and a status derived from the agent's /status;
//   - with the peer relation (peers.go), the application's shared state: the leader's agent
//     polls and the leader publishes what it accepted, every other agent is pinned to it; the
//     shared tuning file; the peer API token; the application status.
//
// With engine=falco (falco_engine.go, falco_status.go) the same reconcile also writes Falco's
// configuration (k8saudit webhook on the webhook port, the agent's rules directory, JSON alerts
// piped to `falco-k8s falco-forward`, Juju topology appended) and a second Pebble service,
// `falco`, which Falco reloads itself (watch_config_files), so its files stay out of the
// agent's hash; the status names Falco and its version, or why Falco is not running.
//
// Every hook tool is a process and a controller round trip, so a hook asks Juju only for what
// it may not know: a record in the charm directory (jujurecord.go, written only after a
// successful hook, ignored in upgrade-charm, gone with the pod) holds the status, application
// version, open port and databag hashes Juju already has, and the manifest caches what the
// relations contributed, so a relation hook reads only its own relation.
//
// User mistakes (invalid options, a missing Kubernetes Secret, an ungranted Juju secret) give
// `blocked` with the fix; an unreachable Pebble gives `waiting`; only bugs and hook-tool
// failures make a hook fail. Credentials are read into memory, written into the container with
// mode 0600 and redacted from every status, log line and action result.
//
// Outside Juju (tests, local runs) environment variables replace what Juju's pod
// provides: FALCO_K8S_PEBBLE_SOCKET (the workload Pebble socket instead of
// /charm/containers/falco/pebble.socket), FALCO_K8S_WORKLOAD_ROOT (a directory prefixed to every
// path in the container, because a test Pebble shares the host's filesystem) and
// FALCO_K8S_KUBECONFIG (a kubeconfig instead of the in-cluster service account);
// FALCO_K8S_FALCO_BINARY and FALCO_K8S_FALCO_PLUGINS_DIR point engine=falco at a Falco outside
// the image's /usr/bin/falco and /usr/share/falco/plugins (the tests' ../shared/falco).
package charm
