-- wrk script: non-streaming chat turns (POST /chat/) spread over many sessions.
-- Usage: wrk -t N -s turn.lua URL -- SESSIONS_FILE N
-- SESSIONS_FILE has one "session_id token" per line. Thread k of n uses only the sessions
-- whose line number is k modulo n, in turn, so two threads never post to one session;
-- with many more sessions than connections a session is rarely busy when its turn comes
-- (a busy one answers 409 and is counted in `statuses`).
--
-- Latency is timed here, request by request (send to answer, as wrk times it), because wrk's
-- own histogram is "corrected" for coordinated omission after the run (stats_correct in
-- wrk.c: every sample longer than twice the mean interval between a connection's requests
-- is copied again at each multiple of that interval below it). That assumes every request
-- costs the same. Past saturation with the rate limit it does not hold: ~0.1% of the
-- answers are turns let through (each waits in conversation, hundreds of ms) among ~2 ms
-- 429s, and the copies of those ~200 turns, ~20,000 samples no request had, made the p99.
-- wrk's corrected figures are still printed (`wrk_corrected_latency_us`), as extra data.
-- Each request carries its own X-Request-ID, which nginx echoes on every answer (429s
-- included), so response() finds when it was sent.
-- At the end one JSON line starting with BENCH_JSON is printed for bench/scenarios/sustained.py.

local ffi = require("ffi")
ffi.cdef([[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clock, bench_timespec *ts);
]])
local CLOCK_MONOTONIC = 1
local clock = ffi.new("bench_timespec")

local function now_us()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, clock)
  return tonumber(clock.tv_sec) * 1000000 + tonumber(clock.tv_nsec) / 1000
end

local threads = {}
local counter = 0

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  sessions = {}
  local total, index = tonumber(args[2]), 0
  for line in io.lines(args[1]) do
    if index % total == id then
      local sid, token = line:match("^(%S+) (%S+)$")
      table.insert(sessions, {sid = sid, auth = "Bearer " .. token})
    end
    index = index + 1
  end
  next_session = 1
  statuses = {}
  samples = {}
  sent = {}        -- request id -> send time (us)
  -- Flat lists (wrk copies only flat tables between its Lua states): latency (us) and status
  -- of every answer matched to its request.
  latencies = {}
  answered = {}
  unmatched = 0    -- answers without a known request id
  serial = 0
end

function request()
  local s = sessions[next_session]
  next_session = next_session % #sessions + 1
  serial = serial + 1
  local rid = "wrk" .. id .. "-" .. serial
  local body = '{"session_id":"' .. s.sid .. '","message":"hello"}'
  sent[rid] = now_us()
  return wrk.format("POST", "/chat/", {
    ["Content-Type"] = "application/json",
    ["Authorization"] = s.auth,
    ["X-Request-ID"] = rid,
  }, body)
end

function response(status, headers, body)
  local now = now_us()
  local key = tostring(status)
  statuses[key] = (statuses[key] or 0) + 1
  local rid = headers["X-Request-ID"] or headers["x-request-id"]
  local began = rid and sent[rid]
  if began then
    sent[rid] = nil
    latencies[#latencies + 1] = now - began
    answered[#answered + 1] = status
  else
    unmatched = unmatched + 1
  end
  -- The first body of each unexpected status, so a failure says what it was.
  if status ~= 200 and status ~= 429 and samples[key] == nil then
    samples[key] = (body or ""):sub(1, 200):gsub('[^%w%s%.,:;_%-%(%)]', '')
  end
end

local function percentile(sorted, q)
  if #sorted == 0 then return 0 end
  local rank = math.max(1, math.ceil(#sorted * q / 100))
  return sorted[rank]
end

local function figures(list)
  table.sort(list)
  local sum = 0
  for _, v in ipairs(list) do sum = sum + v end
  return string.format('{"n":%d,"p50":%d,"p90":%d,"p99":%d,"p999":%d,"max":%d,"mean":%.1f}',
    #list, percentile(list, 50), percentile(list, 90), percentile(list, 99),
    percentile(list, 99.9), list[#list] or 0, #list > 0 and sum / #list or 0)
end

function done(summary, latency, requests)
  local merged, bodies, all, by_status, lost = {}, {}, {}, {}, 0
  for _, thread in ipairs(threads) do
    local counts = thread:get("statuses")
    for code, n in pairs(counts) do merged[code] = (merged[code] or 0) + n end
    for code, text in pairs(thread:get("samples")) do bodies[code] = text end
    local times, codes = thread:get("latencies"), thread:get("answered")
    for i, v in ipairs(times) do
      local code = tostring(codes[i])
      local into = by_status[code] or {}
      by_status[code] = into
      into[#into + 1] = v
      all[#all + 1] = v
    end
    lost = lost + thread:get("unmatched")
  end
  local parts, texts, per = {}, {}, {}
  for code, n in pairs(merged) do table.insert(parts, string.format('"%s":%d', code, n)) end
  for code, text in pairs(bodies) do
    table.insert(texts, string.format('"%s":"%s"', code, text:gsub("%s+", " ")))
  end
  for code, list in pairs(by_status) do
    table.insert(per, string.format('"%s":%s', code, figures(list)))
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"latency_us":%s,"latency_by_status_us":{%s},' ..
    '"unmatched":%d,"wrk_corrected_latency_us":{"p50":%d,"p90":%d,"p99":%d,"max":%d},' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"statuses":{%s},"samples":{%s}}\n',
    summary.requests, summary.duration, figures(all), table.concat(per, ","), lost,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    e.connect, e.read, e.write, e.status, e.timeout,
    table.concat(parts, ","), table.concat(texts, ",")))
end
