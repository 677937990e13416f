#!/bin/bash
# Tenant analytics (seed 002): Ringside's analytics routes on rollups
# beside the raw-events approach (one row per event, GROUP BY at read
# time) on the same private PostgreSQL 15 cluster made for this run
# (scripts/pg.sh, fsync off: a throwaway cluster).
#
# 1. Load. Ringside is started once on the empty database (it applies its
#    migrations), then perf/analytics/load.sql fills the registry and the
#    rollups: tenant T with BENCH_ANALYTICS_AGENTS agents active every hour
#    of the last BENCH_ANALYTICS_DAYS days (1 000 x 2 160 agent-hours,
#    ~49 events each: > 100 M events), and BENCH_ANALYTICS_OTHERS other
#    tenants with 5 to 50 agents each. perf/analytics/raw_events.sql then
#    fills analytics_events with BENCH_ANALYTICS_RAW_EVENTS of T's events,
#    drawn from the same agent-hours (a stated fraction of them: loading
#    and querying all 100 M would take hours here). Load times and row
#    counts are printed.
# 2. Measure, in alternating rounds (the order reversed every other
#    round), for each scenario:
#      ringside  wrk -t1 -cC on GET /api/v1/analytics/... with a Bearer
#                token of T (HS256, ringside token);
#      raw       pgbench -M prepared -cC -j1 -f perf/analytics/raw_*.sql,
#                the platform's GROUP BY over analytics_events;
#      rollup    pgbench likewise on perf/analytics/rollup_*.sql: the same
#                answer read from the rollups by plain SQL, for reference
#                (what the database part of Ringside's route costs, as
#                this script writes the query).
#    Medians of req/s (tps), p50, p99 and p99.9 (pgbench's from its
#    per-transaction log). The raw side is then extrapolated linearly to
#    T's whole event count (x full / loaded); a scan-and-group query's
#    time grows with the rows it reads, so this is the scale's lower
#    bound: at 100 M rows the table (~14 GB) no longer fits in memory.
#    Before the rounds each raw query also runs alone (pgbench -c1 -t3,
#    the median): its own time, without the queue of C clients.
#    Scenarios: tokens (days=30, the default), tokens90 (days=90, the
#    largest window), activity (day-of-week x hour over 90 days), agents
#    (every agent of T, the current month).
# 3. Counting's cost (BENCH_ANALYTICS_AB=1): the same binary three times,
#    --analytics-enabled true ("on") and false twice ("off", "off2": the
#    A/A pair, whose difference is this machine's noise), loaded with POST
#    /api/v1/token (client_secret_basic, HS256) and POST
#    /api/metrics/ingest (samples/ingest-full.json) of another tenant:
#      - open loop at a fixed rate (perf/paced_post, each request timed
#        from its scheduled send: no coordinated omission), well below
#        saturation (BENCH_ANALYTICS_ISSUE_RATE, BENCH_ANALYTICS_INGEST_RATE
#        a second), BENCH_ANALYTICS_AB_ROUNDS rounds of BENCH_DURATION s in
#        rotating order; the percentiles of all rounds' requests pooled,
#        and the median of each server's per-round p99s, whose on - off
#        (beside off2 - off) is the verdict (goal: < 0.1 ms);
#      - saturation (wrk -cC, BENCH_ROUNDS rounds): req/s, on against off.
#    Then the flush: with
#    PostgreSQL stopped, ingest load fills the count journal; PostgreSQL
#    is started again and the rollups' growth is timed until the backlog
#    is in (goal: >= 100 000 counted events a second). Needs
#    --analytics-enabled (said so when absent).
#
# CPUs (2 in all): Ringside and PostgreSQL (its backends, its parallel
# workers) confined to CPU 1 (taskset), wrk and pgbench on CPU 0, after
# the load (which uses both); BENCH_ANALYTICS_PIN=0 pins nothing.
#
# Where Ringside's analytics routes are missing (404) the script says
# "Ringside not measured: routes absent" and still loads and measures the
# raw side and the rollup SQL.
#
# Env: BENCH_ROUNDS=3 BENCH_DURATION=5 (seconds) BENCH_WARMUP=2
#      BENCH_CONNECTIONS=16 BENCH_WORKERS=1 BENCH_ANALYTICS_PIN=1
#      BENCH_ANALYTICS_AGENTS=1000 BENCH_ANALYTICS_DAYS=90
#      BENCH_ANALYTICS_OTHERS=100 BENCH_ANALYTICS_RAW_EVENTS=10000000
#      BENCH_ANALYTICS_SCENARIOS="tokens tokens90 activity agents"
#      BENCH_ANALYTICS_AB=1 BENCH_ANALYTICS_BACKLOG_SECONDS=10
#      BENCH_ANALYTICS_AB_ROUNDS=7 BENCH_ANALYTICS_ISSUE_RATE=5000
#      BENCH_ANALYTICS_INGEST_RATE=20000
#      RINGSIDE_BIN=build/ringside RINGSIDE_SAMPLES=samples PERF_BIN_DIR=build/perf
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=perf/lib.sh
. perf/lib.sh

