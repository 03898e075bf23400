#!/bin/sh
# e2e.sh — kefu serve end to end over real HTTP on 127.0.0.1, on the real
# engine with a fresh SQLite file in a temp dir: a customer, an agent and
# an operator, every documented error, push channels within 1 s, reloads
# (broken and under traffic) and a graceful SIGTERM. Prints "ok NAME" or
# "not ok NAME" per case (tests/run.sh counts them). Every loop is bounded;
# the server is stopped by its own pid.
set -u
KEFU="${KEFU:-${BUILD:-build}/kefu}" # may carry a wrapper: "valgrind -q build/kefu"
TRAFFIC="${E2E_TRAFFIC:-300}"
RELOADS="${E2E_RELOADS:-10}"
SLOW="${KEFU_SLOW:-1}"
tmp=$(mktemp -d)
pid=""
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null
    for p in $(cat "$tmp"/bg.* 2>/dev/null); do kill "$p" 2>/dev/null; done
    [ -n "${KEEP:-}" ] && echo "kept $tmp" || rm -rf "$tmp"
}
trap cleanup EXIT

ok() { echo "ok $1"; }
no() { echo "not ok $1"; [ $# -gt 1 ] && printf '  %s\n' "$2"; }
check() { # check NAME CONDITION-EXIT-STATUS [DETAIL]
    if [ "$2" -eq 0 ]; then ok "$1"; else no "$1" "${3:-}"; fi
}
now_ms() { date +%s%3N; }

exec_kefu() { exec $KEFU "$@"; }
mkdir -p "$tmp/rules" "$tmp/data" "$tmp/web/static"
cp rules/*.rules "$tmp/rules/"
[ -d corpus ] && cp -r corpus "$tmp/corpus" || mkdir -p "$tmp/corpus"
echo 'kefu' >"$tmp/web/static/hello.txt"
echo 'secret' >"$tmp/secret.txt"

# 0. the command line: help, a bad flag, a bad address
$KEFU serve --help >"$tmp/help" 2>&1
check serve-help "$([ $? -eq 0 ] && grep -q -- '--listen ADDR:PORT' "$tmp/help"; echo $?)" "$(cat "$tmp/help")"
$KEFU serve --nope 1 >/dev/null 2>"$tmp/err"
check serve-bad-flag "$([ $? -eq 2 ] && grep -q "unknown option '--nope'" "$tmp/err"; echo $?)" "$(cat "$tmp/err")"
$KEFU serve --listen nowhere --data "$tmp/data0" --rules "$tmp/rules" --corpus "$tmp/corpus" >/dev/null 2>"$tmp/err"
check serve-bad-listen "$([ $? -eq 1 ] && grep -q "cannot listen on 'nowhere'" "$tmp/err"; echo $?)" "$(cat "$tmp/err")"

# shellcheck disable=SC2086
KEFU_AGENT_TOKENS="alice:tok-alice-0123456789,bob:tok-bob-0123456789ab" KEFU_ADMIN_TOKEN="adm-0123456789abcdef" \
    exec_kefu serve --listen 127.0.0.1:0 --data "$tmp/data" --rules "$tmp/rules" --corpus "$tmp/corpus" \
    --web "$tmp/web" --rate-limit 0 --cors-origin https://shop.example >"$tmp/out" 2>"$tmp/log" &
pid=$!
i=0
while [ $i -lt $((100 * SLOW)) ] && kill -0 "$pid" 2>/dev/null && ! grep -q "serving on" "$tmp/out" 2>/dev/null; do sleep 0.1; i=$((i + 1)); done
URL=$(sed -n 's/^kefu: serving on //p' "$tmp/out")
if [ -z "$URL" ]; then
    no serve-start "$(cat "$tmp/log")"
    exit 0
fi
ok serve-start

# req METHOD PATH [BODY] [HEADER...]: prints the status on line 1, the body after
req() {
    m=$1 p=$2 b=${3:-}
    shift 2
    [ $# -gt 0 ] && shift
    if [ -n "$b" ]; then
        curl -s -m 10 -o "$tmp/body" -w '%{http_code}' -X "$m" -H 'Content-Type: application/json' \
            --data-binary "$b" "$@" "$URL$p"
    else
        curl -s -m 10 -o "$tmp/body" -w '%{http_code}' -X "$m" "$@" "$URL$p"
    fi
}
body() { cat "$tmp/body"; }
jqb() { jq -r "$1" "$tmp/body" 2>/dev/null; }
errcode() { jq -r '.error.code' "$tmp/body" 2>/dev/null; }

AL="Authorization: Bearer tok-alice-0123456789"
BO="Authorization: Bearer tok-bob-0123456789ab"
AD="Authorization: Bearer adm-0123456789abcdef"

# 1. health and a new conversation with its greeting
s=$(req GET /healthz)
check healthz "$([ "$s" = 200 ] && [ "$(jqb .status)" = ok ]; echo $?)" "$s $(body)"
s=$(req POST /v1/conversations '{"channel":"web","customer":{"id":"cust-1","name":"Li"},"locale":"en"}')
CID=$(jqb .id)
TOK=$(jqb .token)
check create "$([ "$s" = 201 ] && [ -n "$CID" ] && [ ${#TOK} -ge 22 ] && [ "$(jqb '.messages | length')" -ge 1 ]; echo $?)" "$s $(body)"
CT="Authorization: Bearer $TOK"

# 2. a question answered by a rule
s=$(req POST "/v1/conversations/$CID/messages" '{"text":"where is my order KF12345678"}' -H "$CT")
check rule-answer "$([ "$s" = 200 ] && [ "$(jqb .reply.source)" = rule ] && [ "$(jqb .reply.intent)" != null ]; echo $?)" "$s $(body)"

# 2b. a question no rule or example takes, answered by the bundled corpus's article
s=$(req POST "/v1/conversations/$CID/messages" '{"text":"加急快递收费吗"}' -H "$CT")
check article-answer "$([ "$s" = 200 ] && [ "$(jqb .reply.source)" = kb ] && [ "$(jqb .state)" = bot ] &&
    [ "$(jqb '.reply.articles[0].id')" = shipping-fees ] && jqb .reply.text | grep -q '¥18'; echo $?)" "$s $(body)"

# 3. asking for a person queues the conversation; an agent's queue long-poll hears of it
s=$(req GET /v1/queue "" -H "$AL")
QV=$(jqb .version)
curl -s -m 15 -H "$AL" -o "$tmp/qpoll" "$URL/v1/queue?since=$QV&wait=10" &
echo $! >"$tmp/bg.qpoll"
sleep 0.3
t0=$(now_ms)
s=$(req POST "/v1/conversations/$CID/messages" '{"text":"I want to talk to a human agent"}' -H "$CT")
check handoff-queued "$([ "$s" = 200 ] && [ "$(jqb .state)" = queued ]; echo $?)" "$s $(body)"
SEQ=$(jqb .seq)
wait "$(cat "$tmp/bg.qpoll")"
t1=$(now_ms)
rm -f "$tmp/bg.qpoll"
check queue-poll-1s "$(jq -e --arg c "$CID" '.conversations | map(.id) | index($c) != null' "$tmp/qpoll" >/dev/null && [ $((t1 - t0)) -le $((1000 * SLOW)) ]; echo $?)" "$((t1 - t0)) ms: $(cat "$tmp/qpoll")"

# 4. the agent sees it in the queue, claims it and gets the packet
s=$(req GET /v1/queue "" -H "$AL")
check queue-lists "$([ "$s" = 200 ] && jq -e --arg c "$CID" '.conversations | map(.id) | index($c) != null' "$tmp/body" >/dev/null; echo $?)" "$s $(body)"
s=$(req POST "/v1/conversations/$CID/claim" "" -H "$AL")
check claim-packet "$([ "$s" = 200 ] && grep -q 'KF12345678' "$tmp/body"; echo $?)" "$s $(body)"
s=$(req POST "/v1/conversations/$CID/claim" "" -H "$BO")
check claim-twice-409 "$([ "$s" = 409 ] && [ "$(errcode)" = conflict ]; echo $?)" "$s $(body)"

# 5. long-poll and SSE both deliver the agent's reply within 1 s
curl -s -m 5 -H "$CT" -o "$tmp/msgs" "$URL/v1/conversations/$CID/messages"
LAST=$(jq '[.messages[].seq] | max' "$tmp/msgs")
curl -s -m 15 -H "$CT" -o "$tmp/poll" -w '%{http_code}' "$URL/v1/conversations/$CID/messages?after=$LAST&wait=10" \
    >"$tmp/poll.code" &
echo $! >"$tmp/bg.poll"
curl -s -N -m 15 "$URL/v1/conversations/$CID/events?token=$TOK&after=$LAST" >"$tmp/sse" &
echo $! >"$tmp/bg.sse"
sleep 0.5
t0=$(now_ms)
s=$(req POST "/v1/conversations/$CID/agent-messages" '{"text":"Hi, this is Alice. Let me check."}' -H "$AL")
check agent-reply "$([ "$s" = 200 ]; echo $?)" "$s $(body)"
i=0
while [ $i -lt $((40 * SLOW)) ] && ! grep -q 'Alice' "$tmp/poll" 2>/dev/null; do sleep 0.05; i=$((i + 1)); done
t1=$(now_ms)
check long-poll-1s "$(grep -q 'Alice' "$tmp/poll" && [ $((t1 - t0)) -le $((1000 * SLOW)) ]; echo $?)" "$((t1 - t0)) ms: $(cat "$tmp/poll")"
i=0
while [ $i -lt $((40 * SLOW)) ] && ! grep -q 'Alice' "$tmp/sse" 2>/dev/null; do sleep 0.05; i=$((i + 1)); done
t1=$(now_ms)
check sse-1s "$(grep -q '^data: .*Alice' "$tmp/sse" && grep -q '^id: ' "$tmp/sse" && [ $((t1 - t0)) -le $((1000 * SLOW)) ]; echo $?)" "$((t1 - t0)) ms: $(cat "$tmp/sse")"
kill "$(cat "$tmp/bg.sse")" 2>/dev/null
wait "$(cat "$tmp/bg.poll")" 2>/dev/null
rm -f "$tmp/bg.poll" "$tmp/bg.sse"

# 6. with an agent on it, the bot stays silent, and the agent's long-poll gets the message
curl -s -m 5 -H "$AL" -o "$tmp/msgs" "$URL/v1/conversations/$CID/messages"
LAST=$(jq '[.messages[].seq] | max' "$tmp/msgs")
curl -s -m 15 -H "$AL" -o "$tmp/apoll" "$URL/v1/conversations/$CID/messages?after=$LAST&wait=10" &
echo $! >"$tmp/bg.apoll"
sleep 0.3
t0=$(now_ms)
s=$(req POST "/v1/conversations/$CID/messages" '{"text":"where is my order KF12345678"}' -H "$CT")
check bot-silent "$([ "$s" = 200 ] && [ "$(jqb .reply)" = null ] && [ "$(jqb .state)" = agent ]; echo $?)" "$s $(body)"
wait "$(cat "$tmp/bg.apoll")"
t1=$(now_ms)
rm -f "$tmp/bg.apoll"
check agent-poll-1s "$(grep -q 'KF12345678' "$tmp/apoll" && [ $((t1 - t0)) -le $((1000 * SLOW)) ]; echo $?)" "$((t1 - t0)) ms: $(cat "$tmp/apoll")"
s=$(req GET "/v1/conversations/$CID/messages" "" -H "$BO")
check other-agent-403 "$([ "$s" = 403 ]; echo $?)" "$s $(body)"
s=$(req GET "/v1/conversations/$CID" "" -H "$AL")
check context "$([ "$s" = 200 ] && grep -q 'Alice' "$tmp/body"; echo $?)" "$s $(body)"

# 6b. the agent's reply was the first response: in /v1/stats, /metrics and kefu report (one, in queue general on web)
s=$(req GET /v1/stats "" -H "$AL")
check first-response-stats "$([ "$s" = 200 ] && [ "$(jqb .first_response_s.count)" = 1 ] &&
    [ "$(jqb '.first_response_s.groups[0].queue + "/" + .first_response_s.groups[0].channel')" = general/web ]; echo $?)" "$s $(body)"
s=$(req GET /metrics)
check first-response-metric "$(grep -q '^kefu_agent_first_response_seconds_count{queue="general",channel="web"} 1$' "$tmp/body"; echo $?)" "$(grep first_response "$tmp/body")"
$KEFU report --data "$tmp/data" --json >"$tmp/report" 2>&1
check first-response-report "$(jq -e '.first_response_s.count == 1 and .first_response_s.groups[0].channel == "web"' "$tmp/report" >/dev/null; echo $?)" "$(cat "$tmp/report")"

# 7. resolve, feedback, and a new message starts over with the bot
s=$(req POST "/v1/conversations/$CID/resolve" "" -H "$AL")
check resolve "$([ "$s" = 200 ] && [ "$(jqb .state)" = resolved ]; echo $?)" "$s $(body)"
s=$(req POST "/v1/conversations/$CID/feedback" '{"rating":5,"comment":"quick and kind"}' -H "$CT")
check feedback "$([ "$s" = 200 ]; echo $?)" "$s $(body)"
s=$(req POST "/v1/conversations/$CID/feedback" '{"rating":7}' -H "$CT")
check feedback-range-400 "$([ "$s" = 400 ]; echo $?)" "$s $(body)"
s=$(req POST "/v1/conversations/$CID/messages" '{"text":"how do I get an invoice"}' -H "$CT")
check bot-again "$([ "$s" = 200 ] && [ "$(jqb .state)" = bot ] && [ "$(jqb .reply)" != null ]; echo $?)" "$s $(body)"

# 8. credentials
s=$(req POST /v1/conversations '{"channel":"web","customer":{"id":"cust-2"}}')
CID2=$(jqb .id)
s=$(req GET "/v1/conversations/$CID2/messages" "" -H "$CT")
check other-token-403 "$([ "$s" = 403 ] || [ "$s" = 404 ]; echo $?)" "$s $(body)"
s=$(req GET "/v1/conversations/$CID/messages")
check no-token-401 "$([ "$s" = 401 ] && [ "$(errcode)" = unauthorized ]; echo $?)" "$s $(body)"
s=$(req GET /v1/queue)
check agent-missing-401 "$([ "$s" = 401 ]; echo $?)" "$s $(body)"
s=$(req GET /v1/queue "" -H "Authorization: Bearer tok-alice-012345678")
check agent-wrong-401 "$([ "$s" = 401 ]; echo $?)" "$s $(body)"
s=$(req POST /v1/admin/reload "" -H "$AL")
check admin-wrong-401 "$([ "$s" = 401 ]; echo $?)" "$s $(body)"

# 9. malformed input gets the documented errors
M="/v1/conversations/$CID/messages"
s=$(req POST "$M" '{"text":' -H "$CT")
check malformed-json-400 "$([ "$s" = 400 ] && [ "$(errcode)" = invalid_json ]; echo $?)" "$s $(body)"
printf '{"text":"\377\376"}' >"$tmp/bad-utf8"
s=$(curl -s -m 5 -o "$tmp/body" -w '%{http_code}' -H "$CT" -H 'Content-Type: application/json' \
    --data-binary @"$tmp/bad-utf8" "$URL$M")
check invalid-utf8-400 "$([ "$s" = 400 ] && [ "$(errcode)" = invalid_utf8 ]; echo $?)" "$s $(body)"
head -c 70000 /dev/zero | tr '\0' ' ' >"$tmp/big"
s=$(curl -s -m 5 -o "$tmp/body" -w '%{http_code}' -H "$CT" -H 'Content-Type: application/json' \
    --data-binary @"$tmp/big" "$URL$M")
check oversize-413 "$([ "$s" = 413 ] && [ "$(errcode)" = too_large ]; echo $?)" "$s $(body)"
long=$(head -c 5000 /dev/zero | tr '\0' 'a')
s=$(req POST "$M" "{\"text\":\"$long\"}" -H "$CT")
check long-message-413 "$([ "$s" = 413 ]; echo $?)" "$s $(body)"
deep='{"text":"hi","x":[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]}'
s=$(req POST "$M" "$deep" -H "$CT")
check too-deep-400 "$([ "$s" = 400 ] && [ "$(errcode)" = too_deep ]; echo $?)" "$s $(body)"
s=$(curl -s -m 5 -o "$tmp/body" -w '%{http_code}' -H "$CT" -H 'Content-Type: text/plain' -d 'hi' "$URL$M")
check content-type-415 "$([ "$s" = 415 ]; echo $?)" "$s $(body)"
s=$(req GET /v1/nope)
check unknown-route-404 "$([ "$s" = 404 ] && [ "$(errcode)" = not_found ]; echo $?)" "$s $(body)"
allow=$(curl -s -m 5 -o /dev/null -D - -X DELETE "$URL$M" | tr -d '\r' | sed -n 's/^Allow: //Ip')
s=$(req DELETE "$M")
check wrong-method-405 "$([ "$s" = 405 ] && echo "$allow" | grep -q POST; echo $?)" "$s $allow $(body)"
s=$(curl -s -m 5 --path-as-is -o "$tmp/body" -w '%{http_code}' "$URL/static/../../secret.txt")
check static-traversal "$([ "$s" = 404 ] && ! grep -q secret "$tmp/body"; echo $?)" "$s $(body)"
s=$(curl -s -m 5 -o "$tmp/body" -w '%{http_code}' "$URL/static/hello.txt")
check static-file "$([ "$s" = 200 ] && grep -q kefu "$tmp/body"; echo $?)" "$s"

# 10. a broken rule file is refused with file:line:col and the old rules keep answering
printf 'intent broken.one\n  match ~no_such_concept\n  reply x\n' >"$tmp/rules/zz_broken.rules"
s=$(req POST /v1/admin/reload "" -H "$AD")
check reload-broken "$([ "$s" = 409 ] && [ "$(errcode)" = rules_invalid ] && jq -e '.error.diagnostics | map(select(.file | test("zz_broken"))) | .[0].line == 2' "$tmp/body" >/dev/null; echo $?)" "$s $(body)"
grep -q 'zz_broken.rules:2:' "$tmp/log"
check reload-broken-logged $?
s=$(req POST "/v1/conversations/$CID2/messages" '{"text":"where is my order KF12345678"}' -H "Authorization: Bearer $(curl -s -X POST -H 'Content-Type: application/json' -d '{"channel":"web","customer":{"id":"c3"}}' "$URL/v1/conversations" | tee "$tmp/c3" | jq -r .token)")
CID3=$(jq -r .id "$tmp/c3")
s=$(req POST "/v1/conversations/$CID3/messages" '{"text":"where is my order KF12345678"}' -H "Authorization: Bearer $(jq -r .token "$tmp/c3")")
check old-rules-serve "$([ "$s" = 200 ] && [ "$(jqb .reply.source)" = rule ]; echo $?)" "$s $(body)"
rm -f "$tmp/rules/zz_broken.rules"
s=$(req POST /v1/admin/reload "" -H "$AD")
check reload-ok "$([ "$s" = 200 ] && [ "$(jqb .ok)" = true ]; echo $?)" "$s $(body)"
kill -HUP "$pid"
sleep 0.3
grep -q '"rules reloaded"' "$tmp/log"
check sighup-reload $?

# 11. reloads under traffic fail no request ($TRAFFIC requests, $RELOADS reloads, bounded by curl -m)
T3="Authorization: Bearer $(jq -r .token "$tmp/c3")"
(
    n=0 bad=0
    while [ $n -lt "$TRAFFIC" ]; do
        c=$(curl -s -m 5 -o /dev/null -w '%{http_code}' -H "$T3" -H 'Content-Type: application/json' \
            -d '{"text":"how long does delivery take"}' "$URL/v1/conversations/$CID3/messages")
        [ "$c" = 200 ] || bad=$((bad + 1))
        n=$((n + 1))
    done
    echo "$bad" >"$tmp/traffic.bad"
) &
echo $! >"$tmp/bg.traffic"
r=0 rbad=0
while [ $r -lt "$RELOADS" ]; do
    c=$(curl -s -m 10 -o /dev/null -w '%{http_code}' -X POST -H "$AD" "$URL/v1/admin/reload")
    [ "$c" = 200 ] || rbad=$((rbad + 1))
    r=$((r + 1))
    sleep 0.05
done
wait "$(cat "$tmp/bg.traffic")"
rm -f "$tmp/bg.traffic"
check reload-under-traffic "$([ "$(cat "$tmp/traffic.bad")" = 0 ] && [ $rbad -eq 0 ]; echo $?)" \
    "failed requests: $(cat "$tmp/traffic.bad"), failed reloads: $rbad"

# 12. operator views: metrics, CORS, logs
s=$(req GET /metrics)
check metrics "$([ "$s" = 200 ] && grep -q '^kefu_http_requests_total{route="POST /v1/conversations/{id}/messages",status="200"}' "$tmp/body" && grep -q 'kefu_http_request_duration_seconds_bucket' "$tmp/body"; echo $?)" "$s"
h=$(curl -s -m 5 -o /dev/null -D - -X OPTIONS -H 'Origin: https://shop.example' \
    -H 'Access-Control-Request-Method: POST' "$URL/v1/conversations" | tr -d '\r')
check cors-preflight "$(echo "$h" | grep -q '^Access-Control-Allow-Origin: https://shop.example' && echo "$h" | grep -q '^HTTP/1.1 204'; echo $?)" "$h"
jq -e -s 'length > 10 and all(has("ts") and has("level") and has("msg"))' "$tmp/log" >/dev/null 2>&1
check log-json $?
! grep -q -e "$TOK" -e 'tok-alice-0123456789' -e 'adm-0123456789abcdef' -e 'KF12345678' "$tmp/log"
check log-no-secrets $?

# 13. SIGTERM drains a parked long-poll and exits 0
curl -s -m 15 -H "$CT" -o "$tmp/poll2" -w '%{http_code}' "$URL/v1/conversations/$CID/messages?after=999&wait=10" \
    >"$tmp/poll2.code" &
cp=$!
sleep 0.3
kill -TERM "$pid"
i=0
while [ $i -lt $((100 * SLOW)) ] && kill -0 "$pid" 2>/dev/null; do sleep 0.1; i=$((i + 1)); done
wait "$pid"
st=$?
pid=""
wait "$cp"
check sigterm-drain "$([ $st -eq 0 ] && [ "$(cat "$tmp/poll2.code")" = 200 ]; echo $?)" "exit $st, poll $(cat "$tmp/poll2.code")"

# 14. the replies state the configured service hours: two servers, two --hours, both closed now
# hours_serve HOURS TZ: starts a server on $tmp/data-h, sets URL and pid; 1 when it did not start
hours_serve() {
    rm -f "$tmp/out-h"
    exec_kefu serve --listen 127.0.0.1:0 --data "$tmp/data-h" --rules "$tmp/rules" --corpus "$tmp/corpus" \
        --rate-limit 0 --hours "$1" --tz-offset "$2" >"$tmp/out-h" 2>"$tmp/log-h" &
    pid=$!
    i=0
    while [ $i -lt $((100 * SLOW)) ] && kill -0 "$pid" 2>/dev/null && ! grep -q "serving on" "$tmp/out-h" 2>/dev/null; do sleep 0.1; i=$((i + 1)); done
    URL=$(sed -n 's/^kefu: serving on //p' "$tmp/out-h")
    [ -n "$URL" ]
}
# hours_say TEXT LOCALE: a new conversation in LOCALE says TEXT; the answer is in $tmp/body
hours_say() {
    curl -s -m 10 -X POST -H 'Content-Type: application/json' \
        -d "{\"channel\":\"web\",\"customer\":{\"id\":\"h$$\"},\"locale\":\"$2\"}" "$URL/v1/conversations" >"$tmp/hc"
    req POST "/v1/conversations/$(jq -r .id "$tmp/hc")/messages" "{\"text\":\"$1\"}" \
        -H "Authorization: Bearer $(jq -r .token "$tmp/hc")" >/dev/null
}
hours_stop() {
    kill -TERM "$pid"
    wait "$pid"
    pid=""
}
# hm, hhmm MINUTES: 0-1439 as H:MM and HH:MM
hm() { printf '%d:%02d' $(($1 / 60)) $(($1 % 60)); }
hhmm() { printf '%02d:%02d' $(($1 / 60)) $(($1 % 60)); }
utc_min=$(($(date -u +%s) / 60 % 1440))
ho=$(((utc_min + 180) % 1440)) hc=$(((utc_min + 181) % 1440)) # three hours from now, in UTC
if hours_serve "$(hhmm $ho)-$(hhmm $hc)" 0; then
    hours_say "I want to talk to a person" en
    check hours-offline-en "$(jqb .reply.text | grep -qF "online every day, $(hm $ho)–$(hm $hc) (UTC)."; echo $?)" "$(body)"
    hours_say "what are your opening hours" en
    check hours-smalltalk-en "$(jqb .reply.text | grep -qF "online every day, $(hm $ho)–$(hm $hc) (UTC), weekends"; echo $?)" "$(body)"
    ! grep -qF -e '9:00–22:00' "$tmp/body"
    check hours-no-fixed-text $?
    hours_stop
else
    no hours-serve-utc "$(cat "$tmp/log-h")"
fi
hb=$(((utc_min + 480 + 600) % 1440)) he=$(((utc_min + 480 + 630) % 1440)) # ten hours from now, Beijing time
if hours_serve "$(hhmm $hb)-$(hhmm $he)" 480; then
    hours_say "转人工" zh
    check hours-offline-zh "$(jqb .reply.text | grep -qF "服务时间为每天 $(hm $hb)–$(hm $he)（北京时间）。"; echo $?)" "$(body)"
    hours_say "what are your opening hours" en
    check hours-smalltalk-beijing "$(jqb .reply.text | grep -qF "$(hm $hb)–$(hm $he) (Beijing time)"; echo $?)" "$(body)"
    hours_stop
else
    no hours-serve-beijing "$(cat "$tmp/log-h")"
fi
