# shellcheck shell=bash
# What the bench scripts share: servers they start go
# in the array `pids`; stop_servers ends them all, every wait bounded.

# A port nothing answers on, below the ephemeral range wrk's sockets use.
free_port() {
	local p
	while :; do
		p=$((20000 + RANDOM % 10000))
		(exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
	done
}

# stop_servers: SIGTERM to the servers in `pids`, SIGKILL to those still
# running after 10 s (Ringside finishes in-flight requests first).
stop_servers() {
	local pid alive
	[ ${#pids[@]} -gt 0 ] || return 0
	kill "${pids[@]}" 2>/dev/null || true
	for _ in $(seq 100); do
		alive=0
		for pid in "${pids[@]}"; do
			if kill -0 "$pid" 2>/dev/null; then alive=1; fi
		done
		[ $alive -eq 1 ] || break
		sleep 0.1
	done
	kill -KILL "${pids[@]}" 2>/dev/null || true
	wait "${pids[@]}" 2>/dev/null || true
	pids=()
}

# bench_workdir NAME [CLEANUP]: sets $tmp, a directory of this run
# (/tmp/ringside-NAME.XXXXXX) that the unprivileged processes of nginx
# and PostgreSQL can read, and empties `pids`. At exit the servers in
# `pids` are stopped, then CLEANUP runs (a function: the run's database
# cluster destroyed, say), then $tmp is removed.
bench_workdir() {
	tmp=$(mktemp -d "/tmp/ringside-$1.XXXXXX")
	chmod 755 "$tmp"
	pids=()
	bench_cleanup_extra=${2:-true}
	trap bench_cleanup EXIT
	trap 'exit 130' INT TERM
}

bench_cleanup() {
	stop_servers
	"$bench_cleanup_extra"
	rm -rf "$tmp"
}

# The run's PostgreSQL cluster (scripts/pg.sh, RINGSIDE_PG_DIR), gone.
pg_destroy_quietly() {
	scripts/pg.sh destroy >/dev/null 2>&1 || true
}