die() { echo "bench_analytics: $*" >&2; exit 1; }
note() { echo "bench_analytics: $*" >&2; }

rounds=${BENCH_ROUNDS:-3} duration=${BENCH_DURATION:-5} warmup=${BENCH_WARMUP:-2}
conns=${BENCH_CONNECTIONS:-16} workers=${BENCH_WORKERS:-1}
pin=${BENCH_ANALYTICS_PIN:-1}
agents=${BENCH_ANALYTICS_AGENTS:-1000} days=${BENCH_ANALYTICS_DAYS:-90}
others=${BENCH_ANALYTICS_OTHERS:-100} raw_events=${BENCH_ANALYTICS_RAW_EVENTS:-10000000}
scenarios=${BENCH_ANALYTICS_SCENARIOS:-tokens tokens90 activity agents}
ab=${BENCH_ANALYTICS_AB:-1} backlog_seconds=${BENCH_ANALYTICS_BACKLOG_SECONDS:-10}
ab_rounds=${BENCH_ANALYTICS_AB_ROUNDS:-7}
issue_rate=${BENCH_ANALYTICS_ISSUE_RATE:-5000} ingest_rate=${BENCH_ANALYTICS_INGEST_RATE:-20000}
bindir=${PERF_BIN_DIR:-build/perf}
ringside=${RINGSIDE_BIN:-build/ringside}
samples=${RINGSIDE_SAMPLES:-samples}
pgbin=/usr/lib/postgresql/15/bin
pgbench=$pgbin/pgbench
out=build/bench/latest.md
org=org-bench-analytics ab_org=org-bench-counting
server_cpu=1 gen_cpu=0

for v in rounds duration warmup conns workers agents days others raw_events backlog_seconds \
	ab_rounds issue_rate ingest_rate; do
	case ${!v} in '' | *[!0-9]*) die "$v must be a whole number, not \"${!v}\"" ;; esac
done
if [ "$days" -lt 1 ] || [ "$days" -gt 90 ]; then die "BENCH_ANALYTICS_DAYS: 1 to 90"; fi
for sc in $scenarios; do
	case $sc in tokens | tokens90 | activity | agents) ;; *) die "unknown scenario \"$sc\"" ;; esac
done
[ -x "$ringside" ] || die "no $ringside (make first)"
[ "$ab" != 1 ] || [ -x "$bindir/paced_post" ] || die "no $bindir/paced_post (make bench builds it)"
[ -x "$pgbench" ] || die "no $pgbench (scripts/deps.sh installs postgresql)"
command -v wrk >/dev/null || die "no wrk (scripts/deps.sh installs it)"
command -v curl >/dev/null || die "no curl (scripts/deps.sh installs it)"
command -v node >/dev/null || die "no node (reads the answers' JSON; scripts/deps.sh installs it)"
if [ "$pin" = 1 ]; then
	taskset -c "$server_cpu,$gen_cpu" true 2>/dev/null ||
		die "pinning needs CPUs $server_cpu and $gen_cpu (BENCH_ANALYTICS_PIN=0 runs without)"
	srv_pin=(taskset -c "$server_cpu") gen_pin=(taskset -c "$gen_cpu")
else
	srv_pin=() gen_pin=()
fi

mkdir -p "$(dirname "$out")"
bench_workdir bench-analytics pg_destroy_quietly
export RINGSIDE_PG_DIR=$tmp/pg RINGSIDE_PG_FAST=1

scripts/pg.sh start >/dev/null 2>"$tmp/pg.err" || { cat "$tmp/pg.err" >&2; die "PostgreSQL did not start"; }
url=$(scripts/pg.sh url)
psql_() { psql -X -q -v ON_ERROR_STOP=1 -d "$url" "$@"; }
sql() { psql -X -q -tA -v ON_ERROR_STOP=1 -d "$url" -c "$1"; }
(umask 077 && head -c 48 /dev/urandom >"$tmp/jwt-secret" && openssl rand -hex 32 >"$tmp/client-secret.key")

ringside_help=$("$ringside" --help 2>&1) || true
has_flag() { grep -q -- "^ *$1 " <<<"$ringside_help"; }

wait_health() { # PID PORT LOG
	for _ in $(seq 150); do
		kill -0 "$1" 2>/dev/null || { cat "$3" >&2; die "ringside exited"; }
		[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$2/health")" = 200 ] && return
		sleep 0.1
	done
	cat "$3" >&2
	die "ringside: /health never answered 200"
}
# start_ringside NAME EXTRA_FLAGS...: a server on the bench database,
# pinned as the arrangement says; sets port[NAME].
declare -A port
start_ringside() {
	local name=$1
	shift
	port[$name]=$(free_port)
	"${srv_pin[@]}" "$ringside" --listen "127.0.0.1:${port[$name]}" --database-url "$url" \
		--jwt-secret-file "$tmp/jwt-secret" --workers "$workers" --log-level warn "$@" \
		>"$tmp/ringside-$name.log" 2>&1 &
	pids+=($!)
	wait_health "$!" "${port[$name]}" "$tmp/ringside-$name.log"
}

