#!/bin/bash
# Token issuance (RFC 6749 client credentials, RS256 and ES256) and token
# introspection (RFC 7662): Ringside beside oidc-provider, a real OAuth 2.0
# server (Node; perf/peer/setup.sh installs the version perf/peer pins),
# in the same run, with the same client, the same signing key and the same
# form bodies. wrk -t1 with keep-alive loads each server in turn for
# BENCH_ROUNDS alternating rounds (Ringside first in odd rounds, the peer
# first in even ones); medians of req/s, p50, p99 and p99.9 are printed and
# appended to build/bench/latest.md (for perf/RESULTS.md).
#
# Scenarios, for each algorithm (each server restarted with that key):
#   issue       POST the token form (grant_type=client_credentials&scope=S),
#               the client authenticated with HTTP Basic (client_secret_basic;
#               BENCH_TOKEN_AUTH=post puts client_id/client_secret in the body
#               instead): Ringside POST /api/v1/token, the peer POST /token.
#               Each answer is a freshly signed JWT.
#   introspect  POST token=T, one token issued before the rounds, again and
#               again. Ringside: T is its JWT, the caller an operator with
#               tokens:read (Bearer). The peer: oidc-provider refuses to
#               introspect JWTs, so T is an opaque token of the same client
#               (a lookup in its store: its cheapest path), the caller the
#               client itself (Basic), as its introspection endpoint requires.
#   introspect-paced  the same at about BENCH_TOKEN_PACED_RATE requests a
#               second (0: not run): the issue's goal is a p99 at 30 000/s,
#               not at saturation, where a closed loop's latency is its
#               queue (Little: 16 connections at 150 000/s wait ~0.1 ms
#               each, at 10 000/s 1.6 ms). wrk -c RATE * 1.5 / 1000 with a
#               1 ms delay() after each answer (wrk's timers make that
#               ~1.2 ms here: 33 connections reached 24 000/s, 45 reach
#               30 400/s against a fast server;
#               BENCH_TOKEN_PACED_CONNECTIONS overrides): a closed loop
#               with think time, not an open loop (no coordinated-omission
#               correction). A server slower than that answers what it
#               can: its row is its rate and latency under that load.
#
# Arrangements (BENCH_ARRANGEMENTS, in that order):
#   isolated  each server confined to CPU 1 (taskset -c 1) with one worker
#             (Ringside --workers 1, one Node process), Ringside's
#             PostgreSQL confined there too; wrk on CPU 0 (taskset -c 0).
#             The rates are per core.
#   shared    BENCH_WORKERS workers each (Ringside --workers N, N Node
#             processes of the cluster module sharing the port: Node runs
#             JavaScript on one thread), nothing pinned, wrk beside them.
#
# Ringside's half needs its identity routes (POST /api/v1/agents, its
# credentials, /api/v1/token, /api/v1/token/introspect). Where they are
# missing the script says so and measures the peer alone.
#
# Env: BENCH_ROUNDS=5 BENCH_DURATION=5 (seconds) BENCH_WARMUP=2 (seconds of
#      unrecorded load per server and scenario) BENCH_CONNECTIONS=16
#      BENCH_WORKERS=$(nproc) BENCH_ARRANGEMENTS="isolated shared"
#      BENCH_TOKEN_ALGS="RS256 ES256" BENCH_TOKEN_AUTH=basic|post
#      BENCH_TOKEN_SCOPE=metrics:write BENCH_TOKEN_PACED_RATE=30000
#      BENCH_TOKEN_PACED_CONNECTIONS=RATE*1.5/1000 RINGSIDE_BIN=build/ringside
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=perf/lib.sh
. perf/lib.sh

die() { echo "bench_token: $*" >&2; exit 1; }
note() { echo "bench_token: $*" >&2; }

