#!/bin/bash
# HTTPS: Ringside beside nginx (Debian's nginx-light, OpenSSL), in one run,
# with the same certificate (EC P-256 or RSA-2048, scripts/tls_cert.sh), TLS 1.2 only
# and the same suite forced on both sides (BENCH_TLS_CIPHER, default
# ECDHE-ECDSA-AES128-GCM-SHA256), the same ECDHE groups offered.
#
# Scenarios (BENCH_TLS_SCENARIOS, in that order):
#   health   keep-alive GET /health, wrk -t1 -cC over TLS
#   ingest   keep-alive POST /api/metrics/ingest of ingest-full.json, wrk
#            with perf/ingest.lua (as perf/bench.sh; nginx reads the body
#            and answers 202)
#   full     full handshakes a second: perf/tls_handshakes, H threads,
#            each a new connection + handshake + GET /health per request
#   resumed  the same, every handshake resuming its thread's first
#            session by session ID (nginx: shared session cache, tickets
#            off, as Ringside's cache)
# Servers on CPU 1, the load generators on CPU 0 (taskset;
# BENCH_TLS_PIN=0 pins nothing), BENCH_WORKERS workers each. Rounds
# alternate the servers' order; the medians of the rounds are printed,
# then the ratios Ringside/nginx against the goals: keep-alive >= 1.0x,
# full handshakes >= 0.5x, resumed >= 1.0x.
#
# The server's CPU: each run also reads the server's CPU time
# (/proc/PID/stat, nginx's master and workers, Ringside's threads). One
# generator core cannot make handshakes as fast as one server core takes
# them (OpenSSL 3.0's client costs more per handshake than nginx's side:
# nginx used about a third of its core while the generator's was full),
# so the handshake rates are the generator's limit; "per core" (the
# rate / the server's busy fraction of a core) is then the server's
# capacity, and the goals are judged on it. The raw rates are printed
# too.
#
# wrk and perf/tls_handshakes read one OpenSSL client config
# (OPENSSL_CONF): TLS 1.2 only, the one suite, groups X25519:P-256; a
# server that cannot agree fails the handshake, and the run says so.
#
# Without --tls-cert in `$RINGSIDE_BIN --help`, the script says "Ringside
# not measured: no --tls-cert" and measures nginx alone.
#
# Env: BENCH_TLS=1 (0: skip, for make bench) BENCH_ROUNDS=3
#      BENCH_DURATION=5 (seconds) BENCH_WARMUP=1 BENCH_CONNECTIONS=50 (wrk)
#      BENCH_TLS_HANDSHAKE_CONNECTIONS=4 BENCH_WORKERS=1 BENCH_TLS_PIN=1
#      BENCH_TLS_SCENARIOS="health ingest full resumed"
#      BENCH_TLS_KEY=ec (or rsa: an RSA-2048 certificate for both servers)
#      BENCH_TLS_CIPHER=ECDHE-ECDSA-AES128-GCM-SHA256 (rsa:
#      ECDHE-RSA-AES128-GCM-SHA256)
#      RINGSIDE_BIN=build/ringside RINGSIDE_SAMPLES=samples PERF_BIN_DIR=build/perf
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=perf/lib.sh
. perf/lib.sh

die() { echo "bench_tls: $*" >&2; exit 1; }
note() { echo "bench_tls: $*" >&2; }

if [ "${BENCH_TLS:-1}" = 0 ]; then
	note "skipped (BENCH_TLS=0)"
	exit 0
fi
rounds=${BENCH_ROUNDS:-3} duration=${BENCH_DURATION:-5} warmup=${BENCH_WARMUP:-1}
conns=${BENCH_CONNECTIONS:-50} hconns=${BENCH_TLS_HANDSHAKE_CONNECTIONS:-4}
workers=${BENCH_WORKERS:-1} pin=${BENCH_TLS_PIN:-1}
scenarios=${BENCH_TLS_SCENARIOS:-health ingest full resumed}
key_type=${BENCH_TLS_KEY:-ec}
case $key_type in
ec) cipher=${BENCH_TLS_CIPHER:-ECDHE-ECDSA-AES128-GCM-SHA256} ;;
rsa) cipher=${BENCH_TLS_CIPHER:-ECDHE-RSA-AES128-GCM-SHA256} ;;
*) die "BENCH_TLS_KEY must be ec or rsa, not \"$key_type\"" ;;
esac
groups=X25519:P-256
ringside=${RINGSIDE_BIN:-build/ringside}
samples=${RINGSIDE_SAMPLES:-samples}
bindir=${PERF_BIN_DIR:-build/perf}
nginx=/usr/sbin/nginx
out=build/bench/latest.md
server_cpu=1 gen_cpu=0
cmd_limit=30