# ---- 1. Load ----
# Ringside applies its migrations at start: once, on the empty database.
start_ringside migrate
for _ in $(seq 100); do
	[ "$(sql "SELECT to_regclass('analytics_agent_monthly') IS NOT NULL")" = t ] && break
	sleep 0.1
done
[ "$(sql "SELECT to_regclass('analytics_agent_monthly') IS NOT NULL")" = t ] ||
	die "$ringside did not create the rollups (003_analytics.sql): is it this branch's binary?"
stop_servers

now_s() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now_s)" 'BEGIN { printf "%.1f", b - a }'; }
note "loading the registry and the rollups ($agents agents x $days days for $org, $others other tenants)"
t0=$(now_s)
psql_ -v org="$org" -v agents="$agents" -v days="$days" -v others="$others" \
	-f perf/analytics/load.sql >"$tmp/load.log" 2>&1 || { cat "$tmp/load.log" >&2; die "the loader failed"; }
load_s=$(elapsed "$t0")
note "loading $raw_events raw events of $org into analytics_events"
t0=$(now_s)
psql_ -v org="$org" -v events="$raw_events" -f perf/analytics/raw_events.sql >"$tmp/raw.log" 2>&1 ||
	{ cat "$tmp/raw.log" >&2; die "the raw loader failed"; }
raw_load_s=$(elapsed "$t0")

count() { sql "SELECT count(*) FROM $1"; }
rows_hourly=$(count analytics_agent_hourly) rows_org=$(count analytics_org_hourly)
rows_monthly=$(count analytics_agent_monthly) rows_agents=$(count agents)
t_events=$(sql "SELECT sum(tokens_issued + api_calls) FROM analytics_agent_hourly WHERE organization_id = '$org'")
t_tokens=$(sql "SELECT sum(tokens_issued) FROM analytics_agent_hourly WHERE organization_id = '$org'")
o_events=$(sql "SELECT coalesce(sum(tokens_issued + api_calls), 0) FROM analytics_agent_hourly WHERE organization_id <> '$org'")
raw_rows=$(count analytics_events)
raw_size=$(sql "SELECT pg_size_pretty(pg_total_relation_size('analytics_events'))")
rollup_size=$(sql "SELECT pg_size_pretty(pg_total_relation_size('analytics_agent_hourly') + pg_total_relation_size('analytics_org_hourly') + pg_total_relation_size('analytics_agent_monthly'))")
scale=$(awk -v a="$t_events" -v b="$raw_rows" 'BEGIN { printf "%.2f", a / b }')
note "loaded in ${load_s} s (rollups) + ${raw_load_s} s (raw): $org $t_events events in $rows_hourly agent-hour rows (all tenants), raw $raw_rows rows; x$scale to extrapolate"

# ---- 2. Measure ----
if [ "$pin" = 1 ]; then
	pm=$(head -1 "$RINGSIDE_PG_DIR/postmaster.pid")
	for p in $pm $(ps -o pid= --ppid "$pm"); do taskset -a -p -c "$server_cpu" "$p" >/dev/null 2>&1 || true; done
fi
extra=()
if has_flag --analytics-enabled; then extra=(--analytics-enabled true); fi
start_ringside routes "${extra[@]}"
token=$("$ringside" token --sub bench --org "$org" --scope "agents:read" --ttl 86400s \
	--jwt-secret-file "$tmp/jwt-secret") || die "ringside token failed"

declare -A rpath rsql
rpath[tokens]="/api/v1/analytics/tokens?days=30" rsql[tokens]=tokens
rpath[tokens90]="/api/v1/analytics/tokens?days=90" rsql[tokens90]=tokens
rpath[activity]=/api/v1/analytics/agents/activity rsql[activity]=activity
rpath[agents]=/api/v1/analytics/agents rsql[agents]=agents
sc_days() { if [ "$1" = tokens90 ]; then echo 90; else echo 30; fi; }

# What each route should answer, from the rollups (the reference SQL):
# "rows sum", the sum being of count (tokens, activity) or tokensIssued.
expect() {
	local col=3
	[ "${rsql[$1]}" != tokens ] || col=2
	psql -X -q -tA -v ON_ERROR_STOP=1 -d "$url" -v org="'$org'" -v days="$(sc_days "$1")" \
		-f "perf/analytics/rollup_${rsql[$1]}.sql" | awk -F'|' -v c="$col" '{ n++; s += $c } END { print n + 0, s + 0 }'
}
# The same of a route's JSON answer.
answer_sums() {
	node -e 'let s = ""; process.stdin.on("data", (d) => { s += d; }).on("end", () => {
		try { const d = JSON.parse(s).data; let t = 0;
			for (const x of d) t += (x.count !== undefined ? x.count : x.tokensIssued);
			console.log(d.length + " " + t); } catch (e) { console.log("unreadable"); } })'
}