rounds=${BENCH_ROUNDS:-5} duration=${BENCH_DURATION:-5} warmup=${BENCH_WARMUP:-2}
conns=${BENCH_CONNECTIONS:-16}
workers=${BENCH_WORKERS:-$(nproc)}
arrangements=${BENCH_ARRANGEMENTS:-isolated shared}
algs=${BENCH_TOKEN_ALGS:-RS256 ES256}
auth=${BENCH_TOKEN_AUTH:-basic}
scope=${BENCH_TOKEN_SCOPE:-metrics:write}
ringside=${RINGSIDE_BIN:-build/ringside}
out=build/bench/latest.md
server_cpu=1 wrk_cpu=0 # the isolated arrangement's CPUs
paced_rate=${BENCH_TOKEN_PACED_RATE:-30000}
scenarios="issue introspect"
case $paced_rate in '' | *[!0-9]*) die "BENCH_TOKEN_PACED_RATE must be a number of requests a second" ;; esac
paced_conns=0
if [ "$paced_rate" -gt 0 ]; then
	scenarios="$scenarios introspect-paced"
	paced_conns=${BENCH_TOKEN_PACED_CONNECTIONS:-$(((paced_rate * 15 + 9999) / 10000))}
fi

command -v wrk >/dev/null || die "no wrk (scripts/deps.sh installs it)"
command -v openssl >/dev/null || die "no openssl"
command -v curl >/dev/null || die "no curl (scripts/deps.sh installs it)"
case $auth in basic | post) ;; *) die "BENCH_TOKEN_AUTH is basic or post, not \"$auth\"" ;; esac
for a in $algs; do
	case $a in RS256 | ES256) ;; *) die "BENCH_TOKEN_ALGS: RS256 and ES256, not \"$a\"" ;; esac
done
for arr in $arrangements; do
	case $arr in
	isolated)
		taskset -c "$server_cpu,$wrk_cpu" true 2>/dev/null ||
			die "isolated needs CPUs $server_cpu and $wrk_cpu (BENCH_ARRANGEMENTS=shared runs without)" ;;
	shared) ;;
	*) die "unknown arrangement \"$arr\" in BENCH_ARRANGEMENTS (isolated, shared)" ;;
	esac
done

perf/peer/setup.sh || die "perf/peer/setup.sh could not install oidc-provider"
peer_version=$(node -p 'require("./perf/peer/node_modules/oidc-provider/package.json").version')
node_version=$(node --version)

# json FIELD: the top-level FIELD of the JSON object on stdin (a string or
# a number), or exit 1.
json() {
	node -e 'let s = ""; process.stdin.on("data", (d) => { s += d; }).on("end", () => {
		let v; try { v = JSON.parse(s)[process.argv[1]]; } catch { process.exit(1); }
		if (v === undefined || v === null) process.exit(1);
		console.log(v); })' "$1"
}
# jwt_alg TOKEN: the alg of a JWS's protected header.
jwt_alg() {
	node -e 'try { console.log(JSON.parse(Buffer.from(process.argv[1].split(".")[0], "base64url")).alg); }
		catch { console.log("not-a-JWT"); }' "$1"
}
urlenc() { node -e 'process.stdout.write(encodeURIComponent(process.argv[1]))' "$1"; }
# RFC 6749 2.3.1: id and secret form-encoded, then Basic.
basic() { node -e 'process.stdout.write("Basic " + Buffer.from(encodeURIComponent(process.argv[1]) + ":"
	+ encodeURIComponent(process.argv[2])).toString("base64"))' "$1" "$2"; }

mkdir -p "$(dirname "$out")"
pg_started=0
# The cluster only if this run made it (it may use one already running).
destroy_own_pg() { if [ $pg_started -eq 1 ]; then pg_destroy_quietly; fi; }
bench_workdir bench-token destroy_own_pg
export RINGSIDE_PG_DIR=$tmp/pg RINGSIDE_PG_FAST=1

# Test-only keys, made for this run: RSA 2048 for RS256, P-256 for ES256,
# and the key Ringside hashes client secrets with.
for a in $algs; do
	case $a in
	RS256) openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$tmp/$a.key" 2>/dev/null ;;
	ES256) openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$tmp/$a.key" 2>/dev/null ;;
	esac
	openssl pkey -in "$tmp/$a.key" -pubout -out "$tmp/$a.pub" 2>/dev/null || die "openssl could not make the $a key"
