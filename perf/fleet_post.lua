-- wrk script for perf/bench_fleet.sh: every request is one agent report,
-- POST /api/metrics/ingest, each from the next agent of a token file, so
-- a run fills (or refreshes) the whole fleet. Environment:
--   BENCH_INGEST_BODY  the report (samples/ingest-full.json)
--   BENCH_TOKENS       lines "AGENT_ID TOKEN" (perf/mint_tokens)
--   BENCH_DELAY_MS     optional: each connection waits this long between
--                      its requests, to pace the load (connections x
--                      1000 / delay reports per second at most)
local function env(name)
	local v = os.getenv(name)
	if not v or v == "" then
		error(name .. " is not set (perf/bench_fleet.sh sets it)")
	end
	return v
end

local f = assert(io.open(env("BENCH_INGEST_BODY"), "rb"))
local body = f:read("*a")
f:close()

local tokens = {}
for line in io.lines(env("BENCH_TOKENS")) do
	local _, tok = line:match("^(%S+) (%S+)$")
	tokens[#tokens + 1] = tok
end
assert(#tokens > 0, "no tokens in BENCH_TOKENS")

local delay_ms = tonumber(os.getenv("BENCH_DELAY_MS") or "")
local next_token = 0

-- Threads each start at their own place in the list (wrk runs one Lua
-- state per thread), so together they cover every agent.
function setup(thread)
	thread:set("start", math.random(#tokens))
end

function init()
	next_token = (start or 1) - 1
end

function request()
	next_token = next_token % #tokens + 1
	return wrk.format("POST", "/api/metrics/ingest", {
		["Content-Type"] = "application/json",
		["Authorization"] = "Bearer " .. tokens[next_token],
	}, body)
end

if delay_ms then
	function delay()
		return delay_ms
	end
end
