#!/usr/bin/env bash
# Runs every native Go fuzz target of the module for FUZZTIME each (default 10s), one after
# another (go test -fuzz takes one target per run). Targets are discovered from the source, so a
# new parser's fuzz test is picked up without editing this script or the Makefile.
#
# Usage: scripts/fuzz.sh [PATTERN]     (PATTERN filters target names, e.g. Parse)
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
FUZZTIME=${FUZZTIME:-10s}
pattern=${1:-.}

# file:line:func FuzzName(  →  "./pkg FuzzName"
mapfile -t targets < <(git ls-files '*_test.go' 2>/dev/null | xargs grep -H '^func Fuzz[A-Za-z0-9_]*(' |
	sed -E 's#^(.*)/[^/]*_test\.go:func (Fuzz[A-Za-z0-9_]*)\(.*#./\1 \2#' | grep -E " .*${pattern}" | sort -u)
if [ ${#targets[@]} -eq 0 ]; then
	echo "fuzz: no targets match $pattern" >&2
	exit 1
fi
failed=0
for t in "${targets[@]}"; do
	pkg=${t% *}
	name=${t#* }
	echo "fuzz: $name in $pkg for $FUZZTIME"
	# A target in a nested tools module (its own go.mod) runs from that module.
	dir=$pkg
	while [ "$dir" != . ] && [ ! -f "$dir/go.mod" ]; do dir=$(dirname "$dir"); done
	if ! (cd "$dir" && "$GO" test -run '^$' -fuzz "^${name}\$" -fuzztime "$FUZZTIME" "./${pkg#"$dir"}"); then
		failed=$((failed + 1))
	fi
done
echo "fuzz: ${#targets[@]} targets, $failed failed"
[ "$failed" -eq 0 ]