done
openssl rand -hex 32 >"$tmp/client-secret.key"

script=$tmp/token.lua
{ cat perf/token.lua; echo "dofile([[$PWD/perf/percentiles.lua]])"; } >"$script"

# Ringside's half: is it there at all? The routes are checked once it runs.
ringside_skip=''
if [ ! -x "$ringside" ]; then
	ringside_skip="no $ringside (make first)"
else
	ringside_help=$("$ringside" --help 2>&1) || true
	for f in --client-secret-key-file --token-rate-limit --database-url --jwt-private-key-file; do
		grep -q -- "$f" <<<"$ringside_help" || { ringside_skip="$ringside has no $f"; break; }
	done
fi
if [ -z "$ringside_skip" ]; then
	if [ ! -x /usr/lib/postgresql/15/bin/postgres ]; then
		ringside_skip="no PostgreSQL 15 (scripts/deps.sh installs postgresql)"
	else
		pg_started=1
		scripts/pg.sh start >/dev/null || die "PostgreSQL did not start"
		db_url=$(scripts/pg.sh url)
	fi
fi
[ -z "$ringside_skip" ] || note "Ringside not measured: $ringside_skip"

# pin_pg CPUS: PostgreSQL's processes (and the backends they fork later)
# onto CPUS, so that the isolated arrangement's CPU holds all Ringside uses.
pin_pg() {
	[ $pg_started -eq 1 ] || return 0
	local pm p
	pm=$(head -1 "$RINGSIDE_PG_DIR/postmaster.pid")
	for p in $pm $(ps -o pid= --ppid "$pm"); do
		taskset -a -p -c "$1" "$p" >/dev/null 2>&1 || true
	done
}

# http_post PORT PATH FORM AUTH OUTFILE: prints the status code.
http_post() {
	local h=()
	[ -z "$4" ] || h=(-H "Authorization: $4")
	curl -s -o "$5" -w '%{http_code}' --max-time 10 "${h[@]}" \
		-H 'Content-Type: application/x-www-form-urlencoded' --data-raw "$3" \
		"http://127.0.0.1:$1$2" || echo 000
}
# explain WHAT STATUS FILE: a one-line reason for a failed probe.
explain() { echo "$1 answered $2: $(head -c 300 "$3" | tr '\n' ' ')"; }

client_id='' client_secret='' op_token=''
# ringside_register PORT ALG: the benchmark's client, once (it lives in the
# database across restarts); an operator token signed with this key.
ringside_register() {
	local port=$1 alg=$2 st agent
	op_token=$("$ringside" token --sub op --org org1 --scope "agents:write agents:read tokens:read" \
		--jwt-private-key-file "$tmp/$alg.key" --jwt-public-key-file "$tmp/$alg.pub" 2>"$tmp/token.err") ||
		{ ringside_skip="ringside token failed: $(head -c 300 "$tmp/token.err")"; return 1; }
	[ -z "$client_id" ] || return 0
	st=$(curl -s -o "$tmp/agent.json" -w '%{http_code}' --max-time 10 -H "Authorization: Bearer $op_token" \
		-H 'Content-Type: application/json' --data-raw \
		'{"email":"bench@example.com","agentType":"custom","version":"1.0.0","capabilities":["metrics:write"],"owner":"bench","deploymentEnv":"production"}' \
		"http://127.0.0.1:$port/api/v1/agents") || st=000
	if [ "$st" != 201 ]; then
		ringside_skip=$(explain "POST /api/v1/agents" "$st" "$tmp/agent.json")
		[ "$st" != 404 ] || ringside_skip="$ringside_skip (the identity routes have not landed)"
		return 1
	fi
	agent=$(json agentId <"$tmp/agent.json") || { ringside_skip="POST /api/v1/agents: no agentId"; return 1; }
	st=$(curl -s -o "$tmp/cred.json" -w '%{http_code}' --max-time 10 -X POST \
		-H "Authorization: Bearer $op_token" "http://127.0.0.1:$port/api/v1/agents/$agent/credentials") || st=000
	if [ "$st" != 201 ]; then
		ringside_skip=$(explain "POST /api/v1/agents/{agentId}/credentials" "$st" "$tmp/cred.json")
		return 1
	fi
	if ! client_id=$(json clientId <"$tmp/cred.json") || ! client_secret=$(json clientSecret <"$tmp/cred.json"); then
		client_id='' ringside_skip="the credentials answer has no clientId or clientSecret"
		return 1
	fi
}

