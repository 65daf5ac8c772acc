-- wrk script: POST a different JSON body on each request, from a file of bodies (one a line).
--   BENCH_BODIES  path of the bodies file (required)
--   BENCH_PATH    request path (default /v1/chat/completions)
--   BENCH_AUTH    value of the Authorization header (optional)
--   BENCH_SECONDS counting mode (optional): send bodies for this many seconds, then only
--                 `GET /bench-drain` (a 404) until every body sent has been answered, then stop
--                 the thread. Every body sent is answered before wrk exits, so the statuses
--                 counted are exact (the gateway's ledger can be checked against them). Run wrk
--                 with -d a few seconds longer than this.
-- Requests are formatted once per thread in init(); each thread starts at its own offset.
-- done() prints one line, BENCH_RESULT key=value ..., with latency percentiles in microseconds
-- and, in counting mode, sent/answered/ok (200)/other statuses and the seconds they took.

local threads = {}
function setup(thread)
  thread:set("offset", #threads)
  table.insert(threads, thread)
end

local reqs = {}
local n = 0
local i = 0

local counting = os.getenv("BENCH_SECONDS")
local now
if counting then
  local ffi = require("ffi")
  ffi.cdef [[
    typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
    int clock_gettime(int clk_id, bench_timespec *tp);
  ]]
  local ts = ffi.new("bench_timespec")
  now = function()
    ffi.C.clock_gettime(1, ts)  -- CLOCK_MONOTONIC
    return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
  end
end

local drain
local verifying = false
local t0, deadline = nil, nil
sent, answered, ok, other, elapsed = 0, 0, 0, 0, 0

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
  if counting then
    drain = wrk.format("GET", "/bench-drain", headers)
    -- wrk calls request() once on the first thread's state before the run, to see how many
    -- requests it returns (script_verify_request): that call is not a request sent
    verifying = (offset or 0) == 0
  end
end

function request()
  if verifying then
    verifying = false
    return reqs[1]
  end
  if counting then
    local t = now()
    if t0 == nil then
      t0 = t
      deadline = t0 + tonumber(counting)
    end
    if t >= deadline then return drain end
    sent = sent + 1
  end
  i = i % n + 1
  return reqs[i]
end

if counting then
  function response(status, headers, body)
    if status ~= 404 then  -- not a drain request
      answered = answered + 1
      if status == 200 then ok = ok + 1 else other = other + 1 end
      elapsed = now() - t0
    end
    if answered == sent and now() >= deadline then wrk.thread:stop() end
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  local counts = ""
  if counting then
    local s, a, o, x, el = 0, 0, 0, 0, 0
    for _, t in ipairs(threads) do
      s = s + t:get("sent"); a = a + t:get("answered"); o = o + t:get("ok")
      x = x + t:get("other"); el = math.max(el, t:get("elapsed"))
    end
    counts = string.format(" sent=%d answered=%d ok=%d other=%d counted_s=%.4f", s, a, o, x, el)
  end
  io.write(string.format(
    "BENCH_RESULT requests=%d duration_us=%d p50_us=%d p90_us=%d p99_us=%d mean_us=%.1f " ..
    "max_us=%d connect=%d read=%d write=%d status=%d timeout=%d bytes=%d%s\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.mean, latency.max, e.connect, e.read, e.write, e.status,
    e.timeout, summary.bytes, counts))
end
