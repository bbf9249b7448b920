-- wrk script of `make bench-compare`: one JSON line of figures at the end
-- (wrk's own text rounds p99 and has no max in a parseable form), and the
-- uneven mix when COMPARE_MIX is set: one request in COMPARE_MIX burns
-- 50 ms of CPU, every other one 1 ms.
local every = tonumber(os.getenv("COMPARE_MIX") or "")

if every then
  local long, short
  -- Built in init: wrk sets the Host header just before calling it.
  init = function()
    math.randomseed(os.time())
    long = wrk.format(nil, "/cpu?ms=50")
    short = wrk.format(nil, "/cpu?ms=1")
  end
  request = function()
    if math.random(every) == 1 then
      return long
    end
    return short
  end
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'COMPARE {"requests": %d, "duration_us": %d, "connect": %d, "read": %d, "write": %d, ' ..
    '"status": %d, "timeout": %d, "p50_us": %d, "p99_us": %d, "max_us": %d}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