# Per server: its port, and the bodies and Authorization of each scenario.
declare -A port form authz path
# issue_form: the token request of this run's client and auth method.
issue_form() {
	local f
	f="grant_type=client_credentials&scope=$(urlenc "$scope")"
	[ "$auth" = basic ] || f="$f&client_id=$(urlenc "$client_id")&client_secret=$(urlenc "$client_secret")"
	echo "$f"
}
client_authz() { if [ "$auth" = basic ]; then basic "$client_id" "$client_secret"; fi; }

# probe_ringside ALG: one token and one introspection, checked; sets the
# scenarios' requests, or ringside_skip.
probe_ringside() {
	local p=${port[ringside]} st tok
	form[ringside.issue]=$(issue_form) authz[ringside.issue]=$(client_authz)
	path[ringside.issue]=/api/v1/token path[ringside.introspect]=/api/v1/token/introspect
	st=$(http_post "$p" /api/v1/token "${form[ringside.issue]}" "${authz[ringside.issue]}" "$tmp/r-token.json")
	if [ "$st" != 200 ]; then
		ringside_skip=$(explain "POST /api/v1/token" "$st" "$tmp/r-token.json")
		return 1
	fi
	tok=$(json access_token <"$tmp/r-token.json") || { ringside_skip="POST /api/v1/token: no access_token"; return 1; }
	[ "$(jwt_alg "$tok")" = "$1" ] || { ringside_skip="Ringside signed with $(jwt_alg "$tok"), not $1"; return 1; }
	form[ringside.introspect]="token=$tok" authz[ringside.introspect]="Bearer $op_token"
	st=$(http_post "$p" /api/v1/token/introspect "token=$tok" "Bearer $op_token" "$tmp/r-intro.json")
	if [ "$st" != 200 ] || [ "$(json active <"$tmp/r-intro.json" || true)" != true ]; then
		ringside_skip=$(explain "POST /api/v1/token/introspect" "$st" "$tmp/r-intro.json")
		return 1
	fi
}

# probe_peer ALG NPROC: the same; the introspected token is opaque (above),
# and every one of the peer's processes must know it (new connection each).
probe_peer() {
	local p=${port[peer]} st tok
	form[peer.issue]=$(issue_form) authz[peer.issue]=$(client_authz)
	path[peer.issue]=/token path[peer.introspect]=/token/introspection
	st=$(http_post "$p" /token "${form[peer.issue]}" "${authz[peer.issue]}" "$tmp/p-token.json")
	[ "$st" = 200 ] || die "$(explain "oidc-provider POST /token" "$st" "$tmp/p-token.json")"
	tok=$(json access_token <"$tmp/p-token.json") || die "oidc-provider: no access_token"
	[ "$(jwt_alg "$tok")" = "$1" ] || die "oidc-provider signed with $(jwt_alg "$tok"), not $1"
	st=$(http_post "$p" /token "${form[peer.issue]}&resource=$(urlenc urn:ringside:bench:opaque)" \
		"${authz[peer.issue]}" "$tmp/p-opaque.json")
	[ "$st" = 200 ] || die "$(explain "oidc-provider POST /token (opaque)" "$st" "$tmp/p-opaque.json")"
	tok=$(json access_token <"$tmp/p-opaque.json") || die "oidc-provider: no opaque access_token"
	form[peer.introspect]="token=$tok" authz[peer.introspect]=$(client_authz)
	[ "$auth" = basic ] || form[peer.introspect]="token=$tok&client_id=$(urlenc "$client_id")&client_secret=$(urlenc "$client_secret")"
	# The token's copies reach the other processes through the primary:
	# wait for them, then every process must know it.
	for _ in $(seq 30); do
		st=$(http_post "$p" /token/introspection "${form[peer.introspect]}" "${authz[peer.introspect]}" "$tmp/p-intro.json")
		[ "$st" != 200 ] || [ "$(json active <"$tmp/p-intro.json" || true)" != true ] || break
		sleep 0.1
	done
	sleep 0.2
	for _ in $(seq $((2 * $2 + 2))); do
		st=$(http_post "$p" /token/introspection "${form[peer.introspect]}" "${authz[peer.introspect]}" "$tmp/p-intro.json")
		if [ "$st" != 200 ] || [ "$(json active <"$tmp/p-intro.json" || true)" != true ]; then
			die "$(explain "oidc-provider POST /token/introspection" "$st" "$tmp/p-intro.json")"
		fi
	done
}