ringside_skip=''
st=$(curl -s -o "$tmp/probe.json" -w '%{http_code}' --max-time 10 -H "Authorization: Bearer $token" \
	"http://127.0.0.1:${port[routes]}${rpath[tokens]}") || st=000
case $st in
200) ;;
404) ringside_skip="routes absent (GET ${rpath[tokens]} answered 404)" ;;
*) ringside_skip="GET ${rpath[tokens]} answered $st: $(head -c 200 "$tmp/probe.json" | tr '\n' ' ')" ;;
esac
checks=()
if [ -z "$ringside_skip" ]; then
	for sc in $scenarios; do
		st=$(curl -s -o "$tmp/probe.json" -w '%{http_code}' --max-time 10 -H "Authorization: Bearer $token" \
			"http://127.0.0.1:${port[routes]}${rpath[$sc]}") || st=000
		[ "$st" = 200 ] || { ringside_skip="GET ${rpath[$sc]} answered $st"; break; }
		got=$(answer_sums <"$tmp/probe.json") want=$(expect "$sc")
		checks+=("$sc: Ringside answered $got (entries, sum), the rollup SQL $want$([ "$got" = "$want" ] && echo ' (same)' || echo ' (DIFFERENT)')")
	done
fi
if [ -n "$ringside_skip" ]; then
	note "Ringside not measured: $ringside_skip"
	stop_servers
fi

for sc in $scenarios; do
	{
		echo "wrk.headers[\"Authorization\"] = \"Bearer $token\""
		echo "dofile([[$PWD/perf/percentiles.lua]])"
	} >"$tmp/$sc.lua"
done

# run_wrk SCENARIO SECONDS: "rate p50_us p99_us p999_us count".
run_wrk() {
	timeout -k 5 $(($2 + 30)) "${gen_pin[@]}" wrk -t1 -c"$conns" -d"${2}s" -s "$tmp/$1.lua" \
		"http://127.0.0.1:${port[routes]}${rpath[$1]}" </dev/null >"$tmp/wrk.out" 2>&1 ||
		{ cat "$tmp/wrk.out" >&2; die "wrk failed ($1)"; }
	awk '$1 == "bench-result" {
		found = 1
		if ($2 == 0 || $7 + $8 + $9 + $10 + $11 > 0) exit 1
		printf "%.2f %d %d %d %d\n", $2 / ($3 / 1e6), $4, $5, $6, $2
	}
	END { if (!found) exit 1 }' "$tmp/wrk.out" || { cat "$tmp/wrk.out" >&2; die "failed answers ($1)"; }
}
# run_pgbench KIND SCENARIO CLIENTS (-T SECONDS | -t N): the same line
# from pgbench's per-transaction log (the third field: latency in µs).
run_pgbench() {
	local kind=$1 sc=$2 c=$3 log=$tmp/pgb
	shift 3
	rm -f "$log".*
	"${gen_pin[@]}" "$pgbench" -n -M prepared -c "$c" -j 1 "$@" -l --log-prefix="$log" \
		-D org="$org" -D days="$(sc_days "$sc")" -f "perf/analytics/${kind}_${rsql[$sc]}.sql" "$url" \
		>"$tmp/pgbench.out" 2>&1 || { cat "$tmp/pgbench.out" >&2; die "pgbench failed ($kind $sc)"; }
	local tps
	tps=$(awk '/^tps = / { print $3; exit }' "$tmp/pgbench.out")
	cat "$log".* | awk '{ print $3 }' | sort -n | awk -v tps="$tps" '
		function at(q,  i) { i = int(NR * q + 0.999999); if (i < 1) i = 1; return v[i] }
		{ v[NR] = $1 }
		END { printf "%s %d %d %d %d\n", tps, at(0.5), at(0.99), at(0.999), NR }'
}

