-- wrk drives Lambda's Invoke API: POST /2015-03-31/functions/NAME/invocations, keep-alive.
--
--   wrk -t1 -c16 -d10s -s benchmarks/invoke.lua http://127.0.0.1:9000 -- NAME [EVENT_JSON] [check|-] [Event]
--
-- The request is built once (wrk's fast path). With "check", every response is inspected:
-- status codes, and X-Amz-Function-Error, counted per thread and added up at the end; without
-- it wrk never parses a response's headers or body, so it stays as fast as wrk can be.
-- At the end one line "wrk-json {...}" carries the results for scripts (latency in µs).

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

statuses = {}
function_errors = 0

local function checked(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  for name, _ in pairs(headers) do
    if string.lower(name) == "x-amz-function-error" then
      function_errors = function_errors + 1
    end
  end
end

function init(args)
  local name = args[1] or "noop"
  wrk.method = "POST"
  wrk.path = "/2015-03-31/functions/" .. name .. "/invocations"
  wrk.body = args[2] or "{}"
  wrk.headers["Content-Type"] = "application/json"
  if args[3] == "check" then
    response = checked
  end
  if args[4] then
    wrk.headers["X-Amz-Invocation-Type"] = args[4]  -- Event: 202 once the event is accepted
  end
end

function done(summary, latency, requests)
  local totals, errors = {}, 0
  for _, thread in ipairs(threads) do
    local counts = thread:get("statuses") or {}
    for status, n in pairs(counts) do
      totals[tostring(status)] = (totals[tostring(status)] or 0) + n
    end
    errors = errors + (thread:get("function_errors") or 0)
  end
  local parts = {}
  for status, n in pairs(totals) do
    table.insert(parts, string.format('"%s":%d', status, n))
  end
  local e = summary.errors
  io.write(string.format(
    'wrk-json {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"min":%d,"mean":%.1f,"stdev":%.1f,"max":%d,"p50":%d,"p90":%d,"p99":%d,"p99.9":%d},' ..
    '"checked_statuses":{%s},"function_errors":%d}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.min, latency.mean, latency.stdev, latency.max,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9),
    table.concat(parts, ","), errors))
end
