#!/bin/bash
# Ringside against nginx on this machine: both serve the same scenarios,
# wrk loads each server in turn for BENCH_ROUNDS rounds, and the medians
# are printed and written to build/bench/latest.md (for perf/RESULTS.md).
#
# First the microbenchmarks, each beside a peer library on one core
# (PERF_BIN_DIR/bench_X against PERF_BIN_DIR/bench_X_<peer>).
#
# Env: BENCH_ROUNDS=5 BENCH_DURATION=5s BENCH_THREADS=1 BENCH_CONNECTIONS=50
#      BENCH_WORKERS=$(nproc) (both servers), RINGSIDE_BIN=build/ringside,
#      PERF_BIN_DIR=build/perf, RINGSIDE_SAMPLES=../shared/samples (from the
#      repo root: ingest-full.json, the body of the ingest scenario)
set -euo pipefail
cd "$(dirname "$0")/.."

# One scenario per line: name, method, path, wrk script, then, to the end
# of the line, the nginx location giving the same answer. The wrk script is
# a Lua file in perf/ adding what the request needs beyond its method and
# path (headers, a body), or - for nothing.
# @BODY@ in a location serves a file holding the bytes Ringside answered
# for that path just before the rounds: nginx serves a dynamic answer as a
# static file, the yardstick for moving the same bytes.
# ingest: one agent report (the full sample) per request, Ringside with a
# token key and the rate limit off; nginx reads and drops the same body
# (keeping the connection) and answers 202 as Ringside does.
SCENARIOS=$(cat <<'EOF'
health   GET   /health                -           location = /health { default_type application/json; return 200 '{"status":"ok"}'; }
metrics  GET   /metrics               -           location = /metrics { default_type "text/plain; version=0.0.4; charset=utf-8"; @BODY@; }
pool     GET   /metrics/api/metrics/  -           location = /metrics/api/metrics/ { default_type application/json; @BODY@; }
ingest   POST  /api/metrics/ingest    ingest.lua  location = /api/metrics/ingest { client_max_body_size 1m; client_body_buffer_size 64k; default_type application/json; return 202 '{"accepted":true}'; }
EOF
)

rounds=${BENCH_ROUNDS:-5} duration=${BENCH_DURATION:-5s}
threads=${BENCH_THREADS:-1} conns=${BENCH_CONNECTIONS:-50}
workers=${BENCH_WORKERS:-$(nproc)}
ringside=${RINGSIDE_BIN:-build/ringside}
nginx=/usr/sbin/nginx
out=build/bench/latest.md
samples=${RINGSIDE_SAMPLES:-../shared/samples}

die() { echo "bench: $*" >&2; exit 1; }
if ! command -v wrk >/dev/null || [ ! -x "$nginx" ]; then
	die "wrk or nginx missing: run make deps"
fi
[ -x "$ringside" ] || die "$ringside is not built (make bench builds it)"
[ -r "$samples/ingest-full.json" ] ||
	die "no $samples/ingest-full.json (set RINGSIDE_SAMPLES to the samples directory)"
samples=$(cd "$samples" && pwd)
# For bench_fleet_expo, and for perf/ingest.lua under wrk.
export RINGSIDE_SAMPLES=$samples BENCH_INGEST_BODY=$samples/ingest-full.json

