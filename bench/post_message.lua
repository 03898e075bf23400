-- post_message.lua — wrk script for POST /v1/conversations/{id}/messages.
-- Arguments after "--": CONVFILE TEXT [SOURCE [once THREADS]]
--   CONVFILE  "id token" lines (bench/create.lua writes them)
--   TEXT      the message every request sends (no quotes or backslashes)
--   SOURCE    the reply.source every answer must carry ("-": do not check);
--             an answer without it counts as wrong
--   once      use each conversation once (a handoff changes its state) and
--             stop when this thread has used its share; THREADS is wrk's -t
-- Requests spread over the conversations, so no two in flight share one
-- (a conversation answers one message at a time). done() prints one line,
-- RESULT {json}, with the rate, latency percentiles (p999 too, which
-- wrk's own report lacks), non-2xx answers and wrong sources.
local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end

function init(args)
  convs = {}
  for line in io.lines(args[1]) do
    local id, tok = line:match("(%S+)%s+(%S+)")
    if id then convs[#convs + 1] = { id, tok } end
  end
  body = '{"text":"' .. args[2] .. '"}'
  want = args[3] ~= "-" and args[3] and ('"source":"' .. args[3] .. '"') or nil
  once = args[4] == "once"
  step = once and tonumber(args[5]) or 1
  n = once and (tid - step) or math.random(#convs)
  wrong = 0
  answers = 0
  exhausted = 0
end

function request()
  n = n + step
  if once and n > #convs then n = #convs end -- more connections than conversations: counted as wrong
  local c = convs[(n - 1) % #convs + 1]
  return wrk.format("POST", "/v1/conversations/" .. c[1] .. "/messages",
    { ["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. c[2] }, body)
end

function response(status, headers, resp)
  answers = answers + 1
  if once and n + step > #convs then -- this thread's share is used up
    exhausted = 1
    wrk.thread:stop()
  end
  if want and status == 200 and not resp:find(want, 1, true) then wrong = wrong + 1 end
end

function done(summary, latency, requests)
  local w, x = 0, 0
  for _, t in ipairs(threads) do
    w = w + (t:get("wrong") or 0)
    x = x + (t:get("exhausted") or 0)
  end
  local secs = summary.duration / 1e6
  io.write(string.format(
    'RESULT {"requests":%d,"seconds":%.3f,"rps":%.1f,"p50_ms":%.3f,"p90_ms":%.3f,"p99_ms":%.3f,' ..
    '"p999_ms":%.3f,"max_ms":%.3f,"non2xx":%d,"socket_errors":%d,"wrong_source":%d,"exhausted":%d}\n',
    summary.requests, secs, summary.requests / secs, latency:percentile(50) / 1e3,
    latency:percentile(90) / 1e3, latency:percentile(99) / 1e3, latency:percentile(99.9) / 1e3,
    latency.max / 1e3, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout, w, x))
end
