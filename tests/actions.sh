#!/bin/sh
# actions.sh — the rules' actions end to end: kefu serve against a shop backend of ours on
# 127.0.0.1 (tests/action_backend.js) over real HTTP. What must hold: an answer fills the
# reply (en and zh), an unknown order says so, a result value stays text; every call is
# signed and carries the intent, the slots, the conversation and the locale; a slow, failing,
# malformed, non-object, oversized or vanished backend gives the intent's 'on failed' reply
# (or, for an intent without one, a handoff with reason action_failed and the outcome in the
# packet) with status 200, never a 5xx, and /healthz stays ok; after three failures the
# breaker opens (no call goes out) and closes after a good trial call; an agent's call on a
# conversation whose message waits for its action is answered at once; the profile action
# makes a customer a VIP, once per conversation and customer id (a message may name a new
# one); /metrics counts calls by outcome and latency by action; kefu
# serve refuses rules that name an action its configuration lacks (file:line:col); the
# demo order system (kefu demo-orders) answers the bundled rules as make run does.
# Prints "ok NAME" / "not ok NAME". Servers are stopped by their pid.
set -u
BUILD="${BUILD:-build}"
KEFU="${KEFU:-$BUILD/kefu}"
tmp=$(mktemp -d)
pid=""
bpid=""
dpid=""
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null
    [ -n "$bpid" ] && kill "$bpid" 2>/dev/null
    [ -n "$dpid" ] && kill "$dpid" 2>/dev/null
    [ -n "${KEEP:-}" ] && echo "kept $tmp" || rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

. tests/lib.sh

if ! command -v node >/dev/null 2>&1 || ! command -v jq >/dev/null 2>&1; then
    no actions-tools "node and jq are needed"
    exit 0
