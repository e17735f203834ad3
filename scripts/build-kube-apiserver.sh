#!/usr/bin/env bash
# Builds the kube-apiserver that the end-to-end tier runs, from the module proxy (the pinned
# k8s.io/kubernetes in e2e/kube-apiserver/go.mod), into a cache directory keyed by version, and
# prints the directory holding the binary. A cached binary is reused: the cold build takes 5-10
# minutes and ~1.5 GB of RAM on a 2-core machine, so repeated CI runs on one machine skip it.
#
# Usage: scripts/build-kube-apiserver.sh        (prints e.g. ~/.cache/falco-k8s/k8s-v1.31.4)
# Env:   FALCO_K8S_E2E_ASSETS=DIR  build into DIR instead of the cache directory
#        FORCE=1                   rebuild even when the binary exists
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TOOLS=$ROOT/e2e/kube-apiserver
GO=${GO:-go}

# The version comes from the tools module so the pin lives in exactly one place.
VERSION=$(awk '$1 == "require" && $2 == "k8s.io/kubernetes" { print $3 }' "$TOOLS/go.mod")
[ -n "$VERSION" ] || { echo "build-kube-apiserver: no k8s.io/kubernetes require in $TOOLS/go.mod" >&2; exit 2; }
MINOR=$(echo "$VERSION" | cut -d. -f2)
MAJOR=$(echo "${VERSION#v}" | cut -d. -f1)

OUT=${FALCO_K8S_E2E_ASSETS:-${XDG_CACHE_HOME:-$HOME/.cache}/falco-k8s/k8s-$VERSION}
BIN=$OUT/kube-apiserver
if [ -x "$BIN" ] && [ "${FORCE:-0}" != 1 ]; then
	echo "build-kube-apiserver: using cached $BIN" >&2
	echo "$OUT"
	exit 0
fi
mkdir -p "$OUT"

# Without the version ldflags the server reports v0.0.0-master and clients (kubectl version,
# discovery) cannot parse it.
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
	ldflags="$ldflags -X $pkg.gitVersion=$VERSION -X $pkg.gitMajor=$MAJOR -X $pkg.gitMinor=$MINOR"
	ldflags="$ldflags -X $pkg.gitTreeState=clean"
done

echo "build-kube-apiserver: building kube-apiserver $VERSION into $OUT (cold: 5-10 min)" >&2
start=$(date +%s)
tmp=$(mktemp "$OUT/.kube-apiserver.XXXXXX")
trap 'rm -f "$tmp"' EXIT
# go.sum is complete (go mod tidy keeps it so through tools.go), so the build only downloads the
# pinned modules; CGO off gives a static binary like upstream's release builds.
(cd "$TOOLS" && CGO_ENABLED=0 "$GO" build -trimpath -ldflags "$ldflags" -o "$tmp" k8s.io/kubernetes/cmd/kube-apiserver)
chmod 0755 "$tmp"
# Rename last so an interrupted build never leaves a binary the skip check would trust.
mv -f "$tmp" "$BIN"
trap - EXIT
echo "build-kube-apiserver: built $BIN in $(($(date +%s) - start))s" >&2
echo "$OUT"
