#!/bin/bash
# Runs a command (tests/run.sh) with one throwaway PostgreSQL cluster for
# the whole run, made in a fresh temporary directory (scripts/pg.sh,
# durability off) and removed afterwards, whatever the command's fate.
# Usage: scripts/with_test_pg.sh COMMAND [ARGS...]
#
# The command gets:
#   RINGSIDE_TEST_DATABASE_URL  the cluster's superuser URL (database postgres);
#                               each test makes its own database from it
#                               (tests/common/test_db.h)
#   RINGSIDE_TEST_PG_DIR        the cluster, for outage tests:
#   RINGSIDE_TEST_PG_SH         RINGSIDE_PG_DIR=$RINGSIDE_TEST_PG_DIR $RINGSIDE_TEST_PG_SH stop --immediate
# Given RINGSIDE_TEST_DATABASE_URL already (a PostgreSQL of your own), no
# cluster is started and outage tests are skipped.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd -P)
pg=$root/scripts/pg.sh

# A database the user serves from must never meet a test's server.
unset DATABASE_URL RINGSIDE_DATABASE_URL

if [ -n "${RINGSIDE_TEST_DATABASE_URL:-}" ]; then
	unset RINGSIDE_TEST_PG_DIR RINGSIDE_TEST_PG_SH
	echo "test PostgreSQL: RINGSIDE_TEST_DATABASE_URL as given"
	exec "$@"
fi

dir=$(mktemp -d "${TMPDIR:-/tmp}/ringside-test-pg.XXXXXX")
# shellcheck disable=SC2317 # run by the EXIT trap
cleanup() {
	local out
	out=$(RINGSIDE_PG_DIR=$dir "$pg" destroy 2>&1) ||
		printf 'with_test_pg: could not remove the test cluster %s:\n%s\n' "$dir" "$out" >&2
}
trap cleanup EXIT
pid=
trap '[ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null; [ -n "$pid" ] || exit 143' TERM
trap '[ -n "$pid" ] || exit 130' INT
trap '[ -n "$pid" ] || exit 129' HUP

if ! out=$(RINGSIDE_PG_DIR=$dir RINGSIDE_PG_FAST=1 "$pg" start 2>&1); then
	printf '%s\n' "$out" >&2
	echo "with_test_pg: the test PostgreSQL did not start" >&2
	exit 1
fi
RINGSIDE_TEST_DATABASE_URL=$(RINGSIDE_PG_DIR=$dir "$pg" url postgres)
RINGSIDE_TEST_PG_DIR=$dir
RINGSIDE_TEST_PG_SH=$pg
export RINGSIDE_TEST_DATABASE_URL RINGSIDE_TEST_PG_DIR RINGSIDE_TEST_PG_SH
echo "test PostgreSQL: $RINGSIDE_TEST_DATABASE_URL"

# As scripts/run.sh: the command is a child, TERM passed on, ^C reaching
# it from the terminal, SIGINT and SIGQUIT not left ignored.
env --default-signal=INT,QUIT "$@" &
pid=$!
while kill -0 "$pid" 2>/dev/null; do wait "$pid" || :; done
rc=0
wait "$pid" || rc=$?
exit "$rc"
