#!/usr/bin/env bash
# End-to-end check of falco-k8s's falcoctl-compatible artifact commands
# against Debian's docker-registry running as a separate process with
# htpasswd auth on 127.0.0.1.
#
# Usage: scripts/e2e-registry.sh [path/to/falco-k8s]
# Needs: docker-registry, htpasswd (apache2-utils). Exits non-zero on failure.
set -euo pipefail

BIN=${1:-${FALCO_K8S_BIN:-./falco-k8s}}
BIN=$(cd "$(dirname "$BIN")" && pwd)/$(basename "$BIN")
[ -x "$BIN" ] || { echo "e2e: binary $BIN not found or not executable; build it with: go build -o falco-k8s ./cmd/falco-k8s" >&2; exit 2; }
for tool in docker-registry htpasswd curl; do
	command -v "$tool" >/dev/null || { echo "e2e: $tool not installed (apt-get install -y docker-registry apache2-utils curl)" >&2; exit 2; }
done

WORK=$(mktemp -d)
REG_PID=""
cleanup() {
	local rc=$?
	if [ -n "$REG_PID" ] && kill -0 "$REG_PID" 2>/dev/null; then
		kill "$REG_PID" 2>/dev/null || true
		wait "$REG_PID" 2>/dev/null || true
	fi
	if [ "$rc" -ne 0 ] && [ -f "$WORK/registry.log" ]; then
		echo "--- registry log (tail) ---" >&2
		tail -n 30 "$WORK/registry.log" >&2 || true
	fi
	rm -rf "$WORK"
	exit "$rc"
}
trap cleanup EXIT INT TERM

fail() { echo "e2e: FAIL: $*" >&2; exit 1; }
step() { echo "e2e: $*"; }

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
HOST=127.0.0.1:$PORT
USER_NAME=e2e-user
USER_PASS='e2e-pass-7'

htpasswd -Bbn "$USER_NAME" "$USER_PASS" >"$WORK/htpasswd"
cat >"$WORK/registry.yml" <<YAML
version: 0.1
log:
  level: warn
storage:
  inmemory: {}
  delete:
    enabled: true
http:
  addr: $HOST
auth:
  htpasswd:
    realm: e2e
    path: $WORK/htpasswd
YAML
docker-registry serve "$WORK/registry.yml" >"$WORK/registry.log" 2>&1 &
REG_PID=$!
for _ in $(seq 1 50); do
	code=$(curl -s -o /dev/null -w '%{http_code}' "http://$HOST/v2/" || true)
	[ "$code" = 401 ] && break
	sleep 0.1
done
[ "${code:-}" = 401 ] || fail "registry did not start on $HOST"
step "registry up on $HOST (pid $REG_PID)"

export HOME=$WORK/home
mkdir -p "$HOME"
CFG=$WORK/falcoctl.yaml
cat >"$CFG" <<YAML
indexes: []
registry:
  creds:
    config: $WORK/docker/config.json
  tls:
    - registry: $HOST
      plainHTTP: true
YAML
fk() { "$BIN" "$@" --config "$CFG" --log-format json; }

cat >"$WORK/e2e_rules.yaml" <<'YAML'
- required_engine_version: 0.31.0
- rule: E2E rule
  desc: e2e
  condition: ka.verb = create
  output: e2e %ka.verb
  priority: WARNING
  source: k8s_audit
YAML
REPO=$HOST/e2e/rules/e2e-rules

step "push without credentials fails with a hint"
if out=$(fk registry push "$REPO:1.0.0" "$WORK/e2e_rules.yaml" --type rulesfile --version 1.0.0 2>&1); then
	fail "push without credentials succeeded"
fi
grep -q "registry auth basic" <<<"$out" || fail "no auth hint in: $out"

step "auth basic with a wrong password fails and stores nothing"
if fk registry auth basic "$HOST" -u "$USER_NAME" -p wrong >/dev/null 2>&1; then fail "bad login accepted"; fi
[ ! -e "$WORK/docker/config.json" ] || fail "credentials stored after a failed login"

step "auth basic (password on stdin)"
printf '%s\n' "$USER_PASS" | fk registry auth basic "$HOST" -u "$USER_NAME" --password-stdin
[ "$(stat -c %a "$WORK/docker/config.json")" = 600 ] || fail "docker config is not 0600"

