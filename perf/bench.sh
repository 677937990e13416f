#!/bin/bash
# Ringside against nginx on this machine: both serve the same scenarios,
# wrk loads each server in turn for BENCH_ROUNDS rounds, once per CPU
# arrangement, and the medians of req/s, p50, p99 and p99.9 are printed and
# written to build/bench/latest.md (for perf/RESULTS.md).
#
# First the microbenchmarks, each beside a peer library on one core
# (PERF_BIN_DIR/bench_X against PERF_BIN_DIR/bench_X_<peer>).
#
# Arrangements (BENCH_ARRANGEMENTS, run in that order, servers restarted for
# each):
#   isolated  each server confined to CPU 0 (taskset -c 0) with 1 worker,
#             wrk on CPU 1 (taskset -c 1): the latencies are the servers'.
#   shared    BENCH_WORKERS workers each, wrk unconfined on the same CPUs.
#             A woken worker may wait for wrk's time slice, so the tail
#             latencies measure the scheduler too. Where the binary has
#             --cpu-affinity, Ringside runs twice: pinned (auto) and
#             unpinned (off).
# In each arrangement, where the binary has --access-log, one more
# scenario: GET /health on Ringside writing an access log, beside the same
# Ringside without one.
#
# Env: BENCH_ROUNDS=5 BENCH_DURATION=5s BENCH_THREADS=1 BENCH_CONNECTIONS=50
#      BENCH_WORKERS=$(nproc) (each server, shared arrangement),
#      BENCH_ARRANGEMENTS="isolated shared", RINGSIDE_BIN=build/ringside,
#      PERF_BIN_DIR=build/perf, RINGSIDE_SAMPLES=samples (from the
#      repo root: ingest-full.json, the body of the ingest scenario)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=perf/lib.sh
. perf/lib.sh

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
arrangements=${BENCH_ARRANGEMENTS:-isolated shared}
ringside=${RINGSIDE_BIN:-build/ringside}
nginx=/usr/sbin/nginx
out=build/bench/latest.md
samples=${RINGSIDE_SAMPLES:-samples}
server_cpu=0 wrk_cpu=1 # the isolated arrangement's CPUs
warmup=20              # GET /health to every Ringside before the rounds

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
declare -A seen
for arr in $arrangements; do
	[ -z "${seen[$arr]:-}" ] || die "\"$arr\" twice in BENCH_ARRANGEMENTS"
	seen[$arr]=1
	case $arr in
	isolated)
		taskset -c "$server_cpu,$wrk_cpu" true 2>/dev/null ||
			die "isolated needs CPUs $server_cpu and $wrk_cpu (BENCH_ARRANGEMENTS=shared runs without)" ;;
	shared) ;;
	*) die "unknown arrangement \"$arr\" in BENCH_ARRANGEMENTS (isolated, shared)" ;;
	esac
done

# Flags landing in Ringside while this harness runs: use them if there.
ringside_help=$("$ringside" --help 2>&1) || die "$ringside --help failed"
has_flag() { grep -q -- "$1" <<<"$ringside_help"; }
has_affinity=0 has_access_log=0
if has_flag --cpu-affinity; then has_affinity=1; fi
if has_flag --access-log; then has_access_log=1; fi

# Every wait is bounded: wrk by its duration plus a margin, the
# microbenchmarks and one-shot commands by these.
wrk_limit=$(awk -v d="$duration" 'BEGIN {
	u = substr(d, length(d)); s = d + 0
	print int(s * (u == "h" ? 3600 : u == "m" ? 60 : 1)) + 30 }')
micro_limit=600 cmd_limit=30

bench_workdir bench # nginx's workers drop root and read @BODY@ files here

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
		$0 = subst($0, "@CPU_AFFINITY@", ENVIRON["CPU_AFFINITY"])
		$0 = subst($0, "@PORT@", ENVIRON["PORT"])
		$0 = subst($0, "@TMP@", ENVIRON["TMP"])
		print subst($0, "@LOCATIONS@", ENVIRON["LOCATIONS"])
	}' "$1"
}

locations=$(while read -r name _ _ _ loc; do
	printf '%s\n\t\t' "${loc//@BODY@/root $tmp; try_files /$name.body =500}"
done <<<"$SCENARIOS")

# The servers, by name: each arrangement starts some of them.
#   nginx              perf/nginx.conf.in
#   ringside           Ringside as it starts by default
#   ringside-pinned    --cpu-affinity auto (worker i on the i-th allowed CPU)
#   ringside-unpinned  --cpu-affinity off (the scheduler places workers)
#   ringside-log       --access-log FILE, one line per request
ringside_flags() {
	case $1 in
	ringside-pinned) echo "--cpu-affinity auto" ;;
	ringside-unpinned) echo "--cpu-affinity off" ;;
	ringside-log) echo "--access-log $tmp/$arr/access.log" ;;
	esac
}

