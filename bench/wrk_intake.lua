-- wrk script for the intake benchmark (bench/bench_intake.py): every request POSTs a new
-- complaint with its own external_id, at a point read from CG_POINTS ("lon lat" per line).
-- With CG_TOKEN unset it sends GET /health instead (the baseline of the same server).
-- done() prints one line the benchmark parses.

local token = os.getenv("CG_TOKEN")
local prefix = os.getenv("CG_PREFIX") or "bench-load"
-- CG_DESCRIPTION: the text of every complaint (bench/bench_privacy.py; no quotes in it)
local description = os.getenv("CG_DESCRIPTION") or "基准测试: 夜间噪音扰民"
local cats = {"0599", "0599", "0599", "0504", "0102", "0101", "0301", "0508", "0505", "0103"}
local pts = {}
local n = 0
local tid = 0
local threads_seen = 0

function setup(thread)
  threads_seen = threads_seen + 1
  thread:set("tid", threads_seen)
end

function init(args)
  local path = os.getenv("CG_POINTS")
  if path then
    for line in io.lines(path) do
      local x, y = line:match("^(%S+)%s+(%S+)$")
      if x then pts[#pts + 1] = {x, y} end
    end
  end
end

function request()
  if not token then
    return wrk.format("GET", "/health")
  end
  n = n + 1
  local p = pts[(n - 1) % #pts + 1]
  local body = string.format(
    '{"lon":%s,"lat":%s,"crs":"wgs84","category":"%s","channel":"platform",' ..
    '"external_id":"%s-%d-%d","description":"%s","address":"滕州市龙泉街道"}',
    p[1], p[2], cats[(n - 1) % #cats + 1], prefix, tid, n, description)
  return wrk.format("POST", "/api/v1/cases",
    {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. token}, body)
end

function done(summary, latency, requests)
  io.write(string.format(
    "CGRESULT requests=%d seconds=%.3f p50_ms=%.3f p99_ms=%.3f max_ms=%.3f non2xx=%d timeouts=%d connect=%d read=%d write=%d\n",
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000, summary.errors.status,
    summary.errors.timeout, summary.errors.connect, summary.errors.read, summary.errors.write))
end
