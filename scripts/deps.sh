#!/bin/sh
# shellcheck disable=SC2086 # package lists are split on purpose
# Installs the Debian 12 packages Ringside needs (DESIGN.md "Dependencies").
# Prints nothing and touches no network when all are present, so `make run`
# and `make test` can call it every time.
set -eu

# build
# (tokens are signed and verified with libssl's libcrypto: no libjwt)
PKGS="gcc make pkg-config liburing-dev libpq-dev libbearssl-dev
libssl-dev libcmocka-dev zlib1g-dev"
# make run: its RS256 key pair (openssl genpkey)
PKGS="$PKGS openssl"
# tests and benchmarks (prometheus ships promtool; libhttp-parser-dev and
# libjansson-dev are the peers of the parser and validator microbenchmarks;
# python3-prometheus-client's strict OpenMetrics parser checks /metrics/fleet;
# python3-jwt (PyJWT) verifies our tokens with our JWK Set, independently)
PKGS="$PKGS clang nginx-light wrk curl prometheus postgresql libhttp-parser-dev python3-prometheus-client
libjansson-dev python3-jwt"
# testssl.sh (/usr/bin/testssl) scans the HTTPS listener for weak
# protocols, suites and known TLS flaws from outside, as an auditor would
# (tests/blackbox/test_bb_tls_peers.c): an independent check, not ours
PKGS="$PKGS testssl.sh"

# A package counts as installed when dpkg's status letter is 'i' ("ii", "hi").
installed=$(dpkg-query -W -f='${Package} ${db:Status-Abbrev}\n' $PKGS \
	2>/dev/null | awk 'substr($2, 2, 1) == "i" { print $1 }') || true
missing=
for p in $PKGS; do
	printf '%s\n' "$installed" | grep -qx "$p" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "sudo apt-get install -y --no-install-recommends$missing" >&2
	exit 1
fi
apt-get update
DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing

# Debian starts these services on install. Tests and benchmarks run their
# own private instances, so stop the system ones to keep their ports free.
services=
for p in $missing; do
	case $p in
	nginx-light) services="$services nginx" ;;
	prometheus | postgresql) services="$services $p" ;;
	esac
done
[ -z "$services" ] && exit 0
if [ -d /run/systemd/system ]; then
	systemctl disable --now $services || true
else
	for s in $services; do
		service "$s" stop || true
	done
fi
