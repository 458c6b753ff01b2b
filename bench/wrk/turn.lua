-- wrk script: non-streaming chat turns (POST /chat/) spread over many sessions.
-- Usage: wrk -t N -s turn.lua URL -- SESSIONS_FILE N
-- SESSIONS_FILE has one "session_id token" per line. Thread k of n uses only the sessions
-- whose line number is k modulo n, in turn, so two threads never post to one session;
-- with many more sessions than connections a session is rarely busy when its turn comes
-- (a busy one answers 409 and is counted in `statuses`).
-- At the end one JSON line starting with BENCH_JSON is printed for bench/scenarios/sustained.py.

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
end

function request()
  local s = sessions[next_session]
  next_session = next_session % #sessions + 1
  local body = '{"session_id":"' .. s.sid .. '","message":"hello"}'
  return wrk.format("POST", "/chat/", {
    ["Content-Type"] = "application/json",
    ["Authorization"] = s.auth,
  }, body)
end

function response(status, headers, body)
  local key = tostring(status)
  statuses[key] = (statuses[key] or 0) + 1
  -- The first body of each unexpected status, so a failure says what it was.
  if status ~= 200 and status ~= 429 and samples[key] == nil then
    samples[key] = (body or ""):sub(1, 200):gsub('[^%w%s%.,:;_%-%(%)]', '')
  end
end

function done(summary, latency, requests)
  local merged, bodies = {}, {}
  for _, thread in ipairs(threads) do
    local counts = thread:get("statuses")
    for code, n in pairs(counts) do merged[code] = (merged[code] or 0) + n end
    for code, text in pairs(thread:get("samples")) do bodies[code] = text end
  end
  local parts, texts = {}, {}
  for code, n in pairs(merged) do table.insert(parts, string.format('"%s":%d', code, n)) end
  for code, text in pairs(bodies) do
    table.insert(texts, string.format('"%s":"%s"', code, text:gsub("%s+", " ")))
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"latency_us":{"p50":%d,"p90":%d,"p99":%d,' ..
    '"max":%d,"mean":%.1f},"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,' ..
    '"timeout":%d},"statuses":{%s},"samples":{%s}}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, latency.mean, e.connect, e.read, e.write, e.status,
    e.timeout, table.concat(parts, ","), table.concat(texts, ",")))
end