# The current arrangement, set by arrange ARR: its name, workers per server,
# the commands confining servers and wrk (empty: unconfined), nginx's
# affinity line, the servers of the scenarios (nginx first) and of the
# access-log scenario (the baseline first; empty without --access-log).
arr='' arr_workers='' server_pin=() wrk_pin=() nginx_affinity=''
declare -A arr_desc arr_servers log_pair log_check port
arrange() {
	arr=$1
	log_pair[$arr]=
	[ $has_access_log -eq 0 ] || log_pair[$arr]="ringside ringside-log"
	case $arr in
	isolated)
		arr_workers=1 nginx_affinity=
		server_pin=(taskset -c "$server_cpu") wrk_pin=(taskset -c "$wrk_cpu")
		arr_servers[$arr]="nginx ringside"
		arr_desc[$arr]="each server confined to CPU $server_cpu (\`taskset -c $server_cpu\`) with 1 worker (nginx \`worker_processes 1\`, Ringside \`--workers 1\`), wrk on CPU $wrk_cpu (\`taskset -c $wrk_cpu\`)"
		;;
	shared)
		# nginx as it ships: worker_cpu_affinity is off by default.
		arr_workers=$workers nginx_affinity=
		server_pin=() wrk_pin=()
		arr_servers[$arr]="nginx ringside"
		arr_desc[$arr]="$workers workers each (nginx unpinned, its default), wrk unconfined on the same CPUs"
		if [ $has_affinity -eq 1 ]; then
			arr_servers[$arr]="nginx ringside-pinned ringside-unpinned"
			arr_desc[$arr]+="; Ringside pinned (\`--cpu-affinity auto\`) and unpinned (\`--cpu-affinity off\`)"
		else
			arr_desc[$arr]+="; Ringside as it starts by default (this binary has no \`--cpu-affinity\`)"
		fi
		;;
	esac
	[ $has_access_log -eq 1 ] || arr_desc[$arr]+="; no access-log scenario (no \`--access-log\`)"
}

# start_server NAME: one server of the current arrangement, on a free port
# (port[NAME]), listening before this returns.
start_server() {
	local name=$1 p log=$tmp/$arr/$1.log
	p=$(free_port)
	if [ "$name" = nginx ]; then
		WORKERS=$arr_workers CPU_AFFINITY=$nginx_affinity PORT=$p TMP=$tmp/$arr \
			LOCATIONS=$locations render perf/nginx.conf.in >"$tmp/$arr/nginx.conf"
		"${server_pin[@]}" "$nginx" -p "$tmp/$arr" -c "$tmp/$arr/nginx.conf" \
			-e "$tmp/$arr/error.log" -g 'daemon off;' >"$log" 2>&1 &
	else
		# shellcheck disable=SC2046 # ringside_flags: words without spaces
		"${server_pin[@]}" "$ringside" --listen "127.0.0.1:$p" --workers "$arr_workers" \
			--jwt-secret-file "$tmp/jwt-secret" --log-level warn \
			$(ringside_flags "$name") >"$log" 2>&1 &
	fi
	pids+=($!)
	wait_port $! "$p" "$log"
	port[$name]=$p
}

# check_ingest SERVER: one report, twice on one connection: the server must
# answer 202 and keep the connection after reading the body (num_connects
# 0 the second time), or the ingest rounds would not compare the same work.
check_ingest() {
	local url="http://127.0.0.1:${port[$1]}/api/metrics/ingest" got
	got=$(curl -sS --max-time "$cmd_limit" -H 'Expect:' -H 'Content-Type: application/json' \
		-H "Authorization: Bearer $BENCH_TOKEN" --data-binary "@$BENCH_INGEST_BODY" \
		-o "$tmp/ingest.1" -o "$tmp/ingest.2" -w '%{http_code} %{num_connects}\n' \
		"$url" "$url" | tr '\n' ' ') || die "$1: POST $url failed"
	[ "$got" = "202 1 202 0 " ] ||
		die "$1: POST $url: want \"202 1 202 0 \" (status, new connections), got \"$got\": $(cat "$tmp/ingest.1")"
}