wait_health() { # PID PORT LOG
	for _ in $(seq 100); do
		kill -0 "$1" 2>/dev/null || { cat "$3" >&2; die "ringside exited"; }
		[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$2/health")" = 200 ] && return
		sleep 0.1
	done
	cat "$3" >&2
	die "ringside: /health never answered 200"
}

# run_wrk SERVER SCENARIO SECONDS: "req/s p50_us p99_us p999_us".
run_wrk() {
	local k=$1.$2 c=$conns delay=''
	if [ "$2" = introspect-paced ]; then
		k=$1.introspect c=$paced_conns delay=1
	fi
	BENCH_FORM=${form[$k]} BENCH_AUTHORIZATION=${authz[$k]} BENCH_DELAY_MS=$delay \
		timeout -k 5 $(($3 + 30)) "${wrk_pin[@]}" wrk -t1 -c"$c" -d"${3}s" -s "$script" \
		"http://127.0.0.1:${port[$1]}${path[$k]}" </dev/null >"$tmp/wrk.out" 2>&1 ||
		{ cat "$tmp/wrk.out" >&2; die "wrk failed ($k)"; }
	awk '$1 == "bench-result" {
		found = 1
		if ($2 == 0 || $7 + $8 + $9 + $10 + $11 > 0) exit 1
		printf "%.2f %d %d %d\n", $2 / ($3 / 1e6), $4, $5, $6
	}
	END { if (!found) exit 1 }' "$tmp/wrk.out" ||
		{ cat "$tmp/wrk.out" >&2; die "failed answers ($k)"; }
}

