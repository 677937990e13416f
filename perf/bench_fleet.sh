#!/bin/bash
# The fleet at scale: what a /metrics/fleet scrape costs, and what it costs
# everyone else, for 10 000 and 100 000 agents, then a real Prometheus
# scraping 20 000 agents in 4 shards while reports keep arriving.
#
# For each fleet size, Ringside (2 workers) is filled with one report per
# agent (samples/ingest-full.json, tokens from perf/mint_tokens), then:
#   - scrapes of the default body (host families) and of every family
#     (?include=all, --fleet-max-series 0), plain and gzip: time and bytes;
#   - BENCH_FLEET_SECONDS of paced reports (perf/paced_post, open loop) with
#     a /health prober (perf/probe_latency, every 5 ms), once without a
#     scrape and once with back-to-back ?include=all scrapes: ingest p99 and
#     the worst /health latency, side by side.
# Then Prometheus 2.42 scrapes 20 000 agents as 4 jobs (?shard=I&of=4)
# every 15 s for BENCH_PROM_SECONDS (180) while about 10 000 reports/s
# arrive: every scrape must succeed (up == 1 throughout) and ingest p99
# stay under 5 ms.
#
# Results go to stdout and build/bench/fleet.md (for perf/RESULTS.md).
# Env: RINGSIDE_BIN, PERF_BIN_DIR, RINGSIDE_SAMPLES, BENCH_FLEET_SIZES
# ("10000 100000"), BENCH_FLEET_SECONDS (10), BENCH_PROM_SECONDS (180,
# 0 to skip), BENCH_PROM_AGENTS (20000).
# shellcheck disable=SC2086 # result rows are split into fields on purpose
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=perf/lib.sh
. perf/lib.sh

ringside=${RINGSIDE_BIN:-build/ringside}
bindir=${PERF_BIN_DIR:-build/perf}
samples=$(cd "${RINGSIDE_SAMPLES:-samples}" && pwd)
sizes=${BENCH_FLEET_SIZES:-10000 100000}
seconds=${BENCH_FLEET_SECONDS:-10}
prom_seconds=${BENCH_PROM_SECONDS:-180}
prom_agents=${BENCH_PROM_AGENTS:-20000}
prometheus=/usr/bin/prometheus
out=build/bench/fleet.md

die() { echo "bench_fleet: $*" >&2; exit 1; }
for tool in wrk curl; do command -v $tool >/dev/null || die "$tool missing: run make deps"; done
for p in "$ringside" "$bindir/mint_tokens" "$bindir/probe_latency" "$bindir/paced_post"; do
	[ -x "$p" ] || die "$p is not built (make bench builds it)"
done

tmp=$(mktemp -d /tmp/ringside-fleet.XXXXXX)
pids=()
trap 'stop_servers; rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM

# metric NAME: the value of an unlabelled series in Ringside's /metrics.
metric() {
	curl -sf "http://127.0.0.1:$port/metrics" | awk -v n="$1" '$1 == n { print $2 }'
}

(umask 077 && head -c 48 /dev/urandom >"$tmp/secret")
export BENCH_INGEST_BODY=$samples/ingest-full.json BENCH_TOKENS=$tmp/tokens

# start_ringside AGENTS [FLAGS...]: a fresh server holding up to AGENTS.
start_ringside() {
	local agents=$1
	shift
	port=$(free_port)
	"$ringside" --listen "127.0.0.1:$port" --workers 2 --jwt-secret-file "$tmp/secret" \
		--fleet-max-agents "$agents" --fleet-memory 4GiB --log-level warn "$@" \
		>"$tmp/ringside.log" 2>&1 &
	pids+=($!)
	for _ in $(seq 100); do
		curl -sf -o /dev/null "http://127.0.0.1:$port/health" && return
		sleep 0.1
	done
	cat "$tmp/ringside.log" >&2
	die "ringside did not start"
}

# fill AGENTS: posts reports until every agent has one.
fill() {
	local agents=$1 held=0
	for _ in $(seq 20); do
		timeout 120 wrk -t1 -c64 -d5s -s perf/fleet_post.lua "http://127.0.0.1:$port" >/dev/null
		held=$(metric ringside_fleet_agents)
		[ "${held%.*}" -ge "$agents" ] && return
	done
	die "only $held of $agents agents after 100 s of reports"
}

# scrape QUERY [gzip]: "seconds bytes" of one GET /metrics/fleet?QUERY.
scrape() {
	curl -sf ${2:+--compressed -H 'Accept-Encoding: gzip'} -o /dev/null \
		-w '%{time_total} %{size_download}\n' "http://127.0.0.1:$port/metrics/fleet?$1"
}

