-- Shared by the wrk scripts of scripts/load.py: one JSON line with the run's figures, and,
-- when LOAD_RATE is set, a steady load instead of a flood.
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'RESULT {"requests": %d, "seconds": %.3f, "non2xx": %d, "socket_errors": %d, ' ..
    '"p50_ms": %.3f, "p99_ms": %.3f, "max_ms": %.3f}\n',
    summary.requests, summary.duration / 1e6, e.status,
    e.connect + e.read + e.write + e.timeout,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
end

-- LOAD_RATE requests a second in all, each thread sending its share on a fixed schedule: every
-- request takes the thread's next slot and waits for it (wrk times a request from when it is
-- sent, not from its slot). A connection still waiting for its answer when its slot comes
-- sends late; a thread that falls more than a slot behind starts its schedule again instead of
-- sending what it missed in a burst. Spare connections keep a slow answer from holding the
-- schedule up.
local rate = tonumber(os.getenv("LOAD_RATE") or "")
if rate then
  local ffi = require("ffi")
  ffi.cdef [[
    struct load_timespec { long tv_sec; long tv_nsec; };
    int clock_gettime(int clock, struct load_timespec *now);
  ]]
  local now, CLOCK_MONOTONIC = ffi.new("struct load_timespec"), 1
  local function ms()
    ffi.C.clock_gettime(CLOCK_MONOTONIC, now)
    return tonumber(now.tv_sec) * 1000 + tonumber(now.tv_nsec) / 1e6
  end
  local interval = tonumber(os.getenv("LOAD_THREADS")) * 1000 / rate
  local slot
  function delay()
    local t = ms()
    if slot == nil or slot < t - interval then
      slot = t
    else
      slot = slot + interval
    end
    return math.max(0, math.floor(slot - t + 0.5))
  end
end
