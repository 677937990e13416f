#!/bin/sh
# Ringside's private PostgreSQL cluster, for `make run`, `make test` and by
# hand. Usage:
#
#   scripts/pg.sh start               initdb the first time, then start (running: nothing to do)
#   scripts/pg.sh stop [--immediate]  fast shutdown; --immediate: no checkpoint, as a crash
#   scripts/pg.sh status              exit 0 running, 3 not running, 4 no cluster (as pg_ctl)
#   scripts/pg.sh url [DBNAME]        libpq URI of database DBNAME (default ringside)
#   scripts/pg.sh psql [ARGS]         psql on database ringside
#   scripts/pg.sh destroy             stop at once and delete the cluster
#
# Environment:
#   RINGSIDE_PG_DIR   the cluster (its data directory); default var/pg in the
#                     repository; a relative path is taken from the current directory
#   RINGSIDE_PG_PORT  the port, which here only names the socket (default 5432)
#   RINGSIDE_PG_BIN   directory of initdb/pg_ctl/postgres (default: PostgreSQL 15's)
#   RINGSIDE_PG_FAST  1 when the cluster is created: no fsync, no synchronous
#                     commit, no full-page writes (a throwaway test cluster)
#
# The cluster listens on a Unix socket only (listen_addresses = ''), in
# $RINGSIDE_PG_DIR/socket, or /tmp/ringside-pg-<hash> when that path would
# pass the 107-byte limit of a socket's name. Local connections are trusted:
# the socket directory is mode 0700, so only its owner and root reach it.
#
# PostgreSQL refuses to run as root. Run as root, this script runs the
# cluster as the `postgres` user (RINGSIDE_PG_USER), which owns the data
# directory; run as anyone else, it runs it as that user.
set -eu

me=pg.sh
root=$(cd "$(dirname "$0")/.." && pwd -P)
pgdir=$(realpath -m -- "${RINGSIDE_PG_DIR:-$root/var/pg}")
port=${RINGSIDE_PG_PORT:-5432}
fast=${RINGSIDE_PG_FAST:-0}

# Connection settings from the caller's environment must not redirect the
# commands below to some other server.
unset PGHOST PGHOSTADDR PGPORT PGDATABASE PGUSER PGSERVICE PGOPTIONS PGDATA

die() {
	echo "$me: $*" >&2
	exit 1
}

case $port in
'' | *[!0-9]*) die "RINGSIDE_PG_PORT must be a port number, not '$port'" ;;
esac
if [ "$port" -lt 1 ] || [ "$port" -gt 65535 ]; then
	die "RINGSIDE_PG_PORT out of range: $port"
fi

if [ "$(id -u)" -eq 0 ]; then
	pguser=${RINGSIDE_PG_USER:-postgres}
	id -u "$pguser" >/dev/null 2>&1 ||
		die "no user '$pguser' to run PostgreSQL as (it refuses root): install postgresql (scripts/deps.sh)"
	as_root=1
else
	pguser=$(id -un)
	as_root=0
fi

# Runs a command as the cluster's user, from /, so that a current directory
# it may not enter (a home directory) draws no warnings.
as_pg() {
	if [ "$as_root" -eq 1 ]; then
		(cd / && runuser -u "$pguser" -- "$@")
	else
		(cd / && "$@")
	fi
}

