-- reload_message.lua — wrk script for bench/memory.sh: POST
-- /v1/conversations/{id}/messages round-robin over the conversations in the
-- first file given after "--" (one "id token" per line) with the messages of
-- the second (one per line), and count every answer that is not 2xx.
local convs, texts, n = {}, {}, 0

local function esc(s)
  return (s:gsub('[%c"\\]', function(c) return string.format("\\u%04x", c:byte()) end))
end

function init(args)
  for line in io.lines(args[1]) do
    local id, tok = line:match("(%S+)%s+(%S+)")
    if id then convs[#convs + 1] = { id, tok } end
  end
  for line in io.lines(args[2]) do
    if #line > 0 then texts[#texts + 1] = esc(line) end
  end
  n = math.random(#texts)
end

function request()
  n = n + 1
  local c = convs[n % #convs + 1]
  return wrk.format("POST", "/v1/conversations/" .. c[1] .. "/messages",
    { ["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. c[2] },
    '{"text":"' .. texts[n % #texts + 1] .. '"}')
end
