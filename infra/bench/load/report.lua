-- wrk script for make bench: the request comes from the environment (WRK_METHOD, WRK_BODY,
-- WRK_AUTHORIZATION, WRK_CONTENT_TYPE); done() prints one JSON line with the figures.
local method = os.getenv("WRK_METHOD")
if method and method ~= "" then wrk.method = method end
local body = os.getenv("WRK_BODY")
if body and body ~= "" then wrk.body = body end
local auth = os.getenv("WRK_AUTHORIZATION")
if auth and auth ~= "" then wrk.headers["Authorization"] = auth end
local ctype = os.getenv("WRK_CONTENT_TYPE")
if ctype and ctype ~= "" then wrk.headers["Content-Type"] = ctype end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "bytes": %d, "errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, ' ..
    '"latency_us": {"mean": %.1f, "p50": %d, "p90": %d, "p99": %d, "max": %d}}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