# The server binaries: Debian keeps them out of PATH.
bindir=${RINGSIDE_PG_BIN:-}
if [ -z "$bindir" ]; then
	if [ -x /usr/lib/postgresql/15/bin/pg_ctl ]; then
		bindir=/usr/lib/postgresql/15/bin
	else
		for d in /usr/lib/postgresql/*/bin; do
			[ -x "$d/pg_ctl" ] && bindir=$d
		done
		if [ -z "$bindir" ] && command -v pg_ctl >/dev/null 2>&1; then
			bindir=$(dirname "$(command -v pg_ctl)")
		fi
	fi
fi
need_bins() {
	if [ -z "$bindir" ] || [ ! -x "$bindir/pg_ctl" ] || [ ! -x "$bindir/initdb" ]; then
		die "PostgreSQL server programs not found (set RINGSIDE_PG_BIN, or install postgresql: scripts/deps.sh)"
	fi
}
pg_ctl() { as_pg "$bindir/pg_ctl" -D "$pgdir" "$@"; }
# psql and pg_isready run as the caller: root connects through any socket.
psql_bin() {
	if [ -x "$bindir/psql" ]; then echo "$bindir/psql"; else echo psql; fi
}

# The socket directory. The socket's path is <dir>/.s.PGSQL.<port>, at most
# 107 bytes (sun_path); a clone in a deep directory gets a short one in /tmp
# named after the cluster, so `url` finds it again without asking anyone.
sockdir=$pgdir/socket
if [ $(($(printf %s "$sockdir" | wc -c) + 10 + ${#port})) -gt 107 ]; then
	sockdir=/tmp/ringside-pg-$(printf %s "$pgdir" | sha256sum | cut -c1-16)
fi
log=$pgdir/server.log

# Percent-encodes a URI query value (all but unreserved characters and /).
urlencode() {
	printf %s "$1" | od -An -v -tx1 | awk '
		BEGIN {
			ok = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~/"
			for (i = 32; i < 127; i++) {
				c = sprintf("%c", i)
				if (index(ok, c)) keep[sprintf("%02x", i)] = c
			}
		}
		{ for (i = 1; i <= NF; i++) printf "%s", ($i in keep) ? keep[$i] : "%" toupper($i) }'
}

url() {
	# A running server says where it listens (postmaster.pid: line 4 the
	# port, line 5 the socket directory); else where it will.
	p=$port s=$sockdir
	if [ -r "$pgdir/postmaster.pid" ] && running; then
		p=$(sed -n 4p "$pgdir/postmaster.pid")
		s=$(sed -n 5p "$pgdir/postmaster.pid")
	fi
	printf 'postgresql:///%s?host=%s&port=%s&user=%s\n' "$(urlencode "${1:-ringside}")" \
		"$(urlencode "$s")" "$p" "$(urlencode "$pguser")"
}

# pg_ctl's "running" (the pid in postmaster.pid exists), unless that pid
# is a zombie: a postmaster killed outright stays one until its parent
# (init) reaps it, which some inits do late.
running() {
	[ -f "$pgdir/PG_VERSION" ] && pg_ctl status >/dev/null 2>&1 || return 1
	pm=$(head -n 1 "$pgdir/postmaster.pid" 2>/dev/null) || return 0
	[ "$(sed -n 's/.*) \(.\) .*/\1/p' "/proc/$pm/stat" 2>/dev/null)" != Z ]
}

# After a SIGKILL the old postmaster.pid stays; PostgreSQL starts over it
# once that process is gone for good. Waits for that, 10 s at most.
wait_old_postmaster() {
	pm=$(head -n 1 "$pgdir/postmaster.pid" 2>/dev/null) || return 0
	i=0
	while [ -n "$pm" ] && [ "$i" -lt 100 ] &&
		grep -q '^[0-9]* (postgres) \|) Z ' "/proc/$pm/stat" 2>/dev/null; do
		sleep 0.1
		i=$((i + 1))
	done
}

show_log() {
	if [ -f "$log" ]; then
		echo "$me: last lines of $log:" >&2
		tail -n 25 "$log" | sed 's/^/    /' >&2
	fi
}

# The cluster's user must be able to walk down to its directory. A clone in
# a directory only root may enter (/root, a 0700 mktemp directory) would
# stop PostgreSQL at its first chdir: rather than keep the data elsewhere
# than where the README says, let that user (and only traverse: x, not
# read) through each such directory, with an ACL when setfacl is there,
# else o+x, and say so.
ensure_reachable() {
	as_pg test -x "$1" && return 0
	[ "$as_root" -eq 1 ] || die "cannot enter $1"
	path=
	old_ifs=$IFS
	IFS=/
	set -f
	for part in $1; do
		[ -n "$part" ] || continue
		path=$path/$part
		as_pg test -x "$path" && continue
		if command -v setfacl >/dev/null 2>&1 && setfacl -m "u:$pguser:x" "$path" 2>/dev/null; then
			echo "$me: gave user $pguser search access (ACL u:$pguser:x) to $path to reach the cluster" >&2
		else
			chmod o+x "$path"
			echo "$me: made $path searchable by others (o+x) so user $pguser reaches the cluster" >&2
		fi
	done
	set +f
	IFS=$old_ifs
	as_pg test -x "$1" || die "user $pguser still cannot enter $1"
}

