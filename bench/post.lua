-- wrk script: POST a different JSON body on each request, from a file of bodies (one a line).
--   BENCH_BODIES  path of the bodies file (required)
--   BENCH_PATH    request path (default /v1/chat/completions)
--   BENCH_AUTH    value of the Authorization header (optional)
-- Requests are formatted once per thread in init(); each thread starts at its own offset.
-- done() prints one line, BENCH_RESULT key=value ..., with latency percentiles in microseconds.

local threads = 0
function setup(thread)
  thread:set("offset", threads)
  threads = threads + 1
end

local reqs = {}
local n = 0
local i = 0

function init(args)
  local path = os.getenv("BENCH_PATH") or "/v1/chat/completions"
  local headers = { ["Content-Type"] = "application/json" }
  local auth = os.getenv("BENCH_AUTH")
  if auth and auth ~= "" then headers["Authorization"] = auth end
  local f = assert(io.open(assert(os.getenv("BENCH_BODIES"), "BENCH_BODIES not set"), "r"))
  for line in f:lines() do
    if #line > 0 then
      n = n + 1
      reqs[n] = wrk.format("POST", path, headers, line)
    end
  end
  f:close()
  assert(n > 0, "no bodies")
  i = ((offset or 0) * 7919) % n
end

function request()
  i = i % n + 1
  return reqs[i]
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH_RESULT requests=%d duration_us=%d p50_us=%d p90_us=%d p99_us=%d mean_us=%.1f " ..
    "max_us=%d connect=%d read=%d write=%d status=%d timeout=%d bytes=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.mean, latency.max, e.connect, e.read, e.write, e.status,
    e.timeout, summary.bytes))
end