# run_wrk URL SCRIPT: prints "req/s p50 p99 p99.9 requests", latencies in
# µs, from the line perf/percentiles.lua adds; dies on any answer >= 400 or
# socket error (connect, read, write, timeout).
run_wrk() {
	timeout -k 5 "$wrk_limit" "${wrk_pin[@]}" wrk -t"$threads" -c"$conns" -d"$duration" \
		-s "$2" "$1" </dev/null >"$tmp/wrk.out" 2>&1 || { cat "$tmp/wrk.out" >&2; die "wrk failed"; }
	awk '$1 == "bench-result" {
		found = 1
		if ($2 == 0 || $7 + $8 + $9 + $10 + $11 > 0) exit 1
		printf "%.2f %d %d %d %d\n", $2 / ($3 / 1e6), $4, $5, $6, $2
	}
	END { if (!found) exit 1 }' "$tmp/wrk.out" ||
		{ cat "$tmp/wrk.out" >&2; die "bad answers or socket errors from $1"; }
}

# Microbenchmarks: each prints "<name> <ns/op> <MB/s>" (a median of 5).
micro=$tmp/micro
: >"$micro"
bindir=${PERF_BIN_DIR:-build/perf}
# shellcheck disable=SC2043 # one program with peers today; more may join
for ours in "$bindir"/bench_http_parser; do
	for peer in "$ours"_*; do
		# Only the peer programs, not the compiler's .o and .d files.
		[[ -x $peer && $peer != *.[od] ]] || continue
		read -r oname ons omb < <(timeout "$micro_limit" taskset -c 0 "$ours") || die "$ours failed"
		read -r pname pns pmb < <(timeout "$micro_limit" taskset -c 0 "$peer") || die "$peer failed"
		echo "${ours##*/bench_} $oname $ons $omb $pname $pns $pmb" >>"$micro"
	done
done
printf '%-12s %-24s %10s %8s\n' benchmark parser 'ns/op' 'MB/s'
while read -r bench oname ons omb pname pns pmb; do
	printf '%-12s %-24s %10s %8s\n' "$bench" "$pname" "$pns" "$pmb" "$bench" "$oname" "$ons" "$omb"
	printf '%-12s %-24s %10.2f\n' "$bench" "speed-up" "$(awk -v a="$pns" -v b="$ons" 'BEGIN { print a / b }')"
done <"$micro"
# The ingest validator beside jansson on the full sample, one core.
read -r _ v_ns v_mb _ j_ns j_mb < <(timeout "$micro_limit" taskset -c 0 \
	"$bindir/bench_ingest_validator" "$samples/ingest-full.json") || die "bench_ingest_validator failed"
printf '%-12s %-24s %10s %8s\n' ingest jansson "$j_ns" "$j_mb" ingest ringside "$v_ns" "$v_mb"
printf '%-12s %-24s %10.2f\n' ingest speed-up "$(awk -v a="$j_ns" -v b="$v_ns" 'BEGIN { print a / b }')"

# The cost of one /metrics scrape, every route observed (no peer: the
# end-to-end scenario below puts it beside nginx).
read -r _ scrape_us scrape_bytes _ gzip_us gzip_bytes < <(timeout "$micro_limit" taskset -c 0 \
	"$bindir/bench_metrics_scrape") || die "bench_metrics_scrape failed"
printf 'one /metrics scrape: %s us for %s bytes; with gzip %s us -> %s bytes\n' \
	"$scrape_us" "$scrape_bytes" "$gzip_us" "$gzip_bytes"
# One GET /metrics/fleet body over 10 000 agents each holding the full
# sample (no peer either); its line as it prints it.
fleet_expo=$(timeout "$micro_limit" taskset -c 0 "$bindir/bench_fleet_expo") || die "bench_fleet_expo failed"
echo "$fleet_expo"
echo

# Each scenario's wrk script: the method, the scenario's script from perf/
# if it names one, then perf/percentiles.lua (p50, p99, p99.9 and the error
# counts at the end of the run). dofile keeps each script's locals its own.
declare -A script
make_script() { # NAME METHOD LUA
	script[$1]=$tmp/$1.lua
	[ "$3" = - ] || [ -r "perf/$3" ] || die "no perf/$3 for $1"
	{
		echo "wrk.method = \"$2\""
		[ "$3" = - ] || echo "dofile([[$PWD/perf/$3]])"
		echo "dofile([[$PWD/perf/percentiles.lua]])"
	} >"${script[$1]}"
}
while read -r name method _ lua _; do
	make_script "$name" "$method" "$lua"
done <<<"$SCENARIOS"
make_script access-log GET -

