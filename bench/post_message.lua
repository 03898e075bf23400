-- post_message.lua — wrk script for POST /v1/conversations/{id}/messages.
-- Each request goes to the next of the conversations listed in the file
-- given after "--" (one "id token" per line, made by bench/http.sh) with the
-- next of ten questions the bundled rules answer (English and Chinese).
local convs = {}
local texts = {
  "where is my order KF12345678", "how long does delivery take", "how do I get an invoice",
  "退款什么时候到账", "can I pay with alipay", "how do I reset my password", "我想退货",
  "do you have any coupons", "what are your opening hours", "发票怎么开",
}
local n = 0

function init(args)
  for line in io.lines(args[1]) do
    local id, tok = line:match("(%S+)%s+(%S+)")
    if id then convs[#convs + 1] = { id, tok } end
  end
  n = math.random(#convs)
end

function request()
  n = n + 1
  local c = convs[n % #convs + 1]
  return wrk.format("POST", "/v1/conversations/" .. c[1] .. "/messages",
    { ["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. c[2] },
    '{"text":"' .. texts[n % #texts + 1] .. '"}')
end
