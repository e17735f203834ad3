#!/usr/bin/env bash
# falco-k8s demo: Kubernetes audit events flow through the built-in default ruleset
# (rules/k8s_audit_default.yaml) and come out as Falco alerts.
#
#   1. the ruleset is validated like `falco -V`;
#   2. crafted events (examples/audit-events.jsonl: benign traffic and an attack story) are
#      replayed, as Falco text alerts and then as Falco JSON alerts;
#   3. if ../shared is present, real kube-apiserver 1.31 webhook batches are replayed too;
#   4. `falco-k8s agent` runs with its built-in rules and embedded default configuration, the
#      same events and batches are POSTed to its webhook, and its alerts, /status and /metrics
#      are shown before a graceful SIGTERM.
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

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# demo_agent runs `falco-k8s agent` with only its built-in rules and the embedded default
# configuration, posts audit batches to its webhook as kube-apiserver does, and shows the alerts,
# /status and a few Prometheus metrics.
demo_agent() {
	local port dir pid url
	port=$(free_port)
	dir=$(mktemp -d)
	url=http://127.0.0.1:$port
	heading "Starting the agent: built-in rules, embedded default config, webhook on $url/k8s-audit"
	"$BIN" agent -o webhook.listen=127.0.0.1:$port -o rules.state_dir="$dir/state" \
		-o log.format=text >"$dir/alerts.txt" 2>"$dir/agent.log" &
	pid=$!
	# shellcheck disable=SC2064 # expand now: the trap must stop this agent
	trap "kill $pid 2>/dev/null; rm -rf '$dir'" EXIT
	for _ in $(seq 100); do
		curl -fsS "$url/readyz" >/dev/null 2>&1 && break
		sleep 0.1
	done
	curl -fsS "$url/readyz" >/dev/null || { cat "$dir/agent.log" >&2; return 1; }

	heading "POSTing $(wc -l <"$EXAMPLES") crafted events (one Event per request, one gzipped)"
	local n=0
	while IFS= read -r line; do
		n=$((n + 1))
		if ((n == 1)); then
			printf '%s' "$line" | gzip -c | curl -fsS -o /dev/null -H 'Content-Type: application/json' \
				-H 'Content-Encoding: gzip' --data-binary @- "$url/k8s-audit"
		else
			printf '%s' "$line" | curl -fsS -o /dev/null -H 'Content-Type: application/json' \
				--data-binary @- "$url/k8s-audit"
		fi
	done <"$EXAMPLES"
	if [[ -f $APISERVER_BATCHES ]]; then
		heading "POSTing real kube-apiserver 1.31 EventList batches ($APISERVER_BATCHES)"
		while IFS= read -r line; do
			printf '%s' "$line" | curl -fsS -o /dev/null -H 'Content-Type: application/json' \
				--data-binary @- "$url/k8s-audit?timeout=30s"
		done <"$APISERVER_BATCHES"
	fi
	heading "A malformed batch gets a clear 400 and the agent keeps serving"
	curl -sS -H 'Content-Type: application/json' --data-binary '{"kind":"EventList","items":[' "$url/k8s-audit"
	echo

	# The webhook acknowledges once a batch is queued; wait until the workers evaluated it all.
	for _ in $(seq 50); do
		curl -fsS "$url/status" | python3 -c 'import json,sys; e=json.load(sys.stdin)["events"]; sys.exit(e["evaluated"] < e["received"])' && break
		sleep 0.1
	done
	heading "Alerts written by the agent's stdout output"
	cat "$dir/alerts.txt"
	heading "Log-only review of the agent's alert journal (falco-k8s alerts review --url)"
	first_lines 40 "$BIN" alerts review --url "$url"
	heading "GET /status (ruleset and counters)"
	curl -fsS "$url/status" | python3 -c 'import json,sys; s=json.load(sys.stdin); print(json.dumps({k: s[k] for k in ("ruleset", "events") if k in s}, indent=2))'
	heading "GET /metrics (falco_k8s_events_* and alerts)"
	curl -fsS "$url/metrics" | grep -E '^falco_k8s_(events|alerts)_' | head -n 20 || true
	heading "SIGTERM: the agent drains its queue and stops"
	kill -TERM "$pid"
	wait "$pid" || true
	tail -n 3 "$dir/agent.log"
	trap - EXIT
	rm -rf "$dir"
}

main() {
	build
	demo_rules
	demo_examples
	demo_apiserver
	demo_agent
	heading "Done"
}

main "$@"
