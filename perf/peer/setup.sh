#!/bin/sh
# Installs the peer of perf/bench_token.sh: oidc-provider at the version
# package-lock.json pins, into perf/peer/node_modules, with npm's cache in
# var/npm-cache (both ignored by git). Node.js and npm come from the
# machine; where there are none, Debian's nodejs and npm (Node 18, which
# oidc-provider 8 supports: its 9.x wants Node 22). Prints nothing and
# touches no network when the installed tree matches the lock file, so
# bench_token.sh calls it every time.
set -eu
cd "$(dirname "$0")"
root=$(cd ../.. && pwd -P)

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "sudo apt-get install -y --no-install-recommends nodejs npm" >&2
		exit 1
	fi
	apt-get update
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nodejs npm
fi

want=$(sha256sum package-lock.json | cut -d' ' -f1)
stamp=node_modules/.ringside-lock-sha256
if [ -r "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
	exit 0
fi
npm ci --cache "$root/var/npm-cache" --prefer-offline --no-audit --no-fund --loglevel=error >&2
echo "$want" >"$stamp"
