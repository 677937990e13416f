-- wrk script for perf/bench.sh, loaded after the scenario's own script
-- (if any): at the end of a run, one line for bench.sh to read,
--   bench-result REQUESTS DURATION_US P50_US P99_US P99.9_US
--                CONNECT_ERRORS READ_ERRORS WRITE_ERRORS STATUS_ERRORS TIMEOUTS
-- wrk's --latency prints 50/75/90/99 only, and p99.9 is where a server's
-- (or the scheduler's) stalls show. STATUS_ERRORS counts answers >= 400.
-- A done() the scenario script defined still runs, first.
local scenario_done = done

function done(summary, latency, requests)
	if scenario_done then
		scenario_done(summary, latency, requests)
	end
	local e = summary.errors
	io.write(string.format("bench-result %d %d %d %d %d %d %d %d %d %d\n",
		summary.requests, summary.duration,
		latency:percentile(50), latency:percentile(99), latency:percentile(99.9),
		e.connect, e.read, e.write, e.status, e.timeout))
end
