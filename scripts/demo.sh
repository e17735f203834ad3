#!/usr/bin/env bash
# falco-k8s demo: Kubernetes audit events flow through the built-in default ruleset
# (rules/k8s_audit_default.yaml) and come out as Falco alerts.
#
#   1. the ruleset is validated like `falco -V`;
#   2. crafted events (examples/audit-events.jsonl: benign traffic and an attack story) are
#      replayed, as Falco text alerts and then as Falco JSON alerts;
#   3. if ../shared is present, real kube-apiserver 1.31 webhook batches are replayed too.
#
# Run from anywhere: `make run` or `scripts/demo.sh`. Builds bin/falco-k8s if it is missing.
# SHARED overrides the location of the shared test data (default ../shared).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

BIN=bin/falco-k8s
RULES=rules/k8s_audit_default.yaml
EXAMPLES=examples/audit-events.jsonl
SHARED=${SHARED:-../shared}
APISERVER_BATCHES=$SHARED/testdata/apiserver-1.31/audit-batches.jsonl

heading() { printf '\n==> %s\n' "$*"; }

# first_lines N CMD...: the first N lines of CMD's stdout. head closing the pipe early is not a
# failure of CMD; any other failure is.
first_lines() {
	local n=$1
	shift
	local status
	set +o pipefail
	"$@" | head -n "$n"
	status=${PIPESTATUS[0]}
	set -o pipefail
	if ((status != 0 && status != 141)); then
		return "$status"
	fi
}

build() {
	if [[ ! -x $BIN ]]; then
		heading "Building $BIN"
		"${MAKE:-make}" build
	fi
}

demo_rules() {
	heading "Built-in ruleset: $RULES (also compiled into the binary)"
	"$BIN" rules validate -r "$RULES"
	printf '%s rules\n' "$("$BIN" rules list -r "$RULES" | tail -n +2 | wc -l)"
}

demo_examples() {
	heading "Replaying $(wc -l <"$EXAMPLES") crafted audit events ($EXAMPLES): Falco text alerts"
	"$BIN" replay -r "$RULES" "$EXAMPLES"

	heading "The same events as Falco JSON alerts (first 3)"
	first_lines 3 "$BIN" replay -r "$RULES" --json "$EXAMPLES" 2>/dev/null
}

demo_apiserver() {
	if [[ ! -f $APISERVER_BATCHES ]]; then
		heading "Skipping real kube-apiserver batches: $APISERVER_BATCHES not found"
		return 0
	fi
	heading "Replaying real kube-apiserver 1.31 webhook batches ($APISERVER_BATCHES)"
	printf 'privileged hostNetwork pod "evil", a configmap, a delete and plain pods p1..p3:\n'
	"$BIN" replay -r "$RULES" --all-matches "$APISERVER_BATCHES"
}

# The agent demo (kube-apiserver's webhook client posting to `falco-k8s agent`) plugs in here
# once the agent exists: demo_agent.

main() {
	build
	demo_rules
	demo_examples
	demo_apiserver
	heading "Done"
}

main "$@"