# Makes a directory owned by the cluster's user, mode 0700; an existing one
# must already be such (not a symlink: /tmp is everyone's).
own_dir() {
	if [ -L "$1" ] || { [ -e "$1" ] && [ ! -d "$1" ]; }; then
		die "$1 exists and is not a directory"
	fi
	if [ ! -d "$1" ]; then
		mkdir -m 0700 "$1"
		[ "$as_root" -eq 0 ] || chown "$pguser:" "$1"
	fi
	[ "$(stat -c %U "$1")" = "$pguser" ] || die "$1 belongs to $(stat -c %U "$1"), not $pguser"
	chmod 0700 "$1"
}

init_cluster() {
	parent=$(dirname "$pgdir")
	mkdir -p "$parent"
	ensure_reachable "$parent"
	if [ -d "$pgdir" ] && [ -n "$(ls -A "$pgdir")" ]; then
		die "$pgdir is neither empty nor a PostgreSQL cluster: remove it or set RINGSIDE_PG_DIR"
	fi
	# An empty directory made for it (mktemp -d) is taken over.
	if [ -d "$pgdir" ] && [ ! -L "$pgdir" ] && [ "$as_root" -eq 1 ]; then
		chown "$pguser:" "$pgdir"
	fi
	own_dir "$pgdir"
	set -- --encoding=UTF8 --locale=C.UTF-8 --username="$pguser" \
		--auth-local=trust --auth-host=scram-sha-256
	[ "$fast" = 1 ] && set -- "$@" --no-sync
	echo "$me: creating a PostgreSQL cluster in $pgdir" >&2
	if ! out=$(as_pg "$bindir/initdb" -D "$pgdir" "$@" 2>&1); then
		printf '%s\n' "$out" >&2
		die "initdb failed"
	fi
	# Fixed settings; socket and port go to ringside.conf at each start, so
	# a moved clone or another RINGSIDE_PG_PORT still works.
	{
		echo
		echo "# Ringside (scripts/pg.sh): a Unix socket only, no TCP."
		echo "listen_addresses = ''"
		echo "max_connections = 200"
		if [ "$fast" = 1 ]; then
			echo "# A throwaway test cluster: durability off for speed."
			echo "fsync = off"
			echo "synchronous_commit = off"
			echo "full_page_writes = off"
		fi
		echo "include_if_exists = 'ringside.conf'"
	} >>"$pgdir/postgresql.conf"
}

