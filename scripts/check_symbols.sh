#!/bin/sh
# Fails if Ringside defines a global symbol that a shared library it links
# also defines. The executable's definition would win for the library's
# own calls too: a json_string() of ours once replaced jansson's inside
# libjwt, and every token signature failed as "out of memory".
# Usage: scripts/check_symbols.sh BINARY OBJECT...
set -eu
bin=$1
shift
ours=$(mktemp)
theirs=$(mktemp)
trap 'rm -f "$ours" "$theirs"' EXIT
nm -g --defined-only "$@" | awk 'NF == 3 { print $3 }' | sort -u >"$ours"
for lib in $(ldd "$bin" | awk '$3 ~ /^\// { print $3 }'); do
	nm -D --defined-only "$lib" | awk 'NF >= 3 { sub(/@.*/, "", $3); print $3 }'
done | sort -u >"$theirs"
clash=$(comm -12 "$ours" "$theirs")
if [ -n "$clash" ]; then
	echo "check_symbols: $bin defines symbols its libraries define too:" $clash >&2
	echo "check_symbols: rename them (module prefix) so they cannot replace the library's" >&2
	exit 1
fi
