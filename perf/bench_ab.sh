#!/bin/bash
# Two Ringside binaries, before and after a change, in the same run: each
# confined to CPU 0 with one worker, wrk on CPU 1, the two alternating
# round by round (A B, then B A) on GET /health, GET /metrics, the pool
# view and ingest, so that drift hits both alike. Prints the medians and
# B/A ratios. For changes to the core, where "no worse than before" is the
# claim (perf/RESULTS.md).
#
# Usage: perf/bench_ab.sh BIN_A BIN_B
# Env: BENCH_ROUNDS=5 BENCH_DURATION=5s BENCH_CONNECTIONS=50,
#      RINGSIDE_SAMPLES=samples (the ingest body: ingest-full.json)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=perf/lib.sh
. perf/lib.sh

die() { echo "bench_ab: $*" >&2; exit 1; }
[ $# -eq 2 ] || die "usage: perf/bench_ab.sh BIN_A BIN_B"
bins=("$1" "$2")
for b in "${bins[@]}"; do [ -x "$b" ] || die "no $b"; done
rounds=${BENCH_ROUNDS:-5} duration=${BENCH_DURATION:-5s} conns=${BENCH_CONNECTIONS:-50}
samples=${RINGSIDE_SAMPLES:-samples}

bench_workdir bench-ab

(umask 077 && head -c 48 /dev/urandom >"$tmp/jwt-secret")
BENCH_TOKEN=$("${bins[1]}" token --sub bench-agent --org bench-org --scope metrics:write \
	--ttl 3600s --jwt-secret-file "$tmp/jwt-secret") || die "ringside token failed"
BENCH_INGEST_BODY=$(realpath "$samples/ingest-full.json")
export BENCH_TOKEN BENCH_INGEST_BODY

# name method path lua
scenarios="health GET /health -
metrics GET /metrics -
pool GET /metrics/api/metrics/ -
ingest POST /api/metrics/ingest ingest.lua"
while read -r name method _ lua; do
	{
		echo "wrk.method = \"$method\""
		[ "$lua" = - ] || echo "dofile([[$PWD/perf/$lua]])"
		echo "dofile([[$PWD/perf/percentiles.lua]])"
	} >"$tmp/$name.lua"
done <<<"$scenarios"

port=()
for i in 0 1; do
	p=$(free_port)
	taskset -c 0 "${bins[$i]}" --listen "127.0.0.1:$p" --workers 1 --log-level error \
		--jwt-secret-file "$tmp/jwt-secret" --ingest-rate-limit 0 >"$tmp/server$i.log" 2>&1 &
	pids+=($!)
	port+=("$p")
done
for i in 0 1; do
	for _ in $(seq 100); do
		curl -sf "http://127.0.0.1:${port[$i]}/health" >/dev/null && break
		sleep 0.1
	done
	for _ in $(seq 20); do curl -sf "http://127.0.0.1:${port[$i]}/health" >/dev/null; done
done

results=$tmp/results # "scenario server rps p50 p99 p999"
for round in $(seq "$rounds"); do
	order=(0 1)
	[ $((round % 2)) -eq 1 ] || order=(1 0)
	while read -r name _ path _; do
		for i in "${order[@]}"; do
			taskset -c 1 wrk -t1 -c"$conns" -d"$duration" -s "$tmp/$name.lua" \
				"http://127.0.0.1:${port[$i]}$path" </dev/null >"$tmp/wrk.out" 2>&1 ||
				{ cat "$tmp/wrk.out" >&2; die "wrk failed"; }
			line=$(awk '$1 == "bench-result" {
				found = 1
				if ($2 == 0 || $7 + $8 + $9 + $10 + $11 > 0) exit 1
				printf "%.0f %d %d %d\n", $2 / ($3 / 1e6), $4, $5, $6
			}
			END { if (!found) exit 1 }' "$tmp/wrk.out") ||
				{ cat "$tmp/wrk.out" >&2; die "bad answers from ${bins[$i]}"; }
			echo "$name $i $line" >>"$results"
			echo "round $round $name ${bins[$i]} $line" >&2
		done
	done <<<"$scenarios"
done

median() { sort -g | awk '{ v[NR] = $1 } END { print NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
med() { awk -v n="$1" -v s="$2" -v c="$3" '$1 == n && $2 == s { print $c }' "$results" | median; }
echo "A: ${bins[0]} ($("${bins[0]}" --version 2>/dev/null | head -1))"
echo "B: ${bins[1]} ($("${bins[1]}" --version 2>/dev/null | head -1))"
echo "| scenario | A req/s | B req/s | B/A req/s | A p99 ms | B p99 ms | B/A p99 | A p99.9 ms | B p99.9 ms |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
while read -r name _; do
	awk -v n="$name" -v ar="$(med "$name" 0 3)" -v br="$(med "$name" 1 3)" \
		-v a99="$(med "$name" 0 5)" -v b99="$(med "$name" 1 5)" \
		-v a999="$(med "$name" 0 6)" -v b999="$(med "$name" 1 6)" 'BEGIN {
		printf "| %s | %.0f | %.0f | %.3f | %.3f | %.3f | %.2f | %.3f | %.3f |\n", n, ar, br, br / ar,
			a99 / 1000, b99 / 1000, a99 ? b99 / a99 : 0, a999 / 1000, b999 / 1000
	}'
done <<<"$scenarios"