start() {
	need_bins
	if [ -f "$pgdir/PG_VERSION" ]; then
		ensure_reachable "$pgdir"
		have=$(cat "$pgdir/PG_VERSION")
		want=$("$bindir/pg_ctl" --version | sed -n 's/.* \([0-9][0-9]*\)[.].*/\1/p')
		[ "$have" = "$want" ] ||
			die "$pgdir is a PostgreSQL $have cluster but $bindir is PostgreSQL $want: remove it (scripts/pg.sh destroy) or set RINGSIDE_PG_BIN"
		[ "$(stat -c %U "$pgdir")" = "$pguser" ] ||
			die "$pgdir belongs to $(stat -c %U "$pgdir"), not $pguser, who runs the cluster"
	else
		init_cluster
	fi
	if running; then
		echo "$me: already running in $pgdir" >&2
		return 0
	fi
	[ "$sockdir" = "$pgdir/socket" ] || echo "$me: $pgdir/socket is too long a socket path: using $sockdir" >&2
	own_dir "$sockdir"
	# Quotes doubled for the configuration file's syntax.
	sq=$(printf %s "$sockdir" | sed "s/'/''/g")
	printf "# Written by scripts/pg.sh at each start.\nport = %s\nunix_socket_directories = '%s'\n" \
		"$port" "$sq" >"$pgdir/ringside.conf"
	[ "$as_root" -eq 0 ] || chown "$pguser:" "$pgdir/ringside.conf"
	wait_old_postmaster
	if ! out=$(pg_ctl start -w -t 60 -s -l "$log" 2>&1); then
		printf '%s\n' "$out" >&2
		show_log
		die "PostgreSQL did not start ($pgdir)"
	fi
	# pg_ctl waited for the postmaster; wait, bounded, for connections too.
	i=0
	until "$bindir/pg_isready" -q -h "$sockdir" -p "$port" -d postgres -U "$pguser"; do
		i=$((i + 1))
		if [ "$i" -ge 100 ]; then
			show_log
			die "PostgreSQL started but does not accept connections on $sockdir"
		fi
		sleep 0.1
	done
	psql=$(psql_bin)
	admin=$(url postgres)
	q="SELECT 1 FROM pg_database WHERE datname = 'ringside'"
	if [ -z "$("$psql" -X -q -tA -d "$admin" -c "$q")" ]; then
		"$psql" -X -q -d "$admin" -c "CREATE DATABASE ringside" >/dev/null ||
			[ -n "$("$psql" -X -q -tA -d "$admin" -c "$q")" ] ||
			die "could not create database ringside"
	fi
	echo "$me: PostgreSQL $(cat "$pgdir/PG_VERSION") running in $pgdir (log $log)" >&2
}

stop() {
	mode=fast
	case ${1:-} in
	'') ;;
	--immediate) mode=immediate ;;
	*) die "usage: $0 stop [--immediate]" ;;
	esac
	need_bins
	if running; then
		if ! out=$(pg_ctl stop -m "$mode" -w -t 60 -s 2>&1); then
			printf '%s\n' "$out" >&2
			show_log
			die "PostgreSQL did not stop ($pgdir)"
		fi
		echo "$me: stopped ($mode) $pgdir" >&2
	fi
	# The fallback socket directory in /tmp goes once empty.
	[ "$sockdir" = "$pgdir/socket" ] || rmdir "$sockdir" 2>/dev/null || true
}

status() {
	need_bins
	if [ ! -f "$pgdir/PG_VERSION" ]; then
		echo "$me: no cluster in $pgdir" >&2
		return 4
	fi
	rc=0
	pg_ctl status >/dev/null 2>&1 || rc=$?
	[ "$rc" -ne 0 ] || running || rc=3
	if [ "$rc" -eq 0 ]; then
		echo "running: $pgdir, pid $(head -n 1 "$pgdir/postmaster.pid"), $(url)"
	else
		echo "not running: $pgdir"
	fi
	return "$rc"
}

destroy() {
	[ ! -e "$pgdir" ] && { stop; return 0; }
	if [ ! -f "$pgdir/PG_VERSION" ] && [ -n "$(ls -A "$pgdir")" ]; then
		die "$pgdir is not a PostgreSQL cluster: not removing it"
	fi
	if [ -f "$pgdir/PG_VERSION" ]; then
		stop --immediate
	fi
	rm -rf -- "$pgdir"
	[ "$sockdir" = "$pgdir/socket" ] || rm -rf -- "$sockdir"
	echo "$me: removed $pgdir" >&2
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case $cmd in
start) [ $# -eq 0 ] || die "usage: $0 start"; start ;;
stop) stop "$@" ;;
status) [ $# -eq 0 ] || die "usage: $0 status"; status ;;
url) [ $# -le 1 ] || die "usage: $0 url [DBNAME]"; url "$@" ;;
psql) exec "$(psql_bin)" -d "$(url)" "$@" ;;
destroy) [ $# -eq 0 ] || die "usage: $0 destroy"; destroy ;;
*)
	sed -n '2,/^set -eu/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2
	exit 2
	;;
esac