tmp=$(mktemp -d /tmp/ringside-bench.XXXXXX)
chmod 755 "$tmp" # nginx workers drop root and read @BODY@ files here
pids=()
cleanup() {
	[ ${#pids[@]} -eq 0 ] || kill "${pids[@]}" 2>/dev/null || true
	wait
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A port nothing answers on, below the ephemeral range wrk's sockets use.
free_port() {
	local p
	while :; do
		p=$((20000 + RANDOM % 10000))
		[ "$p" != "${1:-}" ] || continue
		(exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
	done
}

# wait_port PID PORT LOG: until the server accepts, or die with its log.
wait_port() {
	for _ in $(seq 100); do
		kill -0 "$1" 2>/dev/null || { cat "$3" >&2; die "server on port $2 exited"; }
		(exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null && return
		sleep 0.1
	done
	cat "$3" >&2
	die "nothing listening on port $2 after 10 s"
}

# Fills the template's @NAME@ markers from the environment, literally.
render() {
	awk 'function subst(s, k, v,   i) {
		while ((i = index(s, k)) > 0)
			s = substr(s, 1, i - 1) v substr(s, i + length(k))
		return s
	}
	{
		$0 = subst($0, "@WORKERS@", ENVIRON["WORKERS"])
		$0 = subst($0, "@PORT@", ENVIRON["PORT"])
		$0 = subst($0, "@TMP@", ENVIRON["TMP"])
		print subst($0, "@LOCATIONS@", ENVIRON["LOCATIONS"])
	}' "$1"
}

declare -A port
port[nginx]=$(free_port)
port[ringside]=$(free_port "${port[nginx]}")

locations=$(while read -r name _ _ _ loc; do
	printf '%s\n\t\t' "${loc//@BODY@/root $tmp; try_files /$name.body =500}"
done <<<"$SCENARIOS")
WORKERS=$workers PORT=${port[nginx]} TMP=$tmp LOCATIONS=$locations \
	render perf/nginx.conf.in >"$tmp/nginx.conf"
"$nginx" -p "$tmp" -c "$tmp/nginx.conf" -e "$tmp/error.log" \
	-g 'daemon off;' >"$tmp/nginx.log" 2>&1 &
pids+=($!)
wait_port $! "${port[nginx]}" "$tmp/nginx.log"

# Agents need a token: an HS256 key for this run only, and one token for
# every wrk connection (one agent reporting over and over).
(umask 077 && head -c 48 /dev/urandom >"$tmp/jwt-secret")
"$ringside" --listen "127.0.0.1:${port[ringside]}" --workers "$workers" \
	--jwt-secret-file "$tmp/jwt-secret" --log-level warn >"$tmp/ringside.log" 2>&1 &
pids+=($!)
wait_port $! "${port[ringside]}" "$tmp/ringside.log"
BENCH_TOKEN=$("$ringside" token --sub bench-agent --org bench-org --scope metrics:write \
	--ttl 3600s --jwt-secret-file "$tmp/jwt-secret") || die "ringside token failed"
export BENCH_TOKEN

# The bytes nginx serves for @BODY@ locations: Ringside's answer now, after
# some traffic so /metrics has its request series.
for _ in $(seq 20); do curl -sf -o /dev/null "http://127.0.0.1:${port[ringside]}/health"; done
while read -r name _ path _ loc; do
	[[ $loc == *@BODY@* ]] || continue
	curl -sf -o "$tmp/$name.body" "http://127.0.0.1:${port[ringside]}$path" ||
		die "ringside did not answer $path"
done <<<"$SCENARIOS"

# One report to each server, twice on one connection: both must answer
# 202, and keep the connection after reading the body (num_connects 0 the
# second time), or the ingest rounds would not compare the same work.
for server in ringside nginx; do
	url="http://127.0.0.1:${port[$server]}/api/metrics/ingest"
	got=$(curl -sS -H 'Expect:' -H 'Content-Type: application/json' \
		-H "Authorization: Bearer $BENCH_TOKEN" --data-binary "@$BENCH_INGEST_BODY" \
		-o "$tmp/ingest.1" -o "$tmp/ingest.2" -w '%{http_code} %{num_connects}\n' \
		"$url" "$url" | tr '\n' ' ') || die "$server: POST $url failed"
	[ "$got" = "202 1 202 0 " ] ||
		die "$server: POST $url: want \"202 1 202 0 \" (status, new connections), got \"$got\": $(cat "$tmp/ingest.1")"
done

# run_wrk URL [SCRIPT]: prints "requests/s p99_in_us"; dies on wrong answers.
run_wrk() {
	wrk --latency -t"$threads" -c"$conns" -d"$duration" ${2:+-s "$2"} "$1" \
		>"$tmp/wrk.out" 2>&1 || { cat "$tmp/wrk.out" >&2; die "wrk failed"; }
	awk 'function us(t) {
		if (t ~ /us$/) return t + 0
		if (t ~ /ms$/) return t * 1000
		if (t ~ /m$/) return t * 60e6
		return t * 1e6 # "s"
	}
	/^ +99%/ { p99 = us($2) }
	/^Requests\/sec:/ { rps = $2 }
	/Non-2xx or 3xx responses:/ { bad = $NF }
	/Socket errors:/ { print "bench: wrk:" $0 > "/dev/stderr" }
	END {
		if (bad > 0 || rps == "" || p99 == "") exit 1
		print rps, p99
	}' "$tmp/wrk.out" || { cat "$tmp/wrk.out" >&2; die "bad answers from $1"; }
}

# Microbenchmarks: each prints "<name> <ns/op> <MB/s>" (a median of 5).
micro=$tmp/micro
: >"$micro"
bindir=${PERF_BIN_DIR:-build/perf}
for ours in "$bindir"/bench_http_parser; do
	for peer in "$ours"_*; do
		# Only the peer programs, not the compiler's .o and .d files.
		[[ -x $peer && $peer != *.[od] ]] || continue
		read -r oname ons omb < <(taskset -c 0 "$ours") || die "$ours failed"
		read -r pname pns pmb < <(taskset -c 0 "$peer") || die "$peer failed"
		echo "${ours##*/bench_} $oname $ons $omb $pname $pns $pmb" >>"$micro"
	done
done
printf '%-12s %-24s %10s %8s\n' benchmark parser 'ns/op' 'MB/s'
while read -r bench oname ons omb pname pns pmb; do
	printf '%-12s %-24s %10s %8s\n' "$bench" "$pname" "$pns" "$pmb" "$bench" "$oname" "$ons" "$omb"
	printf '%-12s %-24s %10.2f\n' "$bench" "speed-up" "$(awk -v a="$pns" -v b="$ons" 'BEGIN { print a / b }')"
done <"$micro"
# The ingest validator beside jansson on the full sample, one core.
read -r _ v_ns v_mb _ j_ns j_mb < <(taskset -c 0 "$bindir/bench_ingest_validator" \
	"$samples/ingest-full.json") || die "bench_ingest_validator failed"
printf '%-12s %-24s %10s %8s\n' ingest jansson "$j_ns" "$j_mb" ingest ringside "$v_ns" "$v_mb"
printf '%-12s %-24s %10.2f\n' ingest speed-up "$(awk -v a="$j_ns" -v b="$v_ns" 'BEGIN { print a / b }')"

# The cost of one /metrics scrape, every route observed (no peer: the
# end-to-end scenario below puts it beside nginx).
read -r _ scrape_us scrape_bytes _ gzip_us gzip_bytes < <(taskset -c 0 "$bindir/bench_metrics_scrape") ||
	die "bench_metrics_scrape failed"
printf 'one /metrics scrape: %s us for %s bytes; with gzip %s us -> %s bytes\n' \
	"$scrape_us" "$scrape_bytes" "$gzip_us" "$gzip_bytes"
# One GET /metrics/fleet body over 10 000 agents each holding the full
# sample (no peer either); its line as it prints it.
fleet_expo=$(taskset -c 0 "$bindir/bench_fleet_expo") || die "bench_fleet_expo failed"
echo "$fleet_expo"
echo

# Each scenario's wrk script: none for a plain GET, else one setting the
# method, then the scenario's script from perf/ if it names one.
declare -A script
while read -r name method _ lua _; do
	script[$name]=
	[ "$method" = GET ] && [ "$lua" = - ] && continue
	script[$name]=$tmp/$name.lua
	{
		echo "wrk.method = \"$method\""
		[ "$lua" = - ] || cat "perf/$lua"
	} >"${script[$name]}" || die "no perf/$lua for $name"
done <<<"$SCENARIOS"

results=$tmp/results
: >"$results"
for r in $(seq "$rounds"); do
	# Alternate who goes first, so a drift (heat, noise) hits both alike.
	order="nginx ringside"
	[ $((r % 2)) -eq 0 ] && order="ringside nginx"
	while read -r name _ path _; do
		for server in $order; do
			res=$(run_wrk "http://127.0.0.1:${port[$server]}$path" "${script[$name]}")
			read -r rps p99 <<<"$res"
			printf '%s round %d/%d %-8s %10.0f req/s  p99 %8.0f us\n' \
				"$name" "$r" "$rounds" "$server" "$rps" "$p99" >&2
			echo "$name $server $rps $p99" >>"$results"
		done
	done <<<"$SCENARIOS"
done

median() { sort -g | awk '{ v[NR] = $1 } END { print NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
col() { awk -v s="$1" -v v="$2" -v c="$3" '$1 == s && $2 == v { print $c }' "$results" | median; }
ms() { awk -v u="$1" 'BEGIN { printf "%.3f ms", u / 1000 }'; }

# rows: "scenario server req/s p99" with medians, then the ratio row.
rows=$(while read -r name _; do
	for server in nginx ringside; do
		echo "$name $server $(col "$name" "$server" 3) $(col "$name" "$server" 4)"
	done
done <<<"$SCENARIOS" | awk '{ print; r[$1, $2] = $3; p[$1, $2] = $4 }
	$2 == "ringside" { printf "%s ratio %.2f %.2f\n", $1,
		$3 / r[$1, "nginx"], $4 / p[$1, "nginx"] }')

printf '%-10s %-9s %14s %12s\n' scenario server 'req/s(median)' 'p99(median)'
while read -r name server rps p99; do
	if [ "$server" = ratio ]; then
		printf '%-10s %-9s %14s %12s\n' "$name" "$server" "$rps" "$p99"
	else
		printf '%-10s %-9s %14.0f %12s\n' "$name" "$server" "$rps" "$(ms "$p99")"
	fi
done <<<"$rows"

mkdir -p "${out%/*}"
{
	echo "## $(date -u '+%Y-%m-%d %H:%M UTC')"
	echo
	echo "- Command: \`BENCH_ROUNDS=$rounds BENCH_DURATION=$duration" \
		"BENCH_THREADS=$threads BENCH_CONNECTIONS=$conns BENCH_WORKERS=$workers" \
		"perf/bench.sh\`; each run \`wrk --latency -t$threads -c$conns -d$duration URL\`" \
		"(ingest: with perf/ingest.lua, POST of ingest-full.json, one agent token)," \
		"servers alternating, medians of $rounds rounds"
	echo "- Servers: nginx (perf/nginx.conf.in) and" \
		"\`$ringside --workers $workers --jwt-secret-file KEY\` (rate limit off)," \
		"$workers workers each, wrk on the same machine"
	echo "- nproc: $(nproc); CPU: $(lscpu | sed -n 's/^Model name: *//p' | head -1)"
	echo "- Kernel: $(uname -r); $("$nginx" -v 2>&1); wrk $(wrk -v 2>&1 | awk 'NR == 1 { print $2 }')"
	echo "- Ringside: $(git describe --always --dirty 2>/dev/null || echo 'no commit')"
	echo
	echo "| microbenchmark (one core, median of 5) | implementation | ns/op | MB/s |"
	echo "|---|---|---:|---:|"
	while read -r bench oname ons omb pname pns pmb; do
		echo "| $bench | $pname | $pns | $pmb |"
		echo "| $bench | $oname | $ons | $omb |"
		echo "| $bench | speed-up | $(awk -v a="$pns" -v b="$ons" 'BEGIN { printf "%.2f", a / b }') | |"
	done <"$micro"
	echo "| ingest validator, ingest-full.json | jansson json_loads | $j_ns | $j_mb |"
	echo "| ingest validator, ingest-full.json | ringside | $v_ns | $v_mb |"
	echo "| ingest validator, ingest-full.json | speed-up | $(awk -v a="$j_ns" -v b="$v_ns" 'BEGIN { printf "%.2f", a / b }') | |"
	echo
	echo "One /metrics scrape with every route observed (one core, median of 5):" \
		"$scrape_us µs for $scrape_bytes bytes of text; with gzip $gzip_us µs -> $gzip_bytes bytes."
	echo
	echo "One GET /metrics/fleet body, 10 000 agents holding ingest-full.json (one core," \
		"median of 5): \`$fleet_expo\`"
	echo
	echo "| scenario | server | req/s (median) | p99 (median) |"
	echo "|---|---|---:|---:|"
	while read -r name server rps p99; do
		if [ "$server" = ratio ]; then
			echo "| $name | ringside/nginx | $rps | $p99 |"
		else
			printf '| %s | %s | %.0f | %s |\n' "$name" "$server" "$rps" "$(ms "$p99")"
		fi
	done <<<"$rows"
} >"$out"
echo "written to $out" >&2
