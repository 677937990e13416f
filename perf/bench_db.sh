#!/bin/bash
# Database round trips: GET /ready (worker -> database thread ->
# PostgreSQL -> the worker's ring) beside pgbench -S -M prepared, its raw
# read-only transactions, on the same private PostgreSQL 15 cluster made
# for this run (scripts/pg.sh), with the same number of PostgreSQL
# connections. Rounds alternate between the two; medians of req/s (or
# tps), p50, p99 and p99.9 are printed and appended to
# build/bench/latest.md.
#
# What is compared: pgbench with BENCH_DB_CONNECTIONS clients (one
# connection each, one transaction in flight each: what a pool of that
# size does for an application that waits on every query) against
# Ringside holding BENCH_DB_CONNECTIONS connections and serving
# BENCH_DB_CLIENTS HTTP clients, which it pipelines onto them. For the
# record, pgbench with BENCH_DB_CLIENTS clients too (as many PostgreSQL
# connections as Ringside has HTTP clients: the server-side cost of not
# pooling).
#
# Env: BENCH_ROUNDS=5 BENCH_DURATION=5 (seconds) BENCH_DB_CONNECTIONS=4
#      BENCH_DB_CLIENTS=64 BENCH_WORKERS=$(nproc) RINGSIDE_BIN=build/ringside
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=perf/lib.sh
. perf/lib.sh

die() { echo "bench_db: $*" >&2; exit 1; }

rounds=${BENCH_ROUNDS:-5} duration=${BENCH_DURATION:-5}
db_conns=${BENCH_DB_CONNECTIONS:-4} clients=${BENCH_DB_CLIENTS:-64}
workers=${BENCH_WORKERS:-$(nproc)}
ringside=${RINGSIDE_BIN:-build/ringside}
pgbench=/usr/lib/postgresql/15/bin/pgbench
out=build/bench/latest.md
[ -x "$ringside" ] || die "no $ringside (make first)"
[ -x "$pgbench" ] || die "no $pgbench (scripts/deps.sh installs postgresql)"
command -v wrk >/dev/null || die "no wrk (scripts/deps.sh installs it)"

mkdir -p "$(dirname "$out")"
bench_workdir bench-db pg_destroy_quietly
export RINGSIDE_PG_DIR=$tmp/pg RINGSIDE_PG_FAST=1

scripts/pg.sh start >/dev/null || die "PostgreSQL did not start"
url=$(scripts/pg.sh url)
"$pgbench" -i -s 1 -q "$url" >"$tmp/init.log" 2>&1 || { cat "$tmp/init.log" >&2; die "pgbench -i failed"; }

port=$(free_port)
"$ringside" --listen "127.0.0.1:$port" --workers "$workers" --database-url "$url" \
	--db-connections "$db_conns" --log-level warn >"$tmp/ringside.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
	curl -sf "http://127.0.0.1:$port/ready" >/dev/null && break
	kill -0 "${pids[0]}" 2>/dev/null || { cat "$tmp/ringside.log" >&2; die "ringside exited"; }
	sleep 0.1
done
curl -sf "http://127.0.0.1:$port/ready" >/dev/null || die "/ready never answered 200"

script=$tmp/ready.lua
echo "dofile([[$PWD/perf/percentiles.lua]])" >"$script"

results=$tmp/results # "round name rate p50_us p99_us p999_us"

# pgbench CLIENTS: tps and latency percentiles from its per-transaction
# log (the third field is the latency in µs).
run_pgbench() {
	local c=$1 log=$tmp/pgb
	rm -f "$log".*
	"$pgbench" -S -M prepared -n -c "$c" -j 1 -T "$duration" -l --log-prefix="$log" "$url" \
		>"$tmp/pgbench.out" 2>&1 || { cat "$tmp/pgbench.out" >&2; die "pgbench failed"; }
	local tps
	tps=$(awk '/^tps = / { print $3; exit }' "$tmp/pgbench.out")
	cat "$log".* | awk '{ print $3 }' | sort -n | awk -v tps="$tps" '
		{ v[NR] = $1 }
		END { printf "%s %d %d %d\n", tps, v[int(NR * 0.5)], v[int(NR * 0.99)], v[int(NR * 0.999)] }'
}

run_ready() {
	timeout -k 5 $((duration + 30)) wrk -t1 -c"$clients" -d"${duration}s" -s "$script" \
		"http://127.0.0.1:$port/ready" </dev/null >"$tmp/wrk.out" 2>&1 ||
		{ cat "$tmp/wrk.out" >&2; die "wrk failed"; }
	awk '$1 == "bench-result" {
		found = 1
		if ($2 == 0 || $7 + $8 + $9 + $10 + $11 > 0) exit 1
		printf "%.2f %d %d %d\n", $2 / ($3 / 1e6), $4, $5, $6
	}
	END { if (!found) exit 1 }' "$tmp/wrk.out" ||
		{ cat "$tmp/wrk.out" >&2; die "failed answers from /ready"; }
}

names=("pgbench-c$db_conns" "ringside-ready" "pgbench-c$clients")
for round in $(seq "$rounds"); do
	order=("${names[@]}")
	if [ $((round % 2)) -eq 0 ]; then order=("${names[2]}" "${names[1]}" "${names[0]}"); fi
	for name in "${order[@]}"; do
		case $name in
		ringside-ready) line=$(run_ready) ;;
		pgbench-c*) line=$(run_pgbench "${name#pgbench-c}") ;;
		esac
		echo "$round $name $line" >>"$results"
		echo "round $round $name $line" >&2
	done
done

median() { sort -g | awk '{ v[NR] = $1 } END { print NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
med() { awk -v n="$1" -v c="$2" '$2 == n { print $c }' "$results" | median; }
ms() { awk -v u="$1" 'BEGIN { printf "%.3f", u / 1000 }'; }

base=${names[0]}
{
	echo
	echo "### Database round trips ($(date -u '+%Y-%m-%d %H:%M UTC'))"
	echo
	echo "- Command: \`BENCH_ROUNDS=$rounds BENCH_DURATION=$duration BENCH_DB_CONNECTIONS=$db_conns BENCH_DB_CLIENTS=$clients perf/bench_db.sh\` (in \`make bench\`)"
	echo "- Ringside --workers $workers --db-connections $db_conns, wrk -t1 -c$clients on GET /ready; pgbench -S -M prepared -j 1; one PostgreSQL 15 cluster (fsync off), pgbench scale 1; nothing pinned"
	echo "- Machine: nproc $(nproc), $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo), kernel $(uname -r); Ringside $(git describe --always --dirty 2>/dev/null || echo '?')"
	echo
	echo "| what | PostgreSQL connections | req/s or tps | p50 ms | p99 ms | p99.9 ms | rate / pgbench -c$db_conns |"
	echo "|---|---:|---:|---:|---:|---:|---:|"
	for name in "${names[@]}"; do
		pgc=$db_conns
		[ "$name" = "pgbench-c$clients" ] && pgc=$clients
		rate=$(med "$name" 3)
		printf '| %s | %s | %.0f | %s | %s | %s | %.2f |\n' "$name" "$pgc" "$rate" \
			"$(ms "$(med "$name" 4)")" "$(ms "$(med "$name" 5)")" "$(ms "$(med "$name" 6)")" \
			"$(awk -v a="$rate" -v b="$(med "$base" 3)" 'BEGIN { print a / b }')"
	done
} | tee -a "$out"