results=$tmp/results # "arrangement alg scenario server round rate p50_us p99_us p999_us"
: >"$results"
declare -A arr_desc
for arr in $arrangements; do
	if [ "$arr" = isolated ]; then
		nw=1 server_pin=(taskset -c "$server_cpu") wrk_pin=(taskset -c "$wrk_cpu")
		arr_desc[$arr]="servers confined to CPU $server_cpu (\`taskset -c $server_cpu\`, Ringside's PostgreSQL too), Ringside --workers 1 and 1 Node process; wrk on CPU $wrk_cpu (\`taskset -c $wrk_cpu\`): rates per core"
		pin_pg "$server_cpu"
	else
		nw=$workers server_pin=() wrk_pin=()
		arr_desc[$arr]="Ringside --workers $workers and $workers Node processes (cluster module), nothing pinned, wrk beside them on the same $(nproc) CPUs"
		pin_pg "0-$(($(nproc) - 1))"
	fi
	for alg in $algs; do
		pids=()
		servers=()
		if [ -z "$ringside_skip" ]; then
			port[ringside]=$(free_port)
			"${server_pin[@]}" "$ringside" --listen "127.0.0.1:${port[ringside]}" --database-url "$db_url" \
				--jwt-private-key-file "$tmp/$alg.key" --jwt-public-key-file "$tmp/$alg.pub" \
				--client-secret-key-file "$tmp/client-secret.key" --token-rate-limit 0 \
				--workers "$nw" --log-level warn >"$tmp/ringside.log" 2>&1 &
			pids+=($!)
			wait_health "$!" "${port[ringside]}" "$tmp/ringside.log"
			if ringside_register "${port[ringside]}" "$alg" && probe_ringside "$alg"; then
				servers+=(ringside)
			else
				note "Ringside not measured: $ringside_skip"
				stop_servers
			fi
		fi
		if [ -z "$client_id" ]; then # no Ringside client: one of our own for the peer
			client_id=bench-$(openssl rand -hex 8) client_secret=$(openssl rand -base64 32 | tr '+/' '-_' | tr -d '=\n')
		fi
		if [ -z "${expires_in:-}" ]; then
			expires_in=3600
			[ ! -s "$tmp/r-token.json" ] || expires_in=$(json expires_in <"$tmp/r-token.json" || echo 3600)
		fi
		port[peer]=$(free_port)
		NODE_ENV=production "${server_pin[@]}" node perf/peer/oidc_peer.mjs --port "${port[peer]}" \
			--workers "$nw" --key "$tmp/$alg.key" --client-id "$client_id" --client-secret "$client_secret" \
			--auth "$auth" --scope "$scope" --ttl "$expires_in" >"$tmp/peer.log" 2>&1 &
		pids+=($!)
		for _ in $(seq 200); do
			grep -q '^oidc-peer ready' "$tmp/peer.log" && break
			kill -0 "${pids[-1]}" 2>/dev/null || { cat "$tmp/peer.log" >&2; die "oidc-provider exited"; }
			sleep 0.1
		done
		grep -q '^oidc-peer ready' "$tmp/peer.log" || { cat "$tmp/peer.log" >&2; die "oidc-provider never ready"; }
		probe_peer "$alg" "$nw"
		servers+=(peer)

		for sc in $scenarios; do
			for s in "${servers[@]}"; do run_wrk "$s" "$sc" "$warmup" >/dev/null; done
		done
		for round in $(seq "$rounds"); do
			order=("${servers[@]}")
			if [ $((round % 2)) -eq 0 ] && [ ${#servers[@]} -eq 2 ]; then order=(peer ringside); fi
			for sc in $scenarios; do
				for s in "${order[@]}"; do
					line=$(run_wrk "$s" "$sc" "$duration")
					echo "$arr $alg $sc $s $round $line" >>"$results"
					echo "$arr $alg round $round $sc $s $line" >&2
				done
			done
		done
		grep -q 'server_error' "$tmp/peer.log" && { cat "$tmp/peer.log" >&2; die "oidc-provider logged errors"; }
		stop_servers
	done
done

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR) print NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
med() { awk -v a="$1" -v g="$2" -v sc="$3" -v s="$4" -v c="$5" \
	'$1 == a && $2 == g && $3 == sc && $4 == s { print $c }' "$results" | median; }
ms() { awk -v u="$1" 'BEGIN { printf "%.3f", u / 1000 }'; }
fmt_rate() { awk -v r="$1" 'BEGIN { printf "%.0f", r }'; }

{
	echo
	echo "### Token issuance and introspection ($(date -u '+%Y-%m-%d %H:%M UTC'))"
	echo
	echo "- Command: \`BENCH_ROUNDS=$rounds BENCH_DURATION=$duration BENCH_CONNECTIONS=$conns BENCH_WORKERS=$workers BENCH_ARRANGEMENTS=\"$arrangements\" BENCH_TOKEN_ALGS=\"$algs\" BENCH_TOKEN_AUTH=$auth perf/bench_token.sh\` (in \`make bench\`)"
	echo "- Peer: oidc-provider $peer_version on Node $node_version, NODE_ENV=production, client credentials only, the same client id and secret (client_secret_$auth), the same key, JWT access tokens (resource indicators, format jwt), in-memory storage; introspection of an opaque token (it refuses JWTs)"
	echo "- Load: wrk -t1 -c$conns, keep-alive, the same form bodies; scope \`$scope\`; medians of $rounds alternating rounds of ${duration} s after ${warmup} s of warm-up each"
	[ "$paced_conns" -eq 0 ] || echo "- introspect-paced: wrk -t1 -c$paced_conns with a 1 ms delay() after each answer, aiming at $paced_rate/s (closed loop with think time, not open loop)"
	for arr in $arrangements; do echo "- $arr: ${arr_desc[$arr]}"; done
	echo "- Machine: nproc $(nproc), $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo), kernel $(uname -r); Ringside $ringside, tree $(git describe --always --dirty 2>/dev/null || echo '?')"
	[ -z "$ringside_skip" ] || echo "- **Ringside not measured**: $ringside_skip"
	echo
	echo "| arrangement | alg | what | Ringside req/s | p50 ms | p99 ms | p99.9 ms | oidc-provider req/s | p50 ms | p99 ms | p99.9 ms | req/s ratio | p99 ratio |"
	echo "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
	for arr in $arrangements; do
		for alg in $algs; do
			for sc in $scenarios; do
				pr=$(med "$arr" "$alg" "$sc" peer 6)
				rr=$(med "$arr" "$alg" "$sc" ringside 6)
				if [ -n "$rr" ]; then
					rcols="$(fmt_rate "$rr") | $(ms "$(med "$arr" "$alg" "$sc" ringside 7)") | $(ms "$(med "$arr" "$alg" "$sc" ringside 8)") | $(ms "$(med "$arr" "$alg" "$sc" ringside 9)")"
					ratio=$(awk -v a="$rr" -v b="$pr" 'BEGIN { printf "%.2f", a / b }')
					p99r=$(awk -v a="$(med "$arr" "$alg" "$sc" ringside 8)" -v b="$(med "$arr" "$alg" "$sc" peer 8)" \
						'BEGIN { printf "%.2f", b ? a / b : 0 }')
				else
					rcols="— | — | — | —" ratio="—" p99r="—"
				fi
				echo "| $arr | $alg | $sc | $rcols | $(fmt_rate "$pr") | $(ms "$(med "$arr" "$alg" "$sc" peer 7)") | $(ms "$(med "$arr" "$alg" "$sc" peer 8)") | $(ms "$(med "$arr" "$alg" "$sc" peer 9)") | $ratio | $p99r |"
			done
		done
	done
	# The issue's goals, where this run measured what they name.
	goal() { echo "- $1: $2 ($3)"; }
	if [ -z "$ringside_skip" ]; then
		echo
		if grep -q '^isolated RS256 issue ringside ' "$results"; then
			r=$(med isolated RS256 issue ringside 6) p=$(med isolated RS256 issue peer 6)
			goal "RS256 issuance ≥ 2 500 tokens/s per core" "$(fmt_rate "$r")/s on one core" \
				"$(awk -v r="$r" 'BEGIN { print (r >= 2500 ? "met" : "NOT met") }')"
			goal "RS256 issuance ≥ 10× the peer" "$(awk -v a="$r" -v b="$p" 'BEGIN { printf "%.1f×", a / b }') on one core" \
				"$(awk -v a="$r" -v b="$p" 'BEGIN { print (a >= 10 * b ? "met" : "NOT met") }')"
		fi
		sc=introspect
		[ "$paced_conns" -eq 0 ] || sc=introspect-paced
		for arr in $arrangements; do
			for alg in $algs; do
				grep -q "^$arr $alg $sc ringside " "$results" || continue
				r=$(med "$arr" "$alg" "$sc" ringside 6) p99=$(med "$arr" "$alg" "$sc" ringside 8)
				goal "introspection ≥ 30 000/s with p99 < 1 ms, $arr, $alg token, $sc" \
					"$(fmt_rate "$r")/s, p99 $(ms "$p99") ms" \
					"$(awk -v r="$r" -v p="$p99" 'BEGIN { print (r >= 30000 && p < 1000 ? "met" : "NOT met") }')"
			done
		done
	fi
} | tee -a "$out"
