#!/bin/sh
# A self-signed certificate for serving HTTPS on this machine: `make run
# ARGS=--tls`, perf/bench_tls.sh and the TLS black-box tests.
# Usage: scripts/tls_cert.sh DIR [ec|rsa]
#
# Makes DIR/cert.pem and DIR/key.pem once: when both exist it does
# nothing (whatever their kind), so a key is never replaced under a
# running server. The certificate names localhost and 127.0.0.1
# (subjectAltName DNS:localhost, IP:127.0.0.1: clients match the name
# they dialled against the SAN, not the CN), is valid 365 days (scanners
# such as testssl flag longer lives, the CA/Browser limit being 398) and
# is its own CA, so `curl --cacert DIR/cert.pem` trusts it.
#   ec   EC P-256 key (the default: the handshake's signature is ~20x
#        cheaper to make than RSA-2048's)
#   rsa  RSA 2048
# Both files are readable by their owner only (0600): the key is secret
# and the pair is one thing. An expired certificate is reported, not
# replaced: remove both files to have new ones.
set -eu

me=tls_cert.sh
[ $# -ge 1 ] && [ $# -le 2 ] || { echo "usage: $me DIR [ec|rsa]" >&2; exit 2; }
dir=$1 kind=${2:-ec}
case $kind in
ec) alg="-newkey ec -pkeyopt ec_paramgen_curve:P-256" ;;
rsa) alg="-newkey rsa:2048" ;;
*) echo "$me: key kind \"$kind\": ec or rsa" >&2; exit 2 ;;
esac
cert=$dir/cert.pem key=$dir/key.pem

if [ -e "$cert" ] && [ -e "$key" ]; then
	if ! openssl x509 -in "$cert" -noout -checkend 0 >/dev/null 2>&1; then
		echo "$me: $cert has expired (or is unreadable): rm $cert $key to make new ones" >&2
	fi
	exit 0
fi
if [ -e "$cert" ] || [ -e "$key" ]; then
	echo "$me: only one of $cert and $key exists: remove it, or give the other" >&2
	exit 1
fi
command -v openssl >/dev/null || { echo "$me: no openssl (scripts/deps.sh installs it)" >&2; exit 1; }

mkdir -p "$dir"
umask 077
tmp=$(mktemp -d "$dir/.tls_cert.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
# shellcheck disable=SC2086 # $alg is the words of the key's options
openssl req -x509 $alg -nodes -sha256 -days 365 \
	-subj "/CN=localhost" \
	-addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
	-addext "keyUsage=critical,digitalSignature,keyCertSign" \
	-addext "extendedKeyUsage=serverAuth" \
	-keyout "$tmp/key.pem" -out "$tmp/cert.pem" 2>"$tmp/err" ||
	{ cat "$tmp/err" >&2; echo "$me: openssl req failed" >&2; exit 1; }
chmod 600 "$tmp/key.pem" "$tmp/cert.pem"
# The key first: a cert.pem without its key.pem is never left behind.
mv "$tmp/key.pem" "$key"
mv "$tmp/cert.pem" "$cert"
echo "$me: made $cert and $key ($kind, self-signed for localhost and 127.0.0.1, 365 days)"