for v in rounds duration warmup conns hconns workers; do
	case ${!v} in '' | *[!0-9]*) die "$v must be a whole number, not \"${!v}\"" ;; esac
done
if [ "$rounds" -lt 1 ] || [ "$duration" -lt 1 ]; then die "BENCH_ROUNDS and BENCH_DURATION: at least 1"; fi
for sc in $scenarios; do
	case $sc in health | ingest | full | resumed) ;; *) die "unknown scenario \"$sc\"" ;; esac
done
command -v wrk >/dev/null || die "no wrk (scripts/deps.sh installs it)"
command -v curl >/dev/null || die "no curl (scripts/deps.sh installs it)"
[ -x "$nginx" ] || die "no $nginx (scripts/deps.sh installs nginx-light)"
"$nginx" -V 2>&1 | grep -q -- --with-http_ssl_module || die "$nginx has no ssl module (nginx -V)"
[ -x "$bindir/tls_handshakes" ] || die "no $bindir/tls_handshakes (make bench builds it)"
[ -x "$ringside" ] || die "no $ringside (make bench builds it)"
[ -r "$samples/ingest-full.json" ] ||
	die "no $samples/ingest-full.json (set RINGSIDE_SAMPLES to the samples directory)"
samples=$(cd "$samples" && pwd)
if [ "$pin" = 1 ]; then
	taskset -c "$server_cpu,$gen_cpu" true 2>/dev/null ||
		die "pinning needs CPUs $server_cpu and $gen_cpu (BENCH_TLS_PIN=0 runs without)"
	srv_pin=(taskset -c "$server_cpu") gen_pin=(taskset -c "$gen_cpu")
else
	srv_pin=() gen_pin=()
fi

ringside_help=$("$ringside" --help 2>&1) || true
ringside_skip=''
grep -q -- '--tls-cert' <<<"$ringside_help" || ringside_skip="no --tls-cert"

bench_workdir bench-tls # nginx's workers drop root

scripts/tls_cert.sh "$tmp/tls" "$key_type" >/dev/null || die "scripts/tls_cert.sh failed"
cert=$tmp/tls/cert.pem key=$tmp/tls/key.pem
# The clients' side of the agreement, for wrk and tls_handshakes alike.
cat >"$tmp/openssl-client.cnf" <<EOF
openssl_conf = openssl_init
[openssl_init]
ssl_conf = ssl_sect
[ssl_sect]
system_default = client_sect
[client_sect]
MinProtocol = TLSv1.2
MaxProtocol = TLSv1.2
CipherString = $cipher
Groups = $groups
Options = -SessionTicket
EOF
export OPENSSL_CONF=$tmp/openssl-client.cnf
(umask 077 && head -c 48 /dev/urandom >"$tmp/jwt-secret")
BENCH_TOKEN=$(timeout "$cmd_limit" "$ringside" token --sub bench-agent --org bench-org \
	--scope metrics:write --ttl 3600s --jwt-secret-file "$tmp/jwt-secret") || die "ringside token failed"
export BENCH_TOKEN BENCH_INGEST_BODY=$samples/ingest-full.json

# wait_https PID PORT LOG: until GET /health answers 200 over TLS.
wait_https() {
	for _ in $(seq 100); do
		kill -0 "$1" 2>/dev/null || { cat "$3" >&2; die "server on port $2 exited"; }
		[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 --cacert "$cert" \
			"https://localhost:$2/health" --resolve "localhost:$2:127.0.0.1")" = 200 ] && return
		sleep 0.1
	done
	cat "$3" >&2
	die "GET https://localhost:$2/health did not answer 200 within 10 s"
}