# Agents need a token: an HS256 key for this run only, and one token for
# every wrk connection (one agent reporting over and over).
(umask 077 && head -c 48 /dev/urandom >"$tmp/jwt-secret")
BENCH_TOKEN=$(timeout "$cmd_limit" "$ringside" token --sub bench-agent --org bench-org \
	--scope metrics:write --ttl 3600s --jwt-secret-file "$tmp/jwt-secret") || die "ringside token failed"
export BENCH_TOKEN

# in_order ROUND SERVER...: the servers, reversed in even rounds, so a
# drift (heat, noise) hits all alike.
in_order() {
	local r=$1 s order=()
	shift
	for s in "$@"; do
		if [ $((r % 2)) -eq 1 ]; then order+=("$s"); else order=("$s" "${order[@]}"); fi
	done
	echo "${order[*]}"
}

# measure SCENARIO SERVER PATH ROUND: one wrk run, into the results.
results=$tmp/results
: >"$results"
measure() {
	local res rps p50 p99 p999 n
	res=$(run_wrk "http://127.0.0.1:${port[$2]}$3" "${script[$1]}")
	read -r rps p50 p99 p999 n <<<"$res"
	printf '%-8s %-10s round %d/%d %-17s %8.0f req/s  p50 %6d  p99 %6d  p99.9 %6d us\n' \
		"$arr" "$1" "$4" "$rounds" "$2" "$rps" "$p50" "$p99" "$p999" >&2
	echo "$arr $1 $2 $rps $p50 $p99 $p999 $n" >>"$results"
}