# paced PORT CONNECTIONS RATE SECONDS: reports at RATE a second, each sent
# at its scheduled time and timed from it (perf/paced_post: open loop, no
# coordinated omission); output in $tmp/paced.out.
paced() {
	timeout $(($4 + 60)) "$bindir/paced_post" "$1" "$tmp/tokens" "$samples/ingest-full.json" \
		"$2" "$3" "$4" >"$tmp/paced.out" 2>&1 || { cat "$tmp/paced.out" >&2; die "paced_post failed"; }
	local errors
	errors=$(awk '/^bench-result/ { print $10 }' "$tmp/paced.out")
	[ "$errors" = 0 ] || { cat "$tmp/paced.out" >&2; die "$errors failed or refused reports"; }
}

# paced_load SECONDS: 5 000 reports/s over 50 connections with the /health
# prober; prints "ingest_p99_us probe_p99_us probe_max_us reports_per_s".
paced_load() {
	paced "$port" 50 5000 "$1" &
	local load_pid=$!
	timeout $(($1 + 60)) "$bindir/probe_latency" "$port" "$1" 5 >"$tmp/probe.out"
	wait "$load_pid" || die "paced load failed"
	local p99 rps
	read -r _ _ _ _ p99 _ < <(grep '^bench-result' "$tmp/paced.out")
	rps=$(awk '/^Requests\/sec:/ { print $2 }' "$tmp/paced.out")
	echo "$p99 $(awk '{ print $7, $9 }' "$tmp/probe.out") $rps"
}


rows=()
for agents in $sizes; do
	echo "fleet of $agents agents: minting tokens, filling" >&2
	"$bindir/mint_tokens" "$tmp/secret" "$agents" 10 >"$tmp/tokens"
	start_ringside "$agents" --fleet-max-series 0
	fill "$agents"
	bytes_held=$(metric ringside_fleet_snapshot_bytes)
	for q in "" "include=all"; do
		read -r t b < <(scrape "$q")
		read -r tg bg < <(scrape "$q" gzip)
		rows+=("scrape $agents ${q:-default} $t $b $tg $bg")
		echo "  scrape ${q:-default}: $t s, $b bytes; gzip $tg s, $bg bytes" >&2
	done
	read -r base_p99 base_probe99 base_probe_max base_rps < <(paced_load "$seconds")
	echo "  no scrape: ingest p99 $base_p99 us, /health p99 $base_probe99 us max $base_probe_max us ($base_rps reports/s)" >&2
	(end=$((SECONDS + seconds)); while [ $SECONDS -lt $end ]; do
		scrape include=all >>"$tmp/scrapes"; done) &
	scraper=$!
	read -r s_p99 s_probe99 s_probe_max s_rps < <(paced_load "$seconds")
	wait "$scraper"
	n_scrapes=$(wc -l <"$tmp/scrapes")
	rm -f "$tmp/scrapes"
	echo "  scraping ($n_scrapes scrapes): ingest p99 $s_p99 us, /health p99 $s_probe99 us max $s_probe_max us ($s_rps reports/s)" >&2
	rows+=("load $agents $base_p99 $base_probe_max $s_p99 $s_probe_max $n_scrapes $bytes_held")
	stop_servers
done