declare -A port spid
start_server() { # NAME
	local name=$1 p log=$tmp/$1.log
	p=$(free_port)
	if [ "$name" = nginx ]; then
		mkdir -p "$tmp/nginx"
		awk -v w="$workers" -v p="$p" -v t="$tmp/nginx" -v c="$cert" -v k="$key" \
			-v s="$cipher" -v g="${groups//P-256/prime256v1}" '{
			gsub("@WORKERS@", w); gsub("@PORT@", p); gsub("@TMP@", t)
			gsub("@CERT@", c); gsub("@KEY@", k); gsub("@CIPHERS@", s); gsub("@GROUPS@", g)
			print }' perf/nginx_tls.conf.in >"$tmp/nginx/nginx.conf"
		"${srv_pin[@]}" "$nginx" -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf" \
			-e "$tmp/nginx/error.log" -g 'daemon off;' >"$log" 2>&1 &
	else
		"${srv_pin[@]}" "$ringside" --listen "127.0.0.1:$p" --workers "$workers" \
			--jwt-secret-file "$tmp/jwt-secret" --log-level warn \
			--tls-cert "$cert" --tls-key "$key" >"$log" 2>&1 &
	fi
	pids+=($!)
	spid[$name]=$!
	wait_https $! "$p" "$log"
	port[$name]=$p
}

# cpu_ticks NAME: the server's CPU time so far, in clock ticks (user +
# system; nginx's master and its workers, all of Ringside's threads).
cpu_ticks() {
	local p all=${spid[$1]}
	[ "$1" != nginx ] || all="$all $(pgrep -P "${spid[$1]}" | tr '\n' ' ')"
	for p in $all; do cat "/proc/$p/stat" 2>/dev/null || true; done |
		awk '{ sub(/^.*\) /, ""); t += $12 + $13 } END { print t + 0 }'
}
hz=$(getconf CLK_TCK)

# check SERVER: the suite and group it agrees to with our clients, its
# certificate verified; that it resumes; that ingest answers 202 and
# keeps the connection (as perf/bench.sh checks).
declare -A agreed resumes
check() {
	local s=$1 line url
	"${gen_pin[@]}" "$bindir/tls_handshakes" "${port[$s]}" 1 0.3 full "$cipher" "$cert" \
		>"$tmp/check.out" 2>&1 || { cat "$tmp/check.out" >&2; die "$s: tls_handshakes failed"; }
	line=$(awk '$1 == "bench-result"' "$tmp/check.out")
	read -r _ n _ _ _ _ e1 e2 e3 e4 _ <<<"$line"
	if [ "${n:-0}" -eq 0 ] || [ $((e1 + e2 + e3 + e4)) -ne 0 ]; then
		cat "$tmp/check.out" >&2
		die "$s: handshakes with the certificate verified failed"
	fi
	agreed[$s]=$(sed -n 's/^Handshakes.*; \(.*\))$/\1/p' "$tmp/check.out")
	"${gen_pin[@]}" "$bindir/tls_handshakes" "${port[$s]}" 1 0.3 resume "$cipher" \
		>"$tmp/check.out" 2>&1 || { cat "$tmp/check.out" >&2; die "$s: tls_handshakes failed"; }
	read -r _ n _ _ _ _ e1 e2 e3 e4 miss <<<"$(awk '$1 == "bench-result"' "$tmp/check.out")"
	if [ "${n:-0}" -lt 2 ] || [ $((e1 + e2 + e3 + e4)) -ne 0 ]; then
		cat "$tmp/check.out" >&2
		die "$s: handshakes offering a session failed"
	fi
	resumes[$s]="$((n - 1 - miss)) of $((n - 1)) resumed"
	url="https://localhost:${port[$s]}/api/metrics/ingest"
	got=$(curl -sS --max-time "$cmd_limit" --cacert "$cert" --resolve "localhost:${port[$s]}:127.0.0.1" \
		-H 'Expect:' -H 'Content-Type: application/json' -H "Authorization: Bearer $BENCH_TOKEN" \
		--data-binary "@$BENCH_INGEST_BODY" -o "$tmp/ingest.1" -o "$tmp/ingest.2" \
		-w '%{http_code} %{num_connects}\n' "$url" "$url" | tr '\n' ' ') || die "$s: POST $url failed"
	[ "$got" = "202 1 202 0 " ] ||
		die "$s: POST $url: want \"202 1 202 0 \" (status, new connections), got \"$got\""
	note "$s: ${agreed[$s]}; ${resumes[$s]}; ingest 202 on one connection"
}

for sc in health ingest; do
	{
		[ "$sc" != ingest ] || echo "dofile([[$PWD/perf/ingest.lua]])"
		echo "dofile([[$PWD/perf/percentiles.lua]])"
	} >"$tmp/$sc.lua"