fi
mkdir -p "$tmp/rules" "$tmp/corpus"
cp rules/*.rules "$tmp/rules/"
# an intent whose action has no 'on failed' line: a failure hands off
cat >"$tmp/rules/zz_stock.rules" <<'RULES'
intent shop.stock
  priority 50
  match inventory
  slot  sku /(sku\d{4})/ ask "Which SKU?"
  action stock
  reply Stock of {sku}: {order.status_text}.
intent shop.warehouse
  priority 50
  match warehouse
  action one_at_a_time
  on failed -> reply The warehouse cannot say right now.
  reply The warehouse says {order.status_text}.
intent shop.patient
  priority 50
  match patience
  action patient
  on failed -> reply The patient system cannot say.
  reply The patient system answered.
RULES
SECRET=actsec-0123456789abcdef
export KEFU_AGENT_TOKENS="alice:tok-alice-0123456789" KEFU_ADMIN_TOKEN="adm-actions-0123456789"
AL="Authorization: Bearer tok-alice-0123456789"
AD="Authorization: Bearer adm-actions-0123456789"

: >"$tmp/backend.log"
: >"$tmp/backend.out"
node tests/action_backend.js "$tmp/backend.log" --secret "$SECRET" >"$tmp/backend.out" 2>&1 &
bpid=$!
i=0
while [ $i -lt 200 ] && ! grep -q '^listening' "$tmp/backend.out"; do sleep 0.05; i=$((i + 1)); done
B="http://127.0.0.1:$(sed -n 's/^listening //p' "$tmp/backend.out")"
ep() { printf '"%s": {"url": "%s/%s", "secret": "%s", "timeout_s": 0.5, "breaker_failures": 3, "breaker_open_s": 1}' \
    "$1" "$B" "$2" "$SECRET"; }
printf '{%s, %s, %s, %s, %s, %s, %s}\n' "$(ep order_status order_status)" "$(ep order_tracking order_tracking)" \
    "$(ep refund_status refund_status)" "$(ep profile profile)" "$(ep stock order_status)" \
    "$(ep one_at_a_time order_status | sed 's/}$/, "concurrency": 1}/')" \
    "$(ep patient order_status | sed 's/"timeout_s": 0.5/"timeout_s": 8/')" >"$tmp/actions.json"
printf '{%s, %s, %s}\n' "$(ep order_status order_status)" "$(ep order_tracking order_tracking)" \
    "$(ep profile profile)" >"$tmp/partial.json"

# 1. the configuration must know every action the rules name: refused at start, at the name
"$KEFU" serve --listen 127.0.0.1:0 --data "$tmp/d0" --rules "$tmp/rules" --corpus "$tmp/corpus" \
    --actions "$tmp/partial.json" >"$tmp/refused.out" 2>"$tmp/refused.err"
rc=$?
line=$(grep -n 'action    refund_status' rules/returns.rules | cut -d: -f1)
[ "$rc" -ne 0 ] && grep -q "returns.rules:$line:13: unknown action 'refund_status' (not in the actions configuration)" \
    "$tmp/refused.err"
check actions-unknown-refused $? "rc $rc $(cat "$tmp/refused.err")"
"$KEFU" check --actions "$tmp/partial.json" "$tmp/rules" >/dev/null 2>"$tmp/check.err"
rc=$?
[ "$rc" -eq 1 ] && grep -q "returns.rules:$line:13: unknown action 'refund_status'" "$tmp/check.err"
check actions-check-unknown $? "rc $rc $(cat "$tmp/check.err")"

serve "$tmp/out" "$tmp/log" --data "$tmp/d1" --rules "$tmp/rules" --corpus "$tmp/corpus" --rate-limit 0 \
    --actions "$tmp/actions.json" || { no actions-serve "$(cat "$tmp/log")"; exit 0; }

# post PATH BODY [HEADER]: the status; the body in $tmp/b
post() {
    curl -s -m 10 -o "$tmp/b" -w '%{http_code}' -X POST -H 'Content-Type: application/json' ${3:+-H "$3"} \
        --data-binary "$2" "$URL$1"
}
# conv CUSTOMER: a new conversation; sets C and T
conv() {
    post /v1/conversations '{"channel":"web","customer":{"id":"'"$1"'"}}' >/dev/null
    C=$(jq -r .id "$tmp/b")
    T="Authorization: Bearer $(jq -r .token "$tmp/b")"
}
# say TEXT: the customer's message; sets S (status), R (reply text), ST (state)
say() {
    S=$(post "/v1/conversations/$C/messages" "$(jq -cn --arg t "$1" '{text:$t}')" "$T")
    R=$(jq -r '.reply.text // ""' "$tmp/b")
    ST=$(jq -r '.state // ""' "$tmp/b")
}
mode() { curl -s -m 5 -o /dev/null -X POST --data-binary "{\"mode\":\"$1\"}" "$B/_mode"; }
calls() { wc -l <"$tmp/backend.log"; }
healthy() { [ "$(curl -s -m 5 "$URL/healthz" | jq -r .status)" = ok ]; }

# 2. an answer fills the reply, in English and in Chinese; unknown orders do not exist
conv c-en
say "where is my order KF12345678"
[ "$S" = 200 ] && [ "$R" = "Order KF12345678 has shipped with SF Express (tracking number SF0000000001) and should arrive tomorrow." ]
check actions-answer-en $? "$S $R"
line=$(tail -n 1 "$tmp/backend.log")
echo "$line" | jq -e --arg c "$C" '.sig_ok == true and .path == "/order_status" and .action == "order_status"
    and (.body | fromjson | .intent == "order.status" and .slots.order_id == "KF12345678"
    and .conversation == $c and .locale == "en" and .customer.id == "c-en")' >/dev/null
check actions-request-signed $? "$line"
conv c-zh
say "我的订单KF12345678到哪了"
case "$R" in "订单 KF12345678 已发货（顺丰速运，运单号 SF0000000001），预计明天送达。") r=0 ;; *) r=1 ;; esac
check actions-answer-zh $r "$S $R"
say "KF20000000"
case "$R" in *"订单 KF20000000 不存在"*) r=0 ;; *) r=1 ;; esac
check actions-unknown-order $r "$S $R"
conv c-text
say "where is my order KF19999999"
case "$R" in *"shipped with {customer.name}{kb:refund-policy}  (tracking"*) r=0 ;; *) r=1 ;; esac # BEL: a space
[ "$r" = 0 ] && [ "$(jq '.reply.articles // [] | length' "$tmp/b")" = 0 ]
check actions-values-are-text $? "$R $(cat "$tmp/b")"
say "when will I get my refund for KF12345678"
case "$R" in *"refund of ¥42.00 for order KF12345678 is on its way"*) r=0 ;; *) r=1 ;; esac
check actions-refund $r "$R"

# 3. every way a backend fails gives the 'on failed' reply, 200, never a 5xx; healthz stays ok
conv c-fail
fails=""
for m in slow fail malformed; do
    mode "$m"
    t0=$(date +%s%N)
    say "where is my order KF12345678"
    ms=$((($(date +%s%N) - t0) / 1000000))
    case "$R" in *"I can't look up order KF12345678 right now"*) r=0 ;; *) r=1 ;; esac
    [ "$S" = 200 ] && [ "$r" = 0 ] && [ "$ST" = bot ] && healthy || fails="$fails $m($S $ms ms: $R)"
    [ "$m" = slow ] && [ "$ms" -gt 2500 ] && fails="$fails slow-took-$ms-ms"
done
check actions-failures-answered $([ -z "$fails" ]; echo $?) "$fails"

# 4. three failures in a row opened the breaker: the next call does not go out
mode ok
n=$(calls)
say "where is my order KF12345678"
case "$R" in *"I can't look up order"*) r=0 ;; *) r=1 ;; esac
[ "$r" = 0 ] && [ "$(calls)" = "$n" ] && curl -s "$URL/metrics" | grep -q '^kefu_action_breaker_open{action="order_status"} 1$'
check actions-breaker-open $? "$(calls) calls (was $n): $R"
sleep 1.2
say "where is my order KF12345678"
case "$R" in *"has shipped with SF Express"*) r=0 ;; *) r=1 ;; esac
[ "$r" = 0 ] && curl -s "$URL/metrics" | grep -q '^kefu_action_breaker_open{action="order_status"} 0$'
check actions-breaker-closes $? "$R"

# 5. a JSON array, an answer over the cap, a backend that cuts the connection: answered
fails=""
for m in array huge down; do
    mode "$m"
    say "track my package KF12345678"
    case "$R" in *"appears in Me > Orders > Track"*) r=0 ;; *) r=1 ;; esac
    [ "$S" = 200 ] && [ "$r" = 0 ] && healthy || fails="$fails $m($S: $R)"
done
check actions-bad-answers $([ -z "$fails" ]; echo $?) "$fails"

# 6. no 'on failed' line: a handoff with reason action_failed, the outcome in the packet
mode fail
conv c-stock
say "inventory of sku1234"
[ "$S" = 200 ] && [ "$ST" = queued ] && [ "$(jq -r .queue.name "$tmp/b")" = general ]
check actions-failed-handoff $? "$S $ST $(cat "$tmp/b")"
s=$(post "/v1/conversations/$C/claim" '' "$AL")
jq -e '.reason == "action_failed" and .understood.actions.stock.outcome == "error"
    and .understood.actions.stock.intent == "shop.stock"' "$tmp/b" >/dev/null
check actions-failed-packet $? "$s $(cat "$tmp/b")"
mode ok

# 6b. the concurrency limit: while one call waits on a slow backend, the next is refused at once
mode slow
conv c-busy-1
C1=$C T1=$T
conv c-busy-2
curl -s -m 10 -o "$tmp/busy1" -X POST -H 'Content-Type: application/json' -H "$T1" \
    --data-binary '{"text":"ask the warehouse"}' "$URL/v1/conversations/$C1/messages" &
bg=$!
sleep 0.15
t0=$(date +%s%N)
say "ask the warehouse"
ms=$((($(date +%s%N) - t0) / 1000000))
wait "$bg"
[ "$S" = 200 ] && [ "$R" = "The warehouse cannot say right now." ] &&
    [ "$(jq -r .reply.text "$tmp/busy1")" = "The warehouse cannot say right now." ] &&
    curl -s "$URL/metrics" | grep -q '^kefu_action_calls_total{action="one_at_a_time",outcome="busy"} 1$' &&
    curl -s "$URL/metrics" | grep -q '^kefu_action_calls_total{action="one_at_a_time",outcome="timeout"} 1$'
check actions-concurrency-limit $? "$S $ms ms $R $(curl -s "$URL/metrics" | grep one_at_a_time)"

# 6c. an agent's call on a conversation whose message waits for its action (3 s here) does not
# wait for it (it used to hold the conversation's lock while waiting, and the turn could never
# resume): it is answered at once from what is committed (a claim or a reply to a conversation
# with the bot is refused, 409; the context is read), before the customer's answer, which is
# unchanged
conv c-patient
calls_before=$(calls)
curl -s -m 20 -o "$tmp/patient" -X POST -H 'Content-Type: application/json' -H "$T" \
    --data-binary '{"text":"patience please"}' "$URL/v1/conversations/$C/messages" >/dev/null &&
    echo customer >>"$tmp/order" &
bg=$!
i=0
while [ $i -lt 200 ] && [ "$(calls)" -le "$calls_before" ]; do sleep 0.02; i=$((i + 1)); done # the call is out
cs=$(curl -s -m 20 -o "$tmp/claim" -w '%{http_code}' -X POST -H "$AL" "$URL/v1/conversations/$C/claim")
ms=$(curl -s -m 20 -o /dev/null -w '%{http_code}' -X POST -H "$AL" -H 'Content-Type: application/json' \
    --data-binary '{"text":"hello"}' "$URL/v1/conversations/$C/agent-messages")
echo agent >>"$tmp/order"
ctx=$(curl -s -m 20 -w ' %{http_code}' -H "$AL" "$URL/v1/conversations/$C")
wait "$bg"
[ "$cs" = 409 ] && [ "$ms" = 409 ] && [ "$(cat "$tmp/order" | tr '\n' ' ')" = "agent customer " ] &&
    [ "$(jq -r .reply.text "$tmp/patient")" = "The patient system answered." ] &&
    [ "$(jq -r .state "$tmp/patient")" = bot ] && [ "${ctx##* }" = 200 ]
check actions-agent-does-not-wait $? "claim $cs $(cat "$tmp/claim"); reply $ms; order $(cat "$tmp/order" | tr '\n' ' '); $(cat "$tmp/patient"); ctx ${ctx##* }"

# 6d. erasing a customer whose message waits for its action (3 s): the erase does not wait for
# it (it used to wait holding every conversation lock, under one of which that turn resumes, and
# both hung); when the action answers, the turn finds its conversation erased and writes nothing
# back: the customer gets 404, and nothing of them is left
conv c-erased
calls_before=$(calls)
curl -s -m 20 -o "$tmp/erased" -w '%{http_code}' -X POST -H 'Content-Type: application/json' -H "$T" \
    --data-binary '{"text":"patience please"}' "$URL/v1/conversations/$C/messages" >"$tmp/erased.code" &
bg=$!
i=0
while [ $i -lt 200 ] && [ "$(calls)" -le "$calls_before" ]; do sleep 0.02; i=$((i + 1)); done # the call is out
es=$(curl -s -m 20 -o "$tmp/erase" -w '%{http_code}' -X POST -H "$AD" -H 'Content-Type: application/json' \
    --data-binary '{"customer":"c-erased"}' "$URL/v1/admin/erase")
before_answer=$(cat "$tmp/erased.code" 2>/dev/null)
wait "$bg"
sleep 0.3 # anything still on its way to the store
gs=$(curl -s -m 5 -o /dev/null -w '%{http_code}' -H "$AL" "$URL/v1/conversations/$C")
left=$(sqlite3 "$tmp/d1/kefu.db" "SELECT (SELECT count(*) FROM conversations WHERE customer = 'c-erased') +
    (SELECT count(*) FROM messages WHERE conv = '$C')" 2>&1)
[ "$es" = 200 ] && [ "$(jq -r .conversations "$tmp/erase")" = 1 ] && [ -z "$before_answer" ] &&
    [ "$(cat "$tmp/erased.code")" = 404 ] && [ "$(jq -r .error.code "$tmp/erased")" = not_found ] &&
    [ "$gs" = 404 ] && [ "$left" = 0 ] && healthy
check actions-erase-during-action $? "erase $es $(cat "$tmp/erase") (answer before it: '$before_answer'); message $(cat "$tmp/erased.code") $(cat "$tmp/erased"); get $gs; left $left"
mode ok

# 7. the profile action: a customer the widget calls regular is a VIP for the shop
conv vip-7
say "asdf qwer zxcv"
[ "$S" = 200 ] && [ "$ST" = queued ] && [ "$(jq -r .queue.name "$tmp/b")" = vip ]
check actions-profile-vip $? "$S $ST $(cat "$tmp/b")"
grep -q '"path":"/profile"' "$tmp/backend.log"
n=$(grep -c '"path":"/profile"' "$tmp/backend.log")
conv c-regular
say "hello"
say "where is my order KF12345678"
[ "$(grep -c '"path":"/profile"' "$tmp/backend.log")" = $((n + 1)) ] # once per conversation, not per message
check actions-profile-once $? "$(grep -c '"path":"/profile"' "$tmp/backend.log") profile calls (was $n)"
# a widget that logs its visitor in mid-conversation sends the customer's id with a message: the
# profile action asks again for the new id (before that message is decided), not again for the
# same id; the previous profile's attributes go; the conversation is the new customer's
profiles() { grep -c '"path":"/profile"' "$tmp/backend.log"; }
# as CUSTOMER TEXT: the customer's message with customer:{id}
as() {
    S=$(post "/v1/conversations/$C/messages" "$(jq -cn --arg t "$2" --arg c "$1" '{text:$t, customer:{id:$c}}')" "$T")
    R=$(jq -r '.reply.text // ""' "$tmp/b")
}
conv anon-7
say "where is my order KF12345678"
n=$(profiles)
as vip-login "where is my order KF12345679"
p1=$(grep '"path":"/profile"' "$tmp/backend.log" | tail -n 1)
o1=$(grep '"path":"/order_status"' "$tmp/backend.log" | tail -n 1)
as vip-login "where is my order KF12345670"
p2=$(profiles)
as c-login "where is my order KF12345671"
o3=$(grep '"path":"/order_status"' "$tmp/backend.log" | tail -n 1)
owner=$(sqlite3 "$tmp/d1/kefu.db" "SELECT customer FROM conversations WHERE id = '$C'" 2>&1)
[ "$S" = 200 ] && [ "$p2" = $((n + 1)) ] && [ "$(profiles)" = $((n + 2)) ] &&
    echo "$p1" | jq -e '.body | fromjson | .customer.id == "vip-login"' >/dev/null &&
    echo "$o1" | jq -e '.body | fromjson | .customer.id == "vip-login" and .customer.tier == "vip"
        and .attributes["attr.segment"] == "wholesale"' >/dev/null &&
    echo "$o3" | jq -e '.body | fromjson | .customer.id == "c-login" and .customer.tier == ""
        and (.attributes | has("attr.segment") | not)' >/dev/null &&
    [ "$owner" = c-login ]
check actions-profile-new-customer $? "$S $n $p2 $(profiles) profile calls; owner $owner; $o1; $o3"
as "" "hello"
[ "$S" = 400 ] && jq -e '.error.code == "invalid_request"' "$tmp/b" >/dev/null
check actions-customer-id-empty-refused $? "$S $(cat "$tmp/b")"

# 8. metrics: calls by outcome, latency by action
curl -s "$URL/metrics" >"$tmp/metrics"
for o in ok timeout error malformed breaker_open; do
    grep -Eq "^kefu_action_calls_total\{action=\"order_status\",outcome=\"$o\"\} [1-9]" "$tmp/metrics" ||
        fails="$fails order_status/$o"
done
grep -Eq '^kefu_action_calls_total\{action="order_tracking",outcome="too_large"\} 1$' "$tmp/metrics" ||
    fails="$fails too_large"
grep -Eq '^kefu_action_calls_total\{action="order_tracking",outcome="malformed"\} 1$' "$tmp/metrics" ||
    fails="$fails array"
grep -Eq '^kefu_action_duration_seconds_count\{action="order_status"\} [1-9]' "$tmp/metrics" ||
    fails="$fails latency"
check actions-metrics $([ -z "$fails" ]; echo $?) "$fails $(grep kefu_action "$tmp/metrics")"
healthy
check actions-healthz $? "$(curl -s "$URL/healthz")"
grep -q '"status":5[0-9][0-9]' "$tmp/log"
check actions-no-5xx $([ $? -ne 0 ]; echo $?) "$(grep '"status":5' "$tmp/log" | head -3)"
kill "$pid"
wait "$pid" 2>/dev/null
pid=""

# 9. the bundled shop: kefu demo-orders answers the bundled rules (what make run starts)
demo_orders "$tmp/demo.json"
serve "$tmp/out" "$tmp/log" --data "$tmp/d2" --corpus "$tmp/corpus" --rate-limit 0 --actions "$tmp/demo.json" ||
    { no actions-demo-serve "$(cat "$tmp/log")"; exit 0; }
conv demo-1
say "我的订单到哪了"
say "KF12345678"
case "$R" in "订单 KF12345678 已发货（顺丰速运，运单号 SF1234567890123），预计明天送达。") r=0 ;; *) r=1 ;; esac
check actions-demo-shipped $r "$R"
say "我的订单KF99999999到哪了"
case "$R" in *"订单 KF99999999 不存在"*) r=0 ;; *) r=1 ;; esac
check actions-demo-unknown $r "$R"
say "退款什么时候到账 KF20250612"
case "$R" in *"退款 ¥129.00 正在处理中，预计3 个工作日内原路到账"*) r=0 ;; *) r=1 ;; esac
check actions-demo-refund $r "$R"
say "帮我查一下物流 KF87654321"
case "$R" in *"还没有发货"*) r=0 ;; *) r=1 ;; esac
check actions-demo-tracking $r "$R"
