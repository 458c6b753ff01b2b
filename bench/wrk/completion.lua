-- wrk script: one non-streaming OpenAI chat completion per request, for the peers' side of
-- scenario 5 (assistant, LiteLLM's proxy, Open WebUI).
-- Usage: wrk -s completion.lua URL -- PATH MODEL [BEARER_TOKEN]
-- Latency is wrk's own (corrected for coordinated omission): the peers echo no request id
-- to time each answer by, as turn.lua does. It only picks the knee (the busiest step within
-- the p99 limit) from steps below saturation, where every request costs about the same and
-- the correction changes little; the figure compared is requests per CPU-second.

function init(args)
  local path, model, token = args[1], args[2], args[3]
  local headers = {["Content-Type"] = "application/json"}
  if token and token ~= "" then headers["Authorization"] = "Bearer " .. token end
  local body = '{"model":"' .. model .. '","stream":false,' ..
    '"messages":[{"role":"user","content":"hello"}]}'
  prepared = wrk.format("POST", path, headers, body)
end

function request()
  return prepared
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,' ..
    '"latency_us":{"p50":%d,"p90":%d,"p99":%d,"max":%d},' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}}\n',
    summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    e.connect, e.read, e.write, e.status, e.timeout))
end