done
declare -A path=([health]=/health [ingest]=/api/metrics/ingest)

# load SCENARIO SERVER SECONDS: "rate p50_us p99_us p999_us count misses",
# dying on any error.
load() {
	local sc=$1 s=$2 secs=$3 limit=$(($3 + 30))
	case $sc in
	health | ingest)
		timeout -k 5 "$limit" "${gen_pin[@]}" wrk -t1 -c"$conns" -d"${secs}s" -s "$tmp/$sc.lua" \
			"https://localhost:${port[$s]}${path[$sc]}" </dev/null >"$tmp/load.out" 2>&1 ||
			{ cat "$tmp/load.out" >&2; die "wrk failed ($sc, $s)"; }
		;;
	full | resumed)
		local mode=full
		[ "$sc" = full ] || mode=resume
		timeout -k 5 "$limit" "${gen_pin[@]}" "$bindir/tls_handshakes" "${port[$s]}" "$hconns" \
			"$secs" "$mode" "$cipher" >"$tmp/load.out" 2>&1 ||
			{ cat "$tmp/load.out" >&2; die "tls_handshakes failed ($sc, $s)"; }
		;;
	esac
	# wrk's 11th field counts timeouts (errors), tls_handshakes's the
	# handshakes not resumed (reported).
	local hs=0
	[ "$sc" = health ] || [ "$sc" = ingest ] || hs=1
	awk -v hs="$hs" '$1 == "bench-result" {
		found = 1
		if ($2 == 0 || $7 + $8 + $9 + $10 > 0 || (!hs && $11 > 0)) exit 1
		printf "%.2f %d %d %d %d %d\n", $2 / ($3 / 1e6), $4, $5, $6, $2, hs ? $11 : 0
	}
	END { if (!found) exit 1 }' "$tmp/load.out" ||
		{ cat "$tmp/load.out" >&2; die "failed answers or socket errors ($sc, $s)"; }
}

# localhost resolves to 127.0.0.1 for wrk too (the certificate's name).
grep -qE '^127\.0\.0\.1[[:space:]].*\blocalhost\b' /etc/hosts ||
	die "localhost is not 127.0.0.1 in /etc/hosts (wrk dials the certificate's name)"

servers=(nginx)
if [ -n "$ringside_skip" ]; then
	note "Ringside not measured: $ringside_skip"
else
	servers+=(ringside)
fi
for s in "${servers[@]}"; do
	start_server "$s"
	check "$s"
done

mkdir -p "${out%/*}"
results=$tmp/results # "scenario server round rate p50 p99 p999 count misses cpu_frac"
: >"$results"
for sc in $scenarios; do for s in "${servers[@]}"; do load "$sc" "$s" "$warmup" >/dev/null; done; done
for r in $(seq "$rounds"); do
	order=("${servers[@]}")
	[ $((r % 2)) -eq 1 ] || mapfile -t order < <(printf '%s\n' "${servers[@]}" | tac)
	for sc in $scenarios; do
		for s in "${order[@]}"; do
			c0=$(cpu_ticks "$s") t0=$EPOCHREALTIME
			line=$(load "$sc" "$s" "$duration")
			c1=$(cpu_ticks "$s") t1=$EPOCHREALTIME
			cpu=$(awk -v a="$c0" -v b="$c1" -v h="$hz" -v t0="$t0" -v t1="$t1" \
				'BEGIN { printf "%.3f", (b - a) / h / (t1 - t0) }')
			echo "$sc $s $r $line $cpu" >>"$results"
			read -r rate_ p50_ p99_ _ _ miss_ <<<"$line"
			note "round $r/$rounds $sc $s: $(printf '%.0f' "$rate_")/s p50 ${p50_} us p99 ${p99_} us, server CPU $(awk -v c="$cpu" 'BEGIN { printf "%.0f%%", c * 100 }')$([ "$sc" != resumed ] || echo ", $miss_ not resumed")"
		done
	done
done

