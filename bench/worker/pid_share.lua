-- wrk script: counts which process (the body of /pid) answered each request,
-- so every server's spread over its workers is measured the same way.
-- `wrk ... -s pid_share.lua URL -- MS` paces each connection to one request
-- every MS milliseconds (below saturation, so the spread shows how the
-- connections were spread, not how the scheduler shared the CPUs).
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  counts = {}
  pause = tonumber(args[1] or "0")
end

function delay()
  return pause
end

function response(status, headers, body)
  local pid = string.match(body or "", "%d+")
  if pid then
    counts[pid] = (counts[pid] or 0) + 1
  end
end

function done(summary, latency, requests)
  local total = {}
  for _, thread in ipairs(threads) do
    local c = thread:get("counts")
    for pid, n in pairs(c) do
      total[pid] = (total[pid] or 0) + n
    end
  end
  for pid, n in pairs(total) do
    io.write(string.format("PID %s %d\n", pid, n))
  end
end
