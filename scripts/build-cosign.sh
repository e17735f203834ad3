#!/usr/bin/env bash
# Builds the real cosign that the signature tests run, from the module proxy (the pinned
# github.com/sigstore/cosign/v2 in e2e/cosign/go.mod), into a cache directory keyed by version,
# and prints the directory holding the binary. A cached binary is reused: the cold build takes a
# few minutes on a 2-core machine, so repeated CI runs on one machine skip it.
#
# Usage: scripts/build-cosign.sh        (prints e.g. ~/.cache/falco-k8s/cosign-v2.6.5)
# Env:   FALCO_K8S_COSIGN_DIR=DIR  build into DIR instead of the cache directory
#        FORCE=1                   rebuild even when the binary exists
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TOOLS=$ROOT/e2e/cosign
GO=${GO:-go}

# The version comes from the tools module so the pin lives in exactly one place.
VERSION=$(awk '$1 == "require" && $2 == "github.com/sigstore/cosign/v2" { print $3 }' "$TOOLS/go.mod")
[ -n "$VERSION" ] || { echo "build-cosign: no github.com/sigstore/cosign/v2 require in $TOOLS/go.mod" >&2; exit 2; }

OUT=${FALCO_K8S_COSIGN_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/falco-k8s/cosign-$VERSION}
BIN=$OUT/cosign
if [ -x "$BIN" ] && [ "${FORCE:-0}" != 1 ]; then
	echo "build-cosign: using cached $BIN" >&2
	echo "$OUT"
	exit 0
fi
mkdir -p "$OUT"

echo "build-cosign: building cosign $VERSION into $OUT (cold: a few minutes)" >&2
start=$(date +%s)
tmp=$(mktemp "$OUT/.cosign.XXXXXX")
trap 'rm -f "$tmp"' EXIT
# go.sum is complete (go mod tidy keeps it so through tools.go), so the build only downloads the
# pinned modules. The version ldflag makes `cosign version` report the pin.
(cd "$TOOLS" && CGO_ENABLED=0 "$GO" build -trimpath \
	-ldflags "-s -w -X sigs.k8s.io/release-utils/version.gitVersion=$VERSION" \
	-o "$tmp" github.com/sigstore/cosign/v2/cmd/cosign)
chmod 0755 "$tmp"
# Rename last so an interrupted build never leaves a binary the skip check would trust.
mv -f "$tmp" "$BIN"
trap - EXIT
echo "build-cosign: built $BIN in $(($(date +%s) - start))s" >&2
echo "$OUT"