servers=(raw rollup)
[ -n "$ringside_skip" ] || servers=(ringside raw rollup)
results=$tmp/results # "scenario server round rate p50_us p99_us p999_us count"
: >"$results"
alone=$tmp/alone # "scenario p50_us"
: >"$alone"
for sc in $scenarios; do
	note "warm-up: $sc"
	line=$(run_pgbench raw "$sc" 1 -t 3)
	echo "$sc ${line#* }" | awk '{ print $1, $2 }' >>"$alone"
	note "raw $sc alone (pgbench -c1 -t3, median): $(awk '{ printf "%.1f ms", $1 / 1000 }' <<<"${line#* }")"
	run_pgbench rollup "$sc" "$conns" -T "$warmup" >/dev/null
	[ -n "$ringside_skip" ] || run_wrk "$sc" "$warmup" >/dev/null
done
for round in $(seq "$rounds"); do
	order=("${servers[@]}")
	if [ $((round % 2)) -eq 0 ]; then
		order=()
		for ((i = ${#servers[@]} - 1; i >= 0; i--)); do order+=("${servers[i]}"); done
	fi
	for sc in $scenarios; do
		for s in "${order[@]}"; do
			case $s in
			ringside) line=$(run_wrk "$sc" "$duration") ;;
			*) line=$(run_pgbench "$s" "$sc" "$conns" -T "$duration") ;;
			esac
			echo "$sc $s $round $line" >>"$results"
			note "round $round $sc $s $line"
		done
	done
done
stop_servers

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR) print NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
med() { awk -v a="$1" -v s="$2" -v c="$3" '$1 == a && $2 == s { print $c }' "$results" | median; }
ms() { awk -v u="$1" 'BEGIN { printf(u >= 100000 ? "%.0f" : u >= 10000 ? "%.1f" : "%.2f", u / 1000) }'; }
xs() { awk -v u="$1" -v k="$scale" 'BEGIN { s = u * k / 1e6; printf(s >= 100 ? "%.0f s" : s >= 1 ? "%.1f s" : "%.0f ms", s >= 1 ? s : s * 1000) }'; }
grp() { awk -v n="$1" 'BEGIN { s = sprintf("%d", n); r = ""; while (length(s) > 3) { r = " " substr(s, length(s) - 2) r; s = substr(s, 1, length(s) - 3) }; print s r }'; }
rate() { awk -v r="$1" 'BEGIN { printf(r >= 100 ? "%.0f" : "%.2f", r) }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (!b) print "—"; else printf((a / b >= 100) ? "%.0f" : "%.1f", a / b) }'; }

# ---- 3. Counting's cost, and the flush ----
ab_note='' ab_rows=() flush_line=''
if [ "$ab" = 1 ]; then
	if ! has_flag --analytics-enabled; then
		ab_note="counting A/B not run: $ringside has no --analytics-enabled (its analytics have not landed)"
	elif ! has_flag --client-secret-key-file; then
		ab_note="counting A/B not run: $ringside has no --client-secret-key-file (no token route)"
	fi
	[ -z "$ab_note" ] || note "$ab_note"
fi
if [ "$ab" = 1 ] && [ -z "$ab_note" ]; then
	common=(--client-secret-key-file "$tmp/client-secret.key" --token-rate-limit 0 --ingest-rate-limit 0)
	jflag=()
	if has_flag --analytics-journal; then mkdir -p "$tmp/journal"; jflag=(--analytics-journal "$tmp/journal"); fi
	start_ringside on "${common[@]}" --analytics-enabled true "${jflag[@]}"
	start_ringside off "${common[@]}" --analytics-enabled false
	start_ringside off2 "${common[@]}" --analytics-enabled false
	op=$("$ringside" token --sub op --org "$ab_org" --scope "agents:write agents:read" \
		--jwt-secret-file "$tmp/jwt-secret") || die "ringside token failed"
	st=$(curl -s -o "$tmp/agent.json" -w '%{http_code}' --max-time 10 -H "Authorization: Bearer $op" \
		-H 'Content-Type: application/json' --data-raw \
		'{"email":"counting@example.com","agentType":"custom","version":"1.0.0","capabilities":["metrics:write"],"owner":"bench","deploymentEnv":"production"}' \
		"http://127.0.0.1:${port[on]}/api/v1/agents") || st=000
	[ "$st" = 201 ] || die "POST /api/v1/agents answered $st: $(head -c 300 "$tmp/agent.json")"
	jf() { node -e 'let s = ""; process.stdin.on("data", (d) => { s += d; }).on("end", () => {
		const v = JSON.parse(s)[process.argv[1]]; if (v === undefined) process.exit(1); console.log(v); })' "$1"; }
	ab_agent=$(jf agentId <"$tmp/agent.json") || die "POST /api/v1/agents: no agentId"
	st=$(curl -s -o "$tmp/cred.json" -w '%{http_code}' --max-time 10 -X POST -H "Authorization: Bearer $op" \
		"http://127.0.0.1:${port[on]}/api/v1/agents/$ab_agent/credentials") || st=000
	[ "$st" = 201 ] || die "POST .../credentials answered $st: $(head -c 300 "$tmp/cred.json")"
	cid=$(jf clientId <"$tmp/cred.json") csecret=$(jf clientSecret <"$tmp/cred.json")
	basic="Basic $(printf '%s:%s' "$(node -p 'encodeURIComponent(process.argv[1])' "$cid")" \
		"$(node -p 'encodeURIComponent(process.argv[1])' "$csecret")" | base64 -w0)"
	ingest_token=$("$ringside" token --sub "$ab_agent" --org "$ab_org" --scope metrics:write --ttl 86400s \
		--jwt-secret-file "$tmp/jwt-secret") || die "ringside token failed"
	{ cat perf/token.lua; echo "dofile([[$PWD/perf/percentiles.lua]])"; } >"$tmp/issue.lua"
	{ cat perf/ingest.lua; echo "dofile([[$PWD/perf/percentiles.lua]])"; } >"$tmp/ingest.lua"
	# ab_wrk SERVER SCENARIO SECONDS [CONNECTIONS]
	ab_wrk() {
		local p=/api/v1/token
		[ "$2" = issue ] || p=/api/metrics/ingest
		BENCH_FORM='grant_type=client_credentials&scope=metrics%3Awrite' BENCH_AUTHORIZATION=$basic \
			BENCH_TOKEN=$ingest_token BENCH_INGEST_BODY=$(realpath "$samples/ingest-full.json") \
			timeout -k 5 $(($3 + 30)) "${gen_pin[@]}" wrk -t1 -c"${4:-$conns}" -d"${3}s" -s "$tmp/$2.lua" \
			"http://127.0.0.1:${port[$1]}$p" </dev/null >"$tmp/wrk.out" 2>&1 ||
			{ cat "$tmp/wrk.out" >&2; die "wrk failed ($1 $2)"; }
		awk '$1 == "bench-result" {
			found = 1
			if ($2 == 0 || $7 + $8 + $9 + $10 + $11 > 0) exit 1
			printf "%.2f %d %d %d %d\n", $2 / ($3 / 1e6), $4, $5, $6, $2
		}
		END { if (!found) exit 1 }' "$tmp/wrk.out" || { cat "$tmp/wrk.out" >&2; die "failed answers ($1 $2)"; }
	}
	# Saturation: req/s, on against off.
	for sc in issue ingest; do for s in on off; do ab_wrk "$s" "$sc" "$warmup" >/dev/null; done; done
	for round in $(seq "$rounds"); do
		order=(on off)
		[ $((round % 2)) -eq 1 ] || order=(off on)
		for sc in issue ingest; do
			for s in "${order[@]}"; do
				line=$(ab_wrk "$s" "$sc" "$duration")
				echo "ab-$sc $s $round $line" >>"$results"
				note "round $round saturation $sc analytics-$s $line"
			done
		done
	done
	# Paced: every request timed from its scheduled send, the traces of
	# all rounds pooled per server.
	echo "x ${basic#Basic }" >"$tmp/basic.cred"
	echo "x $ingest_token" >"$tmp/bearer.cred"
	printf '%s' 'grant_type=client_credentials&scope=metrics%3Awrite' >"$tmp/form"
	# ab_paced SERVER SCENARIO SECONDS TRACE
	ab_paced() {
		local args=("$tmp/bearer.cred" "$samples/ingest-full.json" "$conns" "$ingest_rate" "$3")
		[ "$2" != issue ] || args=("$tmp/basic.cred" "$tmp/form" "$conns" "$issue_rate" "$3" \
			/api/v1/token application/x-www-form-urlencoded Basic 200)
		PACED_TRACE=$4 timeout -k 5 $(($3 + 60)) "${gen_pin[@]}" "$bindir/paced_post" "${port[$1]}" \
			"${args[@]}" >"$tmp/paced.out" 2>&1 || { cat "$tmp/paced.out" >&2; die "paced_post failed ($1 $2)"; }
		awk '$1 == "bench-result" { found = 1; if ($10 > 0) exit 1; print } END { if (!found) exit 1 }' \
			"$tmp/paced.out" || { cat "$tmp/paced.out" >&2; die "failed answers, paced ($1 $2)"; }
	}
	servers=(on off off2)
	for sc in issue ingest; do for s in "${servers[@]}"; do ab_paced "$s" "$sc" "$warmup" /dev/null >/dev/null; done; done
	for round in $(seq "$ab_rounds"); do
		# Each server takes each place in the order as often as the others.
		k=$((round % 3))
		order=("${servers[@]:k}" "${servers[@]:0:k}")
		for sc in issue ingest; do
			for s in "${order[@]}"; do
				line=$(ab_paced "$s" "$sc" "$duration" "$tmp/trace-$sc-$s-$round")
				echo "abp-$sc $s $round $(awk '{ print $5 }' <<<"$line")" >>"$results"
				note "round $round paced $sc analytics-$s $line"
			done
		done
	done
	# pooled SCENARIO SERVER FRACTION: that percentile (µs) of every round's requests
	pooled() {
		cat "$tmp"/trace-"$1"-"$2"-* | awk '{ print $2 }' | sort -n |
			awk -v q="$3" '{ v[NR] = $1 } END { i = int(NR * q); if (i < 1) i = 1; print v[i] }'
	}
	for sc in issue ingest; do
		rate_=$ingest_rate
		[ "$sc" != issue ] || rate_=$issue_rate
		declare -A p50_ p99_ p999_ r99_
		for s in "${servers[@]}"; do
			p50_[$s]=$(pooled "$sc" "$s" 0.5) p99_[$s]=$(pooled "$sc" "$s" 0.99) p999_[$s]=$(pooled "$sc" "$s" 0.999)
		done
		# The verdict on the median of the rounds' p99s: one round
		# disturbed by something else on the machine moves the pooled
		# p99 of all rounds, not the median.
		for s in "${servers[@]}"; do r99_[$s]=$(med "abp-$sc" "$s" 4); done
		d=$(awk -v a="${r99_[on]}" -v b="${r99_[off]}" 'BEGIN { printf "%d", a - b }')
		floor=$(awk -v a="${r99_[off2]}" -v b="${r99_[off]}" 'BEGIN { printf "%d", a - b }')
		verdict="NOT met"
		[ "$d" -ge 100 ] || verdict=met
		ab_rows+=("| $sc | $(rate "$(med "ab-$sc" on 4)") | $(rate "$(med "ab-$sc" off 4)") | $(grp "$rate_") | $(ms "${p50_[on]}") / $(ms "${p50_[off]}") / $(ms "${p50_[off2]}") | $(ms "${p99_[on]}") / $(ms "${p99_[off]}") / $(ms "${p99_[off2]}") | $(ms "${p999_[on]}") / $(ms "${p999_[off]}") / $(ms "${p999_[off2]}") | $(ms "${r99_[on]}") / $(ms "${r99_[off]}") / $(ms "${r99_[off2]}") | **$(awk -v d="$d" 'BEGIN { printf "%+.3f", d / 1000 }')** | $(awk -v d="$floor" 'BEGIN { printf "%+.3f", d / 1000 }') | $verdict |")
	done

	# The flush: a backlog made while PostgreSQL is down, drained when it
	# returns. Counted = rollup sum of ab_org after minus before.
	csum() { sql "SELECT coalesce(sum(tokens_issued + api_calls), 0) FROM analytics_org_hourly WHERE organization_id = '$ab_org'"; }
	settle() { # waits until the sum stops moving (2 s alike), prints it
		local a b
		a=$(csum)
		for _ in $(seq 60); do sleep 2; b=$(csum); [ "$b" = "$a" ] && break; a=$b; done
		echo "$a"
	}
	before=$(settle)
	scripts/pg.sh stop >/dev/null 2>&1 || die "could not stop PostgreSQL for the backlog"
	line=$(ab_wrk on ingest "$backlog_seconds")
	answered=$(awk '{ print $5 }' <<<"$line")
	note "backlog: $answered ingest answers with PostgreSQL stopped"
	scripts/pg.sh start >/dev/null 2>&1 || die "PostgreSQL did not start again"
	if [ "$pin" = 1 ]; then
		pm=$(head -1 "$RINGSIDE_PG_DIR/postmaster.pid")
		for p in $pm $(ps -o pid= --ppid "$pm"); do taskset -a -p -c "$server_cpu" "$p" >/dev/null 2>&1 || true; done
	fi
	# Polls every 50 ms: from the last poll that saw nothing applied to
	# the one that saw the last change (so the rate is a lower bound).
	first='' last='' prev=$before t_start=$(now_s) pt=$t_start
	while :; do
		c=$(csum) t=$(now_s)
		if [ "$c" != "$prev" ]; then
			[ -n "$first" ] || { first=$pt; first_sum=$prev; }
			last=$t prev=$c
		fi
		pt=$t
		[ -n "$last" ] && awk -v a="$last" -v b="$t" 'BEGIN { exit !(b - a > 3) }' && break
		awk -v a="$t_start" -v b="$t" 'BEGIN { exit !(b - a > 60) }' && break
		sleep 0.05
	done
	counted=$((prev - before))
	if [ -z "$first" ]; then
		flush_line="- Flush: nothing reached the rollups within 60 s of PostgreSQL's return ($answered ingest answers while it was down: is ingest counted?)"
	else
		drained=$((prev - first_sum))
		secs=$(awk -v a="$first" -v b="$last" 'BEGIN { printf "%.2f", b - a }')
		flush_line="- Flush: $answered ingest answers while PostgreSQL was stopped; on its return the rollups grew by $counted ($(awk -v c="$counted" -v a="$answered" 'BEGIN { print (c >= a ? "every answered call counted" : "FEWER than answered") }')), $drained applied within $secs s (from the last poll before the first change to the poll that saw the last): **≥ $(awk -v d="$drained" -v s="$secs" 'BEGIN { printf "%.0f", (s > 0 ? d / s : 0) }') counted events/s** (polled every 50 ms; goal ≥ 100 000/s: $(awk -v d="$drained" -v s="$secs" 'BEGIN { print (s > 0 && d / s >= 100000 ? "met" : "NOT met") }'))"
	fi
	note "${flush_line#- }"
	stop_servers
