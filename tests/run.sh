#!/bin/bash
# Runs cmocka test binaries, each in its own process with a timeout, and
# sums their results. Usage: BUILD=<dir> tests/run.sh BIN... [--tls BIN...]
# The binaries after --tls run in the black-box harness's TLS mode
# (RINGSIDE_BB_TLS=1: HTTPS servers, TLS clients), named NAME[tls].
#
# Ends with one line "N passed, N failed[, N skipped]". A binary that
# crashes, times out, or exits non-zero without a cmocka failure count
# (a sanitizer report, a leak found at exit) counts as one failed test;
# exit 77 means skipped. Exits 1 if anything failed or no test ran.
set -u

: "${BUILD:=build}"
limit=${TEST_TIMEOUT:-300}
RINGSIDE_BIN=$(realpath -m "$BUILD/ringside")
export RINGSIDE_BIN
# The caller's own options come last, so they win.
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
export ASAN_OPTIONS="detect_leaks=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"

log=$(mktemp)
pid=
trap 'rm -f "$log"' EXIT
# The test runs in its own process group, out of reach of the terminal's ^C.
trap '[ -n "$pid" ] && kill -KILL -- "-$pid" 2>/dev/null; exit 130' INT TERM
passed=0 failed=0 skipped=0 failures=()
tls=${RINGSIDE_BB_TLS:-}

for bin in "$@"; do
	if [ "$bin" = --tls ]; then
		tls=1
		continue
	fi
	name=${bin##*/}
	[ -n "$tls" ] && [ "$tls" != 0 ] && name="$name[tls]"
	echo "=== $name"
	before=$failed
	start=$EPOCHREALTIME
	# Output goes to a file, not a pipe: a server a test leaves behind
	# must not keep the runner waiting for EOF. Started with '&', but
	# timeout(1) resets SIGINT/SIGQUIT to default for the test, which
	# matters to a test that signals the server it starts.
	RINGSIDE_BB_TLS=$tls timeout -k 10 "$limit" "$bin" </dev/null >"$log" 2>&1 &
	pid=$!
	wait "$pid" 2>/dev/null # bash would also report "Aborted" etc.
	rc=$?
	pid_done=$pid pid=
	# timeout(1) leads its own process group: kill what the test left.
	if kill -0 -- "-$pid_done" 2>/dev/null; then
		echo "(killed processes left running by $name)" >>"$log"
		kill -KILL -- "-$pid_done" 2>/dev/null
	fi
	secs=$(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }')
	cat "$log"

	# cmocka's summary lines, summed over every group in the binary.
	read -r p f s summary < <(awk '
		/^\[  PASSED  \] [0-9]+ test\(s\)\./ { p += $4; sum = 1 }
		/^\[  FAILED  \] [0-9]+ test\(s\), listed below:/ { f += $4 }
		/^\[  SKIPPED \] [0-9]+ test\(s\)/ { s += $4 }
		END { print p + 0, f + 0, s + 0, sum + 0 }' "$log")

	if [ "$rc" -eq 77 ]; then
		reason=$(awk 'NF { last = $0 } END { print last }' "$log")
		result="skipped: $reason"
		skipped=$((skipped + 1))
	elif [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
		result="TIMEOUT after ${limit}s"
		failed=$((failed + 1 + f)) passed=$((passed + p))
	else
		passed=$((passed + p)) skipped=$((skipped + s))
		result="$p passed, $f failed"
		[ "$s" -gt 0 ] && result="$result, $s skipped"
		if [ "$f" -gt 0 ]; then
			failed=$((failed + f))
		elif [ "$rc" -ne 0 ] || [ "$summary" -eq 0 ]; then
			failed=$((failed + 1))
			if [ "$rc" -gt 128 ]; then
				why="killed by SIG$(kill -l $((rc - 128)))"
			elif [ "$rc" -ne 0 ]; then
				why="exit status $rc without a cmocka failure"
			else
				why="no cmocka summary"
			fi
			result="$result; $why: counted as 1 failed"
		fi
	fi
	[ "$failed" -gt "$before" ] && failures+=("$name")
	echo "--- $name: $result (${secs}s)"
done

[ ${#failures[@]} -gt 0 ] && echo "failed: ${failures[*]}"
line="$passed passed, $failed failed"
[ "$skipped" -gt 0 ] && line="$line, $skipped skipped"
echo "$line"
[ "$failed" -eq 0 ] && [ $((passed + failed)) -gt 0 ]