step "push 1.0.0 and 1.1.0-rc1 with floating tags"
fk registry push "$REPO" "$WORK/e2e_rules.yaml" --type rulesfile --version 1.0.0 --add-floating-tags
fk registry push "$REPO" "$WORK/e2e_rules.yaml" --type rulesfile --version 1.1.0-rc1 --add-floating-tags

step "info lists tags; the prerelease did not move 1"
info=$(fk artifact info "$REPO")
tags=$(awk 'NR>1{$1=""; print}' <<<"$info" | tr -d ' ')
for t in 1 1.0 1.0.0 1.1.0-rc1; do grep -Eq "(^|,)$t(,|$)" <<<"$tags" || fail "tag $t missing: $info"; done
if grep -Eq "(^|,)(1\.1|latest)(,|$)" <<<"$tags"; then fail "prerelease moved a floating tag: $info"; fi
cfg1=$(fk artifact config "$REPO:1")
grep -q '"version":"1.0.0"' <<<"$cfg1" || fail "tag 1 moved to a prerelease: $cfg1"
grep -q '"requirements":\[{"name":"engine_version_semver","version":"0.31.0"}\]' <<<"$cfg1" || fail "requirement not derived: $cfg1"

step "pull writes the raw layer"
fk registry pull "$REPO:1.0.0" -o "$WORK/pulled"
tar -tzf "$WORK/pulled/e2e_rules.tar.gz" | grep -qx e2e_rules.yaml || fail "pulled archive content"

step "install with env credentials (no docker store)"
mv "$WORK/docker/config.json" "$WORK/docker/config.json.bak"
RULES=$WORK/rules STATE=$WORK/state
FALCOCTL_REGISTRY_AUTH_BASIC="$HOST,$USER_NAME,$USER_PASS" \
	fk artifact install "$REPO:1" --rulesfiles-dir "$RULES" --state-dir "$STATE" 2>"$WORK/install.log"
cmp -s "$RULES/e2e_rules.yaml" "$WORK/e2e_rules.yaml" || fail "installed file differs"
grep -q "$USER_PASS" "$WORK/install.log" && fail "password leaked into logs"
mv "$WORK/docker/config.json.bak" "$WORK/docker/config.json"
sf=$(ls "$STATE/.falcoctl/artifact-state/"*.json)
want=$(printf '%s' "$REPO:1" | sha256sum | cut -d' ' -f1)
[ "$(basename "$sf" .json)" = "$want" ] || fail "state file name is not sha256(ref)"
[ "$(stat -c %a "$sf")" = 600 ] || fail "state file mode"
grep -q '"digest":"sha256:' "$sf" || fail "state file content"

step "re-install is a no-op (already current)"
fk artifact install "$REPO:1" --rulesfiles-dir "$RULES" --state-dir "$STATE" 2>&1 | grep -q '"current":true' || fail "second install was not a no-op"

step "hostile artifact (path traversal) is rejected and the destination untouched"
python3 - "$WORK/evil.tar.gz" <<'PY'
import io, sys, tarfile
with tarfile.open(sys.argv[1], "w:gz") as t:
    data = b"owned"
    ti = tarfile.TarInfo("../../evil.yaml"); ti.size = len(data)
    t.addfile(ti, io.BytesIO(data))
PY
fk registry push "$HOST/e2e/evil:1" "$WORK/evil.tar.gz" --type rulesfile --version 1.0.0
before=$(ls -la "$RULES" | sha256sum)
if fk artifact install "$HOST/e2e/evil:1" --rulesfiles-dir "$RULES" --state-dir "$STATE" 2>"$WORK/evil.log"; then fail "hostile artifact installed"; fi
grep -q "path traversal" "$WORK/evil.log" || fail "no clear traversal error: $(cat "$WORK/evil.log")"
[ "$(ls -la "$RULES" | sha256sum)" = "$before" ] || fail "destination changed"
[ ! -e "$WORK/evil.yaml" ] || fail "traversal wrote outside the destination"

step "index add (file://) and install by index name"
cat >"$WORK/index.yaml" <<YAML
- name: e2e-rules
  type: rulesfile
  registry: $HOST
  repository: e2e/rules/e2e-rules
YAML
fk index add e2e "file://$WORK/index.yaml"
fk index list | grep -q '^e2e ' || fail "index list"
fk artifact search e2e-rules | grep -q 'e2e-rules' || fail "search"
fk artifact install e2e-rules:1.0.0 --rulesfiles-dir "$WORK/rules2" --state-dir "$WORK/state2"
[ -f "$WORK/rules2/e2e_rules.yaml" ] || fail "install by index name"

echo "e2e: PASS"
