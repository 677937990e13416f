-- wrk script for perf/bench_token.sh: every request is the same form POST,
-- a token request (RFC 6749 4.4) or an introspection (RFC 7662), to
-- Ringside or to oidc-provider alike. bench_token.sh sets the environment:
--   BENCH_FORM           the urlencoded body
--   BENCH_AUTHORIZATION  the Authorization header's value ("Basic ..." for
--                        the client, "Bearer ..." for Ringside's
--                        introspecting caller), or empty for none
--   BENCH_DELAY_MS       if set, each connection waits that long after
--                        each answer (wrk's delay()): N connections then
--                        offer about N / (delay + latency) requests a
--                        second, a paced load below saturation
local function env(name)
	local v = os.getenv(name)
	if not v or v == "" then
		error(name .. " is not set (perf/bench_token.sh sets it)")
	end
	return v
end

wrk.method = "POST"
wrk.body = env("BENCH_FORM")
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
local auth = os.getenv("BENCH_AUTHORIZATION")
if auth and auth ~= "" then
	wrk.headers["Authorization"] = auth
end

local delay_ms = tonumber(os.getenv("BENCH_DELAY_MS") or "")
if delay_ms then
	function delay()
		return delay_ms
	end
end