prom_row=
if [ "$prom_seconds" -gt 0 ]; then
	[ -x "$prometheus" ] || die "$prometheus missing: run make deps"
	echo "Prometheus: $prom_agents agents in 4 shards, every 15 s, for $prom_seconds s" >&2
	"$bindir/mint_tokens" "$tmp/secret" "$prom_agents" 10 >"$tmp/tokens"
	start_ringside "$prom_agents"
	fill "$prom_agents"
	pport=$(free_port)
	{
		echo "global: {scrape_interval: 15s, scrape_timeout: 14s}"
		echo "scrape_configs:"
		for i in 0 1 2 3; do
			echo "  - job_name: fleet-$i"
			echo "    metrics_path: /metrics/fleet"
			echo "    params: {shard: ['$i'], of: ['4']}"
			echo "    static_configs: [{targets: ['127.0.0.1:$port']}]"
		done
	} >"$tmp/prometheus.yml"
	"$prometheus" --config.file="$tmp/prometheus.yml" --storage.tsdb.path="$tmp/tsdb" \
		--web.listen-address="127.0.0.1:$pport" >"$tmp/prometheus.log" 2>&1 &
	pids+=($!)
	# 10 000 reports/s over 140 connections.
	paced "$port" 140 10000 "$prom_seconds"
	read -r _ _ _ _ p_p99 _ < <(grep '^bench-result' "$tmp/paced.out")
	p_rps=$(awk '/^Requests\/sec:/ { print $2 }' "$tmp/paced.out")
	q() { curl -sf --data-urlencode "query=$1" "http://127.0.0.1:$pport/api/v1/query" |
		python3 -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(r[0]["value"][1] if r else "none")'; }
	range="${prom_seconds}s"
	up_min=$(q "min(min_over_time(up{job=~\"fleet-.*\"}[$range]))")
	scrapes=$(q "sum(count_over_time(up{job=~\"fleet-.*\"}[$range]))")
	dur_max=$(q "max(max_over_time(scrape_duration_seconds{job=~\"fleet-.*\"}[$range]))")
	prom_samples=$(q "sum(scrape_samples_scraped{job=~\"fleet-.*\"})")
	stop_servers
	# The load generator's own floor: nginx answering the same reports at
	# the same pace (read and dropped, 202), with nothing else running.
	nport=$(free_port)
	mkdir -p "$tmp/nginx"
	cat >"$tmp/nginx/nginx.conf" <<-EOF
		worker_processes 2;
		pid $tmp/nginx/nginx.pid;
		error_log $tmp/nginx/error.log warn;
		events { worker_connections 4096; }
		http {
			access_log off;
			keepalive_requests 1000000;
			server {
				listen 127.0.0.1:$nport;
				location = /api/metrics/ingest { client_max_body_size 1m;
					client_body_buffer_size 64k; return 202; }
			}
		}
	EOF
	/usr/sbin/nginx -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf" -g 'daemon off;' \
		>"$tmp/nginx/out.log" 2>&1 &
	pids+=($!)
	sleep 0.5
	paced "$nport" 140 10000 30
	read -r _ _ _ _ n_p99 _ < <(grep '^bench-result' "$tmp/paced.out")
	n_rps=$(awk '/^Requests\/sec:/ { print $2 }' "$tmp/paced.out")
	stop_servers
	prom_row="$prom_agents $prom_seconds $scrapes $up_min $dur_max $prom_samples $p_p99 $p_rps $n_p99 $n_rps"
	echo "  $scrapes scrapes, min(up) $up_min, longest $dur_max s, $prom_samples samples a round;" \
		"ingest p99 $p_p99 us at $p_rps reports/s; nginx at the same pace alone: p99 $n_p99 us" \
		"at $n_rps/s" >&2
fi

mkdir -p "${out%/*}"
{
	echo "### /metrics/fleet at scale ($(date -u '+%Y-%m-%d %H:%M UTC'))"
	echo
	echo "- Command: \`BENCH_FLEET_SIZES=\"$sizes\" BENCH_FLEET_SECONDS=$seconds" \
		"BENCH_PROM_SECONDS=$prom_seconds perf/bench_fleet.sh\` (in \`make bench\`);" \
		"Ringside \`--workers 2\`, one report of ingest-full.json per agent, 10 organizations"
	echo "- Load: perf/paced_post, open loop, 5 000 reports/s over 50 connections (10 000/s over 140 beside Prometheus), each timed from its scheduled send;" \
		"/health probed every 5 ms on its own connection (perf/probe_latency)"
	echo "- Machine: nproc $(nproc), $(lscpu | sed -n 's/^Model name: *//p' | head -1)," \
		"kernel $(uname -r); Ringside $(git describe --always --dirty 2>/dev/null || echo '?')"
	echo
	echo "| agents | body | time | bytes | gzip time | gzip bytes | gzip per agent |"
	echo "|---:|---|---:|---:|---:|---:|---:|"
	for r in "${rows[@]}"; do
		set -- $r
		[ "$1" = scrape ] || continue
		printf '| %s | %s | %.2f s | %s | %.2f s | %s | %.0f B |\n' "$2" "$3" "$4" "$5" "$6" "$7" \
			"$(awk -v b="$7" -v a="$2" 'BEGIN { print b / a }')"
	done
	echo
	echo "| agents | ingest p99, no scrape | ingest p99, scraping | worst /health, no scrape | worst /health, scraping | scrapes |"
	echo "|---:|---:|---:|---:|---:|---:|"
	for r in "${rows[@]}"; do
		set -- $r
		[ "$1" = load ] || continue
		printf '| %s | %.2f ms | %.2f ms | %.2f ms | %.2f ms | %s |\n' "$2" \
			"$(awk -v u="$3" 'BEGIN { print u / 1000 }')" "$(awk -v u="$5" 'BEGIN { print u / 1000 }')" \
			"$(awk -v u="$4" 'BEGIN { print u / 1000 }')" "$(awk -v u="$6" 'BEGIN { print u / 1000 }')" "$7"
	done
	if [ -n "$prom_row" ]; then
		set -- $prom_row
		echo
		echo "Prometheus 2.42, $1 agents as 4 jobs (\`?shard=I&of=4\`) every 15 s for $2 s:" \
			"$3 scrapes, min(up) $4 (1: none failed), longest scrape $5 s, $6 samples" \
			"a round; ingest p99 $(awk -v u="$7" 'BEGIN { printf "%.2f", u / 1000 }') ms at $8 reports/s." \
			"The load generator's floor, nginx answering the same reports at the same pace with" \
			"nothing else running: p99 $(awk -v u="$9" 'BEGIN { printf "%.2f", u / 1000 }') ms at ${10}/s."
	fi
} >"$out"
cat "$out"