fi

# ---- Report ----
{
	echo
	echo "### Tenant analytics: rollups vs raw events ($(date -u '+%Y-%m-%d %H:%M UTC'))"
	echo
	echo "- Command: \`BENCH_ROUNDS=$rounds BENCH_DURATION=$duration BENCH_CONNECTIONS=$conns BENCH_WORKERS=$workers BENCH_ANALYTICS_PIN=$pin BENCH_ANALYTICS_RAW_EVENTS=$raw_events BENCH_ANALYTICS_SCENARIOS=\"$scenarios\" perf/bench_analytics.sh\` (in \`make bench\`)"
	echo "- Data (perf/analytics/load.sql, PostgreSQL 15, fsync off, default settings otherwise: shared_buffers 128 MB, work_mem 4 MB): tenant $org, $agents agents every hour of $days days: **$(grp "$t_events") events** ($(grp "$t_tokens") tokens issued); $others other tenants, $(grp "$o_events") events; $(grp "$rows_hourly") agent-hour, $(grp "$rows_org") org-hour, $(grp "$rows_monthly") agent-month rows ($rollup_size), $(grp "$rows_agents") agents. **Loaded in $load_s s.**"
	echo "- Raw side (perf/analytics/raw_events.sql): analytics_events, one row per event, index (organization_id, occurred_at): **$(grp "$raw_rows") of $org's events** ($raw_size), drawn from the same agent-hours, loaded in $raw_load_s s (index built after). Extrapolated **linearly** to all $org's events: × $scale."
	echo "- Load: Ringside wrk -t1 -c$conns (keep-alive, Bearer HS256); raw and rollup SQL pgbench -M prepared -c$conns -j1; medians of $rounds alternating rounds of $duration s after $warmup s of warm-up; $( [ "$pin" = 1 ] && echo "Ringside (--workers $workers) and PostgreSQL on CPU $server_cpu, wrk and pgbench on CPU $gen_cpu" || echo "nothing pinned, --workers $workers")"
	echo "- Machine: nproc $(nproc), $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo), kernel $(uname -r); Ringside $ringside, tree $(git describe --always --dirty 2>/dev/null || echo '?')"
	[ -z "$ringside_skip" ] || echo "- **Ringside not measured: $ringside_skip**"
	for c in "${checks[@]}"; do echo "- Answer check, $c"; done
	echo
	echo "| scenario | Ringside req/s | p50 ms | p99 ms | p99.9 ms | raw tps | p50 ms | p99 ms | p99.9 ms | raw alone ms | raw at $(grp "$t_events") events (×$scale): p99, alone | raw / Ringside p99 (measured, extrapolated) | rollup SQL tps | p50 ms | p99 ms |"
	echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
	for sc in $scenarios; do
		if [ -z "$ringside_skip" ]; then
			r99=$(med "$sc" ringside 6)
			rcols="$(rate "$(med "$sc" ringside 4)") | $(ms "$(med "$sc" ringside 5)") | $(ms "$r99") | $(ms "$(med "$sc" ringside 7)")"
			rat="$(ratio "$(med "$sc" raw 6)" "$r99"), $(ratio "$(awk -v u="$(med "$sc" raw 6)" -v k="$scale" 'BEGIN { print u * k }')" "$r99")"
		else
			rcols="— | — | — | —" rat="—"
		fi
		a=$(awk -v s="$sc" '$1 == s { print $2 }' "$alone")
		echo "| $sc | $rcols | $(rate "$(med "$sc" raw 4)") | $(ms "$(med "$sc" raw 5)") | $(ms "$(med "$sc" raw 6)") | $(ms "$(med "$sc" raw 7)") | $(ms "$a") | $(xs "$(med "$sc" raw 6)"), $(xs "$a") | $rat | $(rate "$(med "$sc" rollup 4)") | $(ms "$(med "$sc" rollup 5)") | $(ms "$(med "$sc" rollup 6)") |"
	done
	echo
	echo "(pgbench's percentiles come from its per-transaction log: a round of a slow raw query holds few transactions, each client finishing the one in flight when the time is up; the count is in the rounds' lines on stderr.)"
	echo
	if [ -z "$ringside_skip" ]; then
		for sc in $scenarios; do
			p=$(med "$sc" ringside 6)
			echo "- Goal p99 < 5 ms, GET ${rpath[$sc]}: $(ms "$p") ms ($(awk -v p="$p" 'BEGIN { print (p < 5000 ? "met" : "NOT met") }'))"
		done
	else
		echo "- Goal p99 < 5 ms per route: not measured (Ringside's routes absent)."
	fi
	if [ -n "$ab_note" ]; then
		echo "- Counting's cost: $ab_note."
	elif [ ${#ab_rows[@]} -gt 0 ]; then
		echo
		echo "Counting's cost: the same binary, --analytics-enabled true (on) and false (off, and off2: the A/A pair, their difference this machine's noise), tenant $ab_org. Saturation: wrk -t1 -c$conns, medians of $rounds alternating rounds. Paced: perf/paced_post, open loop at the rate shown over $conns connections, each request timed from its scheduled send, $ab_rounds rounds of $duration s in rotating order, percentiles of all rounds' requests pooled, and the median of the rounds' own p99s (the verdict's):"
		echo
		echo "| what | on req/s (saturated) | off req/s | paced rate /s | pooled p50 ms on / off / off2 | pooled p99 ms on / off / off2 | pooled p99.9 ms on / off / off2 | median of the rounds' p99, ms, on / off / off2 | that p99: on − off, ms | off2 − off (noise), ms | goal < 0.1 ms |"
		echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
		for r in "${ab_rows[@]}"; do echo "$r"; done
		echo
		echo "$flush_line"
	fi
} | tee -a "$out"
