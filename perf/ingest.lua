-- wrk script for perf/bench.sh's ingest scenario: every request is one
-- agent report, POST /api/metrics/ingest with the full sample as its body.
-- The same bytes go to nginx. bench.sh sets the environment:
--   BENCH_INGEST_BODY  path of the report (ingest-full.json)
--   BENCH_TOKEN        an agent token with metrics:write (one for all
--                      connections: the server keeps each agent's latest)
local function env(name)
	local v = os.getenv(name)
	if not v or v == "" then
		error(name .. " is not set (perf/bench.sh sets it)")
	end
	return v
end

local path = env("BENCH_INGEST_BODY")
local f = assert(io.open(path, "rb"))
local body = f:read("*a")
f:close()

wrk.method = "POST"
wrk.body = body
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. env("BENCH_TOKEN")
