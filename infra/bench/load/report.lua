-- wrk script for make bench: the request comes from the environment (WRK_METHOD, WRK_BODY,
-- WRK_AUTHORIZATION, WRK_CONTENT_TYPE); with WRK_BODIES (a file, one body per line) each
-- request sends the next body of the file instead of WRK_BODY. done() prints one JSON line
-- with the figures.
local method = os.getenv("WRK_METHOD")
if method and method ~= "" then wrk.method = method end
local body = os.getenv("WRK_BODY")
if body and body ~= "" then wrk.body = body end
local auth = os.getenv("WRK_AUTHORIZATION")
if auth and auth ~= "" then wrk.headers["Authorization"] = auth end
local ctype = os.getenv("WRK_CONTENT_TYPE")
if ctype and ctype ~= "" then wrk.headers["Content-Type"] = ctype end

local bodies_path = os.getenv("WRK_BODIES")
local stride = tonumber(os.getenv("WRK_THREADS") or "1") or 1
local bodies = nil
local next_body = 1
local started = 0

-- Thread n starts at body n and steps by the number of threads (WRK_THREADS), so no two
-- requests of a run send the same body.
function setup(thread)
  started = started + 1
  thread:set("offset", started)
end

function init(args)
  if bodies_path and bodies_path ~= "" then
    bodies = {}
    for line in io.lines(bodies_path) do bodies[#bodies + 1] = line end
    next_body = offset
  end
end

function request()
  if bodies then
    local b = bodies[((next_body - 1) % #bodies) + 1]
    next_body = next_body + stride
    return wrk.format(nil, nil, nil, b)
  end
  return wrk.format()
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "bytes": %d, "errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, ' ..
    '"latency_us": {"mean": %.1f, "p50": %d, "p90": %d, "p99": %d, "max": %d}}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