for a in $arrangements; do
	arrange "$a"
	mkdir -m 755 "$tmp/$arr"
	port=()
	# shellcheck disable=SC2086 # server lists are words
	started=$(printf '%s\n' ${arr_servers[$arr]} ${log_pair[$arr]} | awk '!seen[$0]++')
	first_ringside=
	for server in $started; do
		start_server "$server"
		[[ -n $first_ringside || $server != ringside* ]] || first_ringside=$server
	done

	# Some traffic to every Ringside, so /metrics has its request series;
	# then the bytes nginx serves for @BODY@ locations: the first
	# Ringside's answer now.
	for server in $started; do
		[ "$server" != nginx ] || continue
		for _ in $(seq "$warmup"); do
			curl -sf --max-time "$cmd_limit" -o /dev/null "http://127.0.0.1:${port[$server]}/health" ||
				die "$server did not answer /health"
		done
	done
	while read -r name _ path _ loc; do
		[[ $loc == *@BODY@* ]] || continue
		curl -sf --max-time "$cmd_limit" -o "$tmp/$name.body" \
			"http://127.0.0.1:${port[$first_ringside]}$path" || die "$first_ringside did not answer $path"
	done <<<"$SCENARIOS"
	for server in ${arr_servers[$arr]}; do check_ingest "$server"; done

	for r in $(seq "$rounds"); do
		while read -r name _ path _; do
			# shellcheck disable=SC2086
			for server in $(in_order "$r" ${arr_servers[$arr]}); do
				measure "$name" "$server" "$path" "$r"
			done
		done <<<"$SCENARIOS"
		if [ -n "${log_pair[$arr]}" ]; then
			# shellcheck disable=SC2086
			for server in $(in_order "$r" ${log_pair[$arr]}); do
				measure access-log "$server" /health "$r"
			done
		fi
	done
	stop_servers

	# The access-log scenario measures one line per request: count them
	# once Ringside has stopped (and flushed). wrk counts the answers it
	# got; up to one request per connection may still be in flight when
	# a run ends, and each run's end may cut them.
	if [ -n "${log_pair[$arr]}" ]; then
		lines=0
		[ ! -f "$tmp/$arr/access.log" ] || lines=$(wc -l <"$tmp/$arr/access.log")
		sent=$(awk -v a="$arr" -v w="$warmup" '$1 == a && $3 == "ringside-log" { n += $8 }
			END { print n + w }' "$results")
		log_check[$arr]="$lines lines in the access log for $sent requests answered ($warmup of them warm-up)"
		if awk -v l="$lines" -v s="$sent" -v extra="$((rounds * conns))" \
			'BEGIN { exit !(l >= 0.99 * s && l <= 1.01 * (s + extra)) }'; then
			log_check[$arr]+=": one per request"
		else
			log_check[$arr]+=": NOT one per request, the access-log ratio does not measure the log"
			echo "bench: $arr: ${log_check[$arr]}" >&2
		fi
	fi
done

median() { sort -g | awk '{ v[NR] = $1 } END { print NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
# medians ARR SCENARIO SERVER: "req/s p50 p99 p99.9", each the median of
# the rounds.
medians() {
	local c m=()
	for c in 4 5 6 7; do
		m+=("$(awk -v a="$1" -v s="$2" -v v="$3" -v c="$c" \
			'$1 == a && $2 == s && $3 == v { print $c }' "$results" | median)")
	done
	echo "${m[*]}"
}

# rows ARR: "scenario server req/s p50 p99 p99.9" (medians, latencies in
# µs) for each server of each scenario, then for each server after the
# first (nginx; for access-log, Ringside without the log) a ratio row
# "scenario server/first req/s p50 p99 p99.9" (ratios of medians).
rows() {
	local name server
	{
		while read -r name _; do
			for server in ${arr_servers[$1]}; do
				echo "$name $server $(medians "$1" "$name" "$server")"
			done
		done <<<"$SCENARIOS"
		for server in ${log_pair[$1]}; do
			echo "access-log $server $(medians "$1" access-log "$server")"
		done
	} | awk '
	function flush() { printf "%s", ratios; ratios = "" }
	$1 != scenario {
		flush()
		scenario = $1; first = $2
		for (i = 3; i <= 6; i++) base[i] = $i
		print; next
	}
	{
		print
		ratios = ratios sprintf("%s %s/%s %.2f %.2f %.2f %.2f\n", $1, $2, first,
			$3 / base[3], base[4] ? $4 / base[4] : 0, base[5] ? $5 / base[5] : 0, base[6] ? $6 / base[6] : 0)
	}
	END { flush() }'
}
ms() { awk -v u="$1" 'BEGIN { printf "%.3f", u / 1000 }'; }

for arr in $arrangements; do
	echo "$arr: ${arr_desc[$arr]//\`/}"
	[ -z "${log_check[$arr]:-}" ] || echo "access-log: ${log_check[$arr]}"
	printf '%-10s %-28s %12s %9s %9s %9s\n' scenario server 'req/s' 'p50 ms' 'p99 ms' 'p99.9 ms'
	while read -r name server rps p50 p99 p999; do
		if [[ $server == */* ]]; then
			printf '%-10s %-28s %12s %9s %9s %9s\n' "$name" "$server" "$rps" "$p50" "$p99" "$p999"
		else
			printf '%-10s %-28s %12.0f %9s %9s %9s\n' "$name" "$server" "$rps" \
				"$(ms "$p50")" "$(ms "$p99")" "$(ms "$p999")"
		fi
	done < <(rows "$arr")
	echo
done

mkdir -p "${out%/*}"
{
	echo "## $(date -u '+%Y-%m-%d %H:%M UTC')"
	echo
	echo "- Command: \`BENCH_ROUNDS=$rounds BENCH_DURATION=$duration" \
		"BENCH_THREADS=$threads BENCH_CONNECTIONS=$conns BENCH_WORKERS=$workers" \
		"BENCH_ARRANGEMENTS=\"$arrangements\" perf/bench.sh\`; each run" \
		"\`wrk -t$threads -c$conns -d$duration -s SCRIPT URL\`, SCRIPT the scenario's" \
		"(ingest: perf/ingest.lua, POST of ingest-full.json, one agent token) then" \
		"perf/percentiles.lua (p50, p99, p99.9); servers alternating, medians of $rounds rounds" \
		"for each column, ratios of medians"
	echo "- Servers: nginx (perf/nginx.conf.in) and" \
		"\`$ringside --workers N --jwt-secret-file KEY --log-level warn\` (rate limit off);" \
		"ringside-pinned adds \`--cpu-affinity auto\`, ringside-unpinned \`--cpu-affinity off\`," \
		"ringside-log \`--access-log FILE\` (where the binary has them)"
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
	for arr in $arrangements; do
		echo
		echo "**$arr**: ${arr_desc[$arr]}."
		[ -z "${log_check[$arr]:-}" ] || echo "access-log: ${log_check[$arr]}."
		echo
		echo "| scenario | server | req/s | p50 | p99 | p99.9 |"
		echo "|---|---|---:|---:|---:|---:|"
		while read -r name server rps p50 p99 p999; do
			if [[ $server == */* ]]; then
				echo "| $name | $server | $rps | $p50 | $p99 | $p999 |"
			else
				printf '| %s | %s | %.0f | %s ms | %s ms | %s ms |\n' "$name" "$server" "$rps" \
					"$(ms "$p50")" "$(ms "$p99")" "$(ms "$p999")"
			fi
		done < <(rows "$arr")
	done
} >"$out"
echo "written to $out" >&2

# A wrong access-log count fails the run, after the figures are written.
for arr in $arrangements; do
	[[ ${log_check[$arr]:-} != *NOT* ]] || die "$arr: ${log_check[$arr]}"
done
