#!/bin/sh
# hostile.sh — hostile input against a real `kefu serve` on 127.0.0.1:0
# with a temporary data directory: slow clients, oversize and chunked
# bodies, deep and duplicate JSON, invalid UTF-8, NUL bytes, FTS5 syntax and
# regex bombs in messages, path traversal on static files, unknown methods,
# tokens of one conversation used on another, and CORS probes. Every case
# checks the status (and what must not be in the answer), then that the
# server still answers /healthz. Prints "ok NAME" / "not ok NAME" lines
# (tests/run.sh counts them). Raw-socket cases use tests/hostile_client.c.
# Every loop is bounded; the server and the clients are stopped by pid.
set -u
B=${BUILD:-build}
KEFU="${KEFU:-$B/kefu}"
HC="$B/tests/hostile_client"
tmp=$(mktemp -d)
pid=""
bgs=""
cleanup() {
    for p in $bgs; do kill "$p" 2>/dev/null; done
    [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT

ok() { echo "ok hostile-$1"; }
no() {
    echo "not ok hostile-$1"
    [ $# -gt 1 ] && printf '  %s\n' "$2"
}
alive() { [ "$(curl -s -m 5 -o /dev/null -w '%{http_code}' "$URL/healthz")" = 200 ]; }
# check NAME COND-STATUS DETAIL: the case passes when its condition held and the server still answers
check() {
    if [ "$2" -ne 0 ]; then
        no "$1" "${3:-}"
    elif ! alive; then
        no "$1" "no answer from /healthz afterwards"
    else
        ok "$1"
    fi
}

mkdir -p "$tmp/rules" "$tmp/data" "$tmp/web/static" "$tmp/corpus"
cp rules/*.rules "$tmp/rules/"
cp -r tests/corpus/. "$tmp/corpus/"
echo 'hello from kefu' >"$tmp/web/static/hello.txt"
echo 'SECRET-OUTSIDE-WEB' >"$tmp/secret.txt"
ln -s ../../secret.txt "$tmp/web/static/link.txt"
ln -s / "$tmp/web/static/root"

[ -x "$HC" ] || { no start "$HC is missing (make $HC)"; exit 0; }
KEFU_AGENT_TOKENS="alice:tok-alice-0123456789" KEFU_LOG_LEVEL=error \
    $KEFU serve --listen 127.0.0.1:0 --data "$tmp/data" --rules "$tmp/rules" --corpus "$tmp/corpus" \
    --web "$tmp/web" --rate-limit 0 --cors-origin https://shop.example --idle-timeout 2 \
    --request-timeout 3 >"$tmp/out" 2>"$tmp/log" &
pid=$!
i=0
while [ $i -lt 100 ] && kill -0 "$pid" 2>/dev/null && ! grep -q "serving on" "$tmp/out"; do
    sleep 0.1
    i=$((i + 1))
done
URL=$(sed -n 's/^kefu: serving on //p' "$tmp/out")
PORT=${URL##*:}
[ -n "$URL" ] || { no start "$(cat "$tmp/log")"; exit 0; }

# req METHOD PATH [curl args...]: prints the status; the body is in $tmp/body
req() {
    m=$1 p=$2
    shift 2
    curl -s -m 10 -o "$tmp/body" -w '%{http_code}' -X "$m" "$@" "$URL$p"
}
code() { jq -r '.error.code' "$tmp/body" 2>/dev/null; }
J="Content-Type: application/json"
new_conv() { # new_conv NAME: sets NAME_id and NAME_tok
    req POST /v1/conversations -H "$J" --data "{\"channel\":\"web\",\"customer\":{\"id\":\"$1\"}}" >/dev/null
    eval "$1_id=\$(jq -r .id \"\$tmp/body\") $1_tok=\$(jq -r .token \"\$tmp/body\")"
}
new_conv alpha
new_conv beta
A="Authorization: Bearer $alpha_tok"
msg() { # msg FILE-OR-JSON: posts a message body to conversation alpha
    req POST "/v1/conversations/$alpha_id/messages" -H "$J" -H "$A" --data-binary "$1"
}

# ---- slow clients ----
# one byte every 200 ms never finishes its headers: cut by the request deadline (3 s)
"$HC" slow "$PORT" 200 12 >"$tmp/slow1" &
s1=$!
bgs="$bgs $s1"
sleep 0.5
s=$(curl -s -m 5 -o /dev/null -w '%{http_code}' "$URL/healthz") # others are served meanwhile
wait "$s1"
check slow-byte-at-a-time "$([ "$s" = 200 ] && grep -q '^closed' "$tmp/slow1"; echo $?)" \
    "healthz meanwhile: $s; slow client: $(cat "$tmp/slow1")"
# a client that stops sending is cut by the idle timeout (2 s)
( printf 'GET /healthz HTTP/1.1\r\nHost: x\r\n' | "$HC" raw "$PORT" 8 >"$tmp/idle" ) &
s2=$!
bgs="$bgs $s2"
wait "$s2"
check idle-client "$(grep -q '^000' "$tmp/idle"; echo $?)" "$(cat "$tmp/idle")"
# twenty slow clients at once: a normal conversation still works meanwhile
k=0
slows=""
while [ $k -lt 20 ]; do
    "$HC" slow "$PORT" 150 12 >"$tmp/slow-many.$k" &
    slows="$slows $!"
    k=$((k + 1))
done
bgs="$bgs $slows"
sleep 0.5
s=$(msg '{"text":"where is my refund"}')
for p in $slows; do wait "$p"; done
n=$(cat "$tmp"/slow-many.* | grep -c '^closed')
check slow-clients-others-unaffected "$([ "$s" = 200 ] && [ "$n" -eq 20 ]; echo $?)" "message: $s; closed: $n/20"

# ---- bodies over the cap ----
printf 'POST /v1/conversations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1073741824\r\n\r\n' |
    "$HC" raw "$PORT" 5 >"$tmp/big"
check content-length-1gib-413-before-body "$(grep -q '^413 ' "$tmp/big"; echo $?)" "$(cat "$tmp/big")"
printf 'POST /v1/conversations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nExpect: 100-continue\r\nContent-Length: 99999999999999999999\r\n\r\n' |
    "$HC" raw "$PORT" 5 >"$tmp/big2"
check content-length-overflow-413 "$(grep -q '^413 ' "$tmp/big2"; echo $?)" "$(cat "$tmp/big2")"
head -c 200000 /dev/zero | tr '\0' 'a' >"$tmp/200k"
s=$(req POST /v1/conversations -H "$J" -H 'Transfer-Encoding: chunked' --data-binary @"$tmp/200k")
check chunked-over-cap-413 "$([ "$s" = 413 ]; echo $?)" "$s $(cat "$tmp/body")"
head -c 3000000 /dev/zero | tr '\0' 'a' >"$tmp/3m"
s=$(req POST /v1/conversations -H "$J" -H 'Expect:' -H 'Transfer-Encoding: chunked' --data-binary @"$tmp/3m")
check chunked-3mib-answered-or-cut "$([ "$s" = 413 ] || [ "$s" = 000 ]; echo $?)" "$s"

# ---- JSON ----
awk 'BEGIN { for (i = 0; i < 100000; i++) printf "["; for (i = 0; i < 100000; i++) printf "]" }' >"$tmp/deep100k"
s=$(req POST /v1/conversations -H "$J" --data-binary @"$tmp/deep100k")
check json-nested-100000-413 "$([ "$s" = 413 ]; echo $?)" "$s $(cat "$tmp/body")"
awk 'BEGIN { printf "{\"text\":"; for (i = 0; i < 30000; i++) printf "["; for (i = 0; i < 30000; i++) printf "]"; printf "}" }' >"$tmp/deep30k"
s=$(msg @"$tmp/deep30k")
check json-nested-30000-400 "$([ "$s" = 400 ] && [ "$(code)" = too_deep ]; echo $?)" "$s $(cat "$tmp/body")"
awk 'BEGIN { printf "{\"a\":\"["; for (i = 0; i < 20000; i++) printf "["; printf "\",\"text\":\"hi\"}" }' >"$tmp/brackets-in-string"
s=$(msg @"$tmp/brackets-in-string")
check json-brackets-inside-strings-200 "$([ "$s" = 200 ]; echo $?)" "$s $(cat "$tmp/body")"
s=$(msg '{"text":"hello","text":"where is my refund"}')
check json-duplicate-keys-400 "$([ "$s" = 400 ] && [ "$(code)" = invalid_json ]; echo $?)" "$s $(cat "$tmp/body")"
s=$(msg '{"text":"hello","\u0074ext":"where is my refund"}')
check json-escaped-colliding-key-400 "$([ "$s" = 400 ] && [ "$(code)" = invalid_json ]; echo $?)" "$s $(cat "$tmp/body")"
awk 'BEGIN { printf "{\"text\":\"hello\""; for (i = 0; i < 5000; i++) printf ",\"k%d\":1", i; printf "}" }' >"$tmp/manykeys"
s=$(msg @"$tmp/manykeys")
check json-5000-keys-200 "$([ "$s" = 200 ]; echo $?)" "$s"
s=$(msg '{"text":"hi"} trailing')
check json-trailing-garbage-400 "$([ "$s" = 400 ] && [ "$(code)" = invalid_json ]; echo $?)" "$s $(cat "$tmp/body")"
s=$(msg '["text","hi"]')
check json-not-an-object-400 "$([ "$s" = 400 ]; echo $?)" "$s $(cat "$tmp/body")"
s=$(msg '{"text":12}')
check json-text-not-a-string-400 "$([ "$s" = 400 ]; echo $?)" "$s $(cat "$tmp/body")"

# ---- UTF-8 and NUL ----
# the bytes in octal: C0 AF, C0 80, E0 80 AF, F0 80 80 AF, ED A0 80, F4 90 80 80, FF, E9 80
for c in '\300\257:overlong-slash' '\300\200:overlong-nul' '\340\200\257:overlong-3' \
    '\360\200\200\257:overlong-4' '\355\240\200:surrogate' '\364\220\200\200:above-10ffff' \
    '\377:invalid-byte' '\351\200:truncated'; do
    oct=${c%%:*} name=${c#*:}
    { printf '{"text":"a'; printf "$oct"; printf 'b"}'; } >"$tmp/u8"
    s=$(msg @"$tmp/u8")
    check "utf8-$name-400" "$([ "$s" = 400 ] && [ "$(code)" = invalid_utf8 ]; echo $?)" "$s $(cat "$tmp/body")"
done
s=$(msg '{"text":"a\ud800b"}')
check utf8-escaped-lone-surrogate-400 "$([ "$s" = 400 ]; echo $?)" "$s $(cat "$tmp/body")"
printf '{"text":"a\000b"}' >"$tmp/nul"
s=$(msg @"$tmp/nul")
check nul-byte-raw-400 "$([ "$s" = 400 ]; echo $?)" "$s $(cat "$tmp/body")"
s=$(msg '{"text":"a\u0000b"}')
check nul-byte-escaped-400 "$([ "$s" = 400 ]; echo $?)" "$s $(cat "$tmp/body")"
s=$(req GET "/v1/conversations/$alpha_id/messages%00x" -H "$A")
check nul-in-path-404 "$([ "$s" = 404 ]; echo $?)" "$s"
# a token with %00 and more after it is not the token (a decoded NUL would cut it)
s=$(req GET "/v1/conversations/$alpha_id/events?token=${alpha_tok}%00x" -m 3)
check nul-in-query-token-403 "$([ "$s" = 403 ]; echo $?)" "$s"
s=$(msg '{"text":"退款什麼時候到賬 ＲＥＦＵＮＤ\u200b"}')
check utf8-valid-mixed-200 "$([ "$s" = 200 ] && [ "$(jq -r .reply.text "$tmp/body")" != null ]; echo $?)" "$s"

# ---- FTS5 syntax and regex bombs in messages: answered, never a 500 ----
n=0
bad=""
for t in '\"' '\"\"\"' '*' 'refund*' 'NEAR(refund invoice, 1)' '^refund' 'title: refund' 'refund AND' \
    'OR OR OR' 'NOT' '- refund' '(refund' ')' '{title body}: x' '\"refund\" NEAR/2 x' 'a:b:c' '+' \
    'col:\"x\" * ^ :' '退款 OR 发票 AND NOT' "'; DROP TABLE messages; --"; do
    s=$(msg "{\"text\":\"$t\"}")
    n=$((n + 1))
    [ "$s" = 200 ] || bad="$bad [$t]=$s"
done
check fts5-syntax-in-messages "$([ -z "$bad" ]; echo $?)" "of $n:$bad"
awk 'BEGIN { printf "{\"text\":\""; for (i = 0; i < 4000; i++) printf "a"; printf "!\"}" }' >"$tmp/bomb1"
awk 'BEGIN { printf "{\"text\":\""; for (i = 0; i < 580; i++) printf "refund "; printf "\"}" }' >"$tmp/bomb2"
awk 'BEGIN { printf "{\"text\":\""; for (i = 0; i < 680; i++) printf "退款"; printf "x\"}" }' >"$tmp/bomb3"
awk 'BEGIN { printf "{\"text\":\""; for (i = 0; i < 400; i++) printf "AB1234567"; printf "\"}" }' >"$tmp/bomb4"
bad=""
for f in bomb1 bomb2 bomb3 bomb4; do
    s=$(msg @"$tmp/$f")
    [ "$s" = 200 ] || bad="$bad $f=$s"
done
check regex-bomb-messages "$([ -z "$bad" ]; echo $?)" "$bad"
awk 'BEGIN { printf "{\"text\":\""; for (i = 0; i < 4097; i++) printf "a"; printf "\"}" }' >"$tmp/long"
s=$(msg @"$tmp/long")
check message-over-4096-413 "$([ "$s" = 413 ]; echo $?)" "$s $(cat "$tmp/body")"

# ---- static files: traversal ----
s=$(req GET /static/hello.txt)
check static-file-200 "$([ "$s" = 200 ] && grep -q 'hello from kefu' "$tmp/body"; echo $?)" "$s"
n=0
bad=""
for p in /static/../secret.txt /static/../../secret.txt /static/%2e%2e/secret.txt /static/%2E%2E/%2e%2e/secret.txt \
    /static/..%2fsecret.txt /static/..%2F..%2Fsecret.txt /static/%2e%2e%2f%2e%2e%2fsecret.txt \
    /static/..%5csecret.txt '/static/..\secret.txt' /static//etc/passwd /static/%2fetc%2fpasswd \
    /static/link.txt /static/root/etc/passwd /static/root/ /static/.hidden /static/./hello.txt \
    /static/hello.txt%00.png /static/%252e%252e/secret.txt /static/ /static/.. /demo/../../secret.txt \
    /console/%2e%2e/%2e%2e/secret.txt /widget.js/../secret.txt; do
    s=$(req GET "$p" --path-as-is)
    n=$((n + 1))
    if grep -q 'SECRET-OUTSIDE-WEB\|root:' "$tmp/body" || [ "$s" = 200 ]; then bad="$bad [$p]=$s"; fi
done
check static-traversal-$n-paths "$([ -z "$bad" ]; echo $?)" "$bad"
printf 'GET ../secret.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' | "$HC" raw "$PORT" 5 >"$tmp/rawpath"
check static-relative-request-target "$(! grep -q '^200' "$tmp/rawpath"; echo $?)" "$(cat "$tmp/rawpath")"

# ---- methods ----
bad=""
for m in BREW PROPFIND TRACE CONNECT PATCH DELETE PUT; do
    s=$(req "$m" /v1/conversations)
    case $s in 405 | 400 | 501) ;; *) bad="$bad $m=$s" ;; esac
done
check unknown-methods "$([ -z "$bad" ]; echo $?)" "$bad"
s=$(req DELETE /healthz)
check method-not-allowed-has-allow "$([ "$s" = 405 ] && [ "$(code)" = method_not_allowed ]; echo $?)" "$s"
printf 'G\001T /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' | "$HC" raw "$PORT" 5 >"$tmp/ctl"
check control-char-method "$(grep -qE '^(400|405|501) ' "$tmp/ctl"; echo $?)" "$(cat "$tmp/ctl")"

# ---- one conversation's token on another (IDOR) ----
msg '{"text":"ALPHA-PRIVATE-CANARY where is my refund"}' >/dev/null
Bt="Authorization: Bearer $beta_tok"
bad=""
s=$(req GET "/v1/conversations/$alpha_id/messages" -H "$Bt")
[ "$s" = 403 ] && ! grep -q CANARY "$tmp/body" || bad="$bad messages=$s"
s=$(req GET "/v1/conversations/$alpha_id/messages?after=0&wait=1" -H "$Bt")
[ "$s" = 403 ] && ! grep -q CANARY "$tmp/body" || bad="$bad long-poll=$s"
s=$(req GET "/v1/conversations/$alpha_id/events?token=$beta_tok" -m 3)
[ "$s" = 403 ] && ! grep -q CANARY "$tmp/body" || bad="$bad events=$s"
s=$(req GET "/v1/conversations/$alpha_id/events" -H "X-Kefu-Token: $beta_tok" -m 3)
[ "$s" = 403 ] && ! grep -q CANARY "$tmp/body" || bad="$bad events-header=$s"
s=$(req POST "/v1/conversations/$alpha_id/messages" -H "$J" -H "$Bt" --data '{"text":"injected"}')
[ "$s" = 403 ] || bad="$bad post=$s"
s=$(req POST "/v1/conversations/$alpha_id/feedback" -H "$J" -H "$Bt" --data '{"rating":1}')
[ "$s" = 403 ] || bad="$bad feedback=$s"
s=$(req GET "/v1/conversations/$alpha_id" -H "$Bt")
[ "$s" = 401 ] || [ "$s" = 403 ] && ! grep -q CANARY "$tmp/body" || bad="$bad context=$s"
s=$(req GET "/v1/conversations/$alpha_id/messages" -H "Authorization: Bearer ${alpha_tok}x")
[ "$s" = 403 ] || [ "$s" = 401 ] || bad="$bad altered=$s"
s=$(req GET "/v1/conversations/nonexistent-conv/messages" -H "$A")
[ "$s" = 404 ] || [ "$s" = 403 ] || bad="$bad unknown-conv=$s"
s=$(req GET "/v1/conversations/$alpha_id/messages" -H "$A")
grep -q CANARY "$tmp/body" && [ "$s" = 200 ] || bad="$bad own-token=$s"
s=$(req GET "/v1/conversations/$alpha_id/messages" -H "$Bt")
check token-swap-idor "$([ -z "$bad" ]; echo $?)" "$bad"
s=$(req GET "/v1/queue" -H "$A")
check customer-token-on-agent-api "$([ "$s" = 401 ] || [ "$s" = 403 ]; echo $?)" "$s"

# ---- CORS: only https://shop.example is ever allowed ----
s=$(curl -s -m 5 -D "$tmp/h" -o /dev/null -w '%{http_code}' -H 'Origin: https://shop.example' "$URL/healthz")
check cors-allowed-origin-reflected "$(grep -qi '^access-control-allow-origin: https://shop.example' "$tmp/h"; echo $?)" \
    "$(cat "$tmp/h")"
n=0
bad=""
for o in null https://shop.example.evil.com https://evil.com https://shop.example.evil http://shop.example \
    https://shop.example:8443 HTTPS://SHOP.EXAMPLE 'https://shop.example ' https://shop.example/ \
    https://evilshop.example https://xshop.example 'https://shop.example,https://evil.com' \
    'https://shop.example%00.evil.com' ws://shop.example https://shop.exampl '*' file:// \
    'https://evil.com#https://shop.example'; do
    n=$((n + 1))
    curl -s -m 5 -D "$tmp/h" -o /dev/null -H "Origin: $o" "$URL/healthz"
    grep -qi '^access-control-allow' "$tmp/h" && bad="$bad [$o]=get"
    s=$(curl -s -m 5 -D "$tmp/h" -o /dev/null -w '%{http_code}' -X OPTIONS -H "Origin: $o" \
        -H 'Access-Control-Request-Method: POST' "$URL/v1/conversations")
    { grep -qi '^access-control-allow' "$tmp/h" || [ "$s" != 403 ]; } && bad="$bad [$o]=preflight:$s"
    s=$(curl -s -m 5 -D "$tmp/h" -o /dev/null -w '%{http_code}' -H "Origin: $o" -H "$A" \
        "$URL/v1/conversations/$alpha_id/messages")
    grep -qi '^access-control-allow' "$tmp/h" && bad="$bad [$o]=authed"
done
check cors-$n-foreign-origins-not-reflected "$([ -z "$bad" ]; echo $?)" "$bad"

# the server is still the one we started
check server-survived "$(kill -0 "$pid" 2>/dev/null; echo $?)" "the server exited: $(tail -5 "$tmp/log")"