median() { sort -g | awk '{ v[NR] = $1 } END { print NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
med() { awk -v a="$1" -v s="$2" -v c="$3" '$1 == a && $2 == s { print $c }' "$results" | median; }
# per core: each round's rate / its server's busy fraction of a core.
percore() { awk -v a="$1" -v s="$2" '$1 == a && $2 == s { print ($10 > 0 ? $4 / $10 : 0) }' "$results" | median; }
ms() { awk -v u="$1" 'BEGIN { printf(u >= 100000 ? "%.0f" : u >= 10000 ? "%.1f" : "%.2f", u / 1000) }'; }
rate() { awk -v r="$1" 'BEGIN { printf(r >= 100 ? "%.0f" : "%.2f", r) }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (!b) print "—"; else printf("%.2f", a / b) }'; }
goal() { case $1 in health | ingest | resumed) echo 1.0 ;; full) echo 0.5 ;; esac; }
desc() {
	case $1 in
	health) echo "keep-alive GET /health" ;;
	ingest) echo "keep-alive POST ingest" ;;
	full) echo "full handshakes" ;;
	resumed) echo "resumed handshakes" ;;
	esac
}

{
	echo
	echo "### HTTPS: Ringside beside nginx ($(date -u '+%Y-%m-%d %H:%M UTC'))"
	echo
	echo "- Command: \`BENCH_ROUNDS=$rounds BENCH_DURATION=$duration BENCH_CONNECTIONS=$conns BENCH_TLS_HANDSHAKE_CONNECTIONS=$hconns BENCH_WORKERS=$workers BENCH_TLS_PIN=$pin BENCH_TLS_SCENARIOS=\"$scenarios\" perf/bench_tls.sh\` (in \`make bench\`)"
	echo "- TLS: 1.2 only, $cipher, groups $groups offered, the same self-signed $([ "$key_type" = rsa ] && echo RSA-2048 || echo EC P-256) certificate (scripts/tls_cert.sh); agreed: $(for s in "${servers[@]}"; do printf '%s %s; ' "$s" "${agreed[$s]}"; done)resumption check: $(for s in "${servers[@]}"; do printf '%s %s; ' "$s" "${resumes[$s]}"; done)"
	echo "- Load: keep-alive wrk -t1 -c$conns (ingest: perf/ingest.lua, ingest-full.json); handshakes perf/tls_handshakes with $hconns threads, a new connection and GET /health each; medians of $rounds alternating rounds of $duration s after $warmup s of warm-up; $([ "$pin" = 1 ] && echo "servers (--workers $workers / worker_processes $workers) on CPU $server_cpu, generators on CPU $gen_cpu" || echo "nothing pinned, $workers workers each")"
	echo "- Per core: a round's rate divided by the server's busy fraction of one core (its user + system time over the round); the goals are judged on it, since one generator core cannot saturate a server core with handshakes"
	echo "- Machine: nproc $(nproc), $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo), kernel $(uname -r); $("$nginx" -v 2>&1) with $(openssl version | awk '{ print $1, $2 }'); Ringside $ringside, tree $(git describe --always --dirty 2>/dev/null || echo '?')"
	[ -z "$ringside_skip" ] || echo "- **Ringside not measured: $ringside_skip**"
	echo
	echo "| scenario | server | req/s | server CPU | per core | p50 ms | p99 ms | p99.9 ms |"
	echo "|---|---|---:|---:|---:|---:|---:|---:|"
	for sc in $scenarios; do
		for s in "${servers[@]}"; do
			echo "| $(desc "$sc") | $s | $(rate "$(med "$sc" "$s" 4)") | $(awk -v c="$(med "$sc" "$s" 10)" 'BEGIN { printf "%.0f%%", c * 100 }') | $(rate "$(percore "$sc" "$s")") | $(ms "$(med "$sc" "$s" 5)") | $(ms "$(med "$sc" "$s" 6)") | $(ms "$(med "$sc" "$s" 7)") |"
		done
	done
	if [ -z "$ringside_skip" ]; then
		echo
		echo "| scenario | Ringside/nginx req/s | per core | p99 | goal (per core) |"
		echo "|---|---:|---:|---:|---|"
		for sc in $scenarios; do
			pc=$(ratio "$(percore "$sc" ringside)" "$(percore "$sc" nginx)")
			echo "| $(desc "$sc") | $(ratio "$(med "$sc" ringside 4)" "$(med "$sc" nginx 4)") | **$pc** | $(ratio "$(med "$sc" ringside 6)" "$(med "$sc" nginx 6)") | ≥ $(goal "$sc")×: $(awk -v r="$pc" -v g="$(goal "$sc")" 'BEGIN { print (r + 0 >= g ? "met" : "NOT met") }') |"
		done
	fi
} | tee -a "$out"
