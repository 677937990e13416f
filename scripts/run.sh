#!/bin/bash
# `make run`: serves in the foreground with the private PostgreSQL cluster
# (scripts/pg.sh: var/pg, or RINGSIDE_PG_DIR), started first and stopped
# when the server ends. A database given by the user wins and no cluster
# is started: --database-url in the arguments, else RINGSIDE_DATABASE_URL,
# else DATABASE_URL in the environment.
# Usage: scripts/run.sh BIN [ARGS...]
set -eu
root=$(cd "$(dirname "$0")/.." && pwd -P)
pg=$root/scripts/pg.sh

given=
for a in "$@"; do
	case $a in --database-url | --database-url=*) given=--database-url ;; esac
done
[ -z "$given" ] && [ -n "${RINGSIDE_DATABASE_URL:-}" ] && given=RINGSIDE_DATABASE_URL
[ -z "$given" ] && [ -n "${DATABASE_URL:-}" ] && given=DATABASE_URL

started=
if [ -n "$given" ]; then
	echo "run.sh: database from $given; no private PostgreSQL started" >&2
else
	# One that was running before (started by hand) is left running.
	"$pg" status >/dev/null 2>&1 || started=1
	"$pg" start
	# As the environment variable (same as the flag, which beats it): a
	# server that does not read it yet still starts.
	RINGSIDE_DATABASE_URL=$("$pg" url)
	export RINGSIDE_DATABASE_URL
	echo "run.sh: RINGSIDE_DATABASE_URL=$RINGSIDE_DATABASE_URL" >&2
fi

# The server runs as a child so the cluster can be stopped after it. A
# TERM for this script (what make sends its recipe) is passed on; ^C
# reaches the server from the terminal with the rest of the process
# group. A background child would ignore SIGINT and SIGQUIT: env resets
# them.
trap 'kill -TERM "$pid" 2>/dev/null || true' TERM
trap ':' INT QUIT HUP
env --default-signal=INT,QUIT "$@" &
pid=$!
# A trap ends `wait` early: wait again until the server is gone, then
# take its status (bash keeps it).
while kill -0 "$pid" 2>/dev/null; do wait "$pid" || :; done
rc=0
wait "$pid" || rc=$?
if [ -n "$started" ]; then
	"$pg" stop || true
elif [ -z "$given" ]; then
	echo "run.sh: PostgreSQL was running before: left running ($pg stop stops it)" >&2
fi
exit "$rc"
