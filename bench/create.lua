-- create.lua — wrk script that creates conversations for bench/http.sh:
-- POST /v1/conversations, and each answer's "id token" goes to the file
-- OUT.TID (one per wrk thread). Arguments after "--": OUT MAX (this
-- thread stops after MAX conversations).
local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end

function init(args)
  out = io.open(args[1] .. "." .. tid, "w")
  max = tonumber(args[2])
  made = 0
  k = 0
end

function request()
  k = k + 1
  return wrk.format("POST", "/v1/conversations", { ["Content-Type"] = "application/json" },
    '{"channel":"web","customer":{"id":"bench-' .. tid .. '-' .. k .. '"}}')
end

function response(status, headers, body)
  if status ~= 201 then return end
  local id, tok = body:match('"id":"([^"]+)"'), body:match('"token":"([^"]+)"')
  if id and tok and made < max then
    out:write(id, " ", tok, "\n")
    out:flush()
    made = made + 1
    if made == max then wrk.thread:stop() end
  end
end
