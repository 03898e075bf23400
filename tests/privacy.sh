#!/bin/sh
# privacy.sh — erasing a customer leaves no byte of their text anywhere,
# and personal data is masked in logs (always, by default) and in stored
# transcripts (when asked). Canary strings go into messages, a handoff
# packet, an agent reply, a rating comment and the customer's name; after
# POST /v1/admin/erase (and kefu erase on a stopped server) the database,
# its -wal and -shm files, the articles database and the captured log are
# searched for the canary bytes, while a second customer's marker must
# still be found (the search itself works). Prints "ok NAME" /
# "not ok NAME". Only 127.0.0.1; servers are stopped by their pid.
set -u
BUILD="${BUILD:-build}"
KEFU="${KEFU:-$BUILD/kefu}"
tmp=$(mktemp -d)
pid=""
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null
    [ -n "${KEEP:-}" ] && echo "kept $tmp" || rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

. tests/lib.sh

mkdir -p "$tmp/rules" "$tmp/corpus"
cp rules/*.rules "$tmp/rules/"
AD="Authorization: Bearer adm-privacy-0123456789"
AG="Authorization: Bearer tok-agent-0123456789"

# start DIR [FLAGS...]: one server on DIR, log in DIR.log
start() {
    d=$1
    shift
    KEFU_AGENT_TOKENS="ann:tok-agent-0123456789" KEFU_ADMIN_TOKEN="adm-privacy-0123456789" &&
        export KEFU_AGENT_TOKENS KEFU_ADMIN_TOKEN
    serve "$tmp/out" "$d.log" --data "$d" --rules "$tmp/rules" --corpus "$tmp/corpus" --rate-limit 0 "$@"
}
stop() { kill "$pid"; wait "$pid" 2>/dev/null; pid=""; }
post() {
    curl -s -m 10 -o "$tmp/b" -w '%{http_code}' -X POST -H 'Content-Type: application/json' ${3:+-H "$3"} \
        --data-binary "$2" "$URL$1"
}
get() { curl -s -m 10 -o "$tmp/b" -w '%{http_code}' ${2:+-H "$2"} "$URL$1"; }
jb() { jq -r "$1" "$tmp/b" 2>/dev/null; }
# files FILE...: the ones that exist
files() { for f in "$@"; do [ -f "$f" ] && printf '%s\n' "$f"; done; }
# found STRING DIR: 0 if the bytes are in the database, WAL, shm, articles db or log
found() {
    files "$2/kefu.db" "$2/kefu.db-wal" "$2/kefu.db-shm" "$2/kb.db" "$2.log" | while read -r f; do
        grep -a -q -F -- "$1" "$f" && echo "$f"
    done | grep -q .
}

out=$("$KEFU" serve --redact-store phones --data "$tmp/never" 2>&1)
st=$?
out2=$(KEFU_LOG_REDACT=bogus "$KEFU" serve --data "$tmp/never" 2>&1)
st2=$?
check privacy-flag-errors "$([ $st -eq 2 ] && [ $st2 -eq 2 ] && echo "$out" | grep -q "^kefu: --redact-store takes all, off or a list" &&
    echo "$out2" | grep -q "^kefu: KEFU_LOG_REDACT takes" && [ ! -e "$tmp/never" ]; echo $?)" "$st $out / $st2 $out2"

D="$tmp/data"
if ! start "$D"; then
    no privacy-start "$(cat "$D.log")"
    exit 0
fi
CAN=ZQXCANARY7731
KEEP_M=KEEPMARKER5521
convs=""
for k in 1 2; do
    post /v1/conversations "{\"channel\":\"web\",\"customer\":{\"id\":\"cust-$CAN\",\"name\":\"Name$CAN\"}}" >/dev/null
    C=$(jb .id) T=$(jb .token)
    convs="$convs $C"
    post "/v1/conversations/$C/messages" "{\"text\":\"where is my order $CAN-$k\"}" "Authorization: Bearer $T" >/dev/null
    post "/v1/conversations/$C/messages" "{\"text\":\"转人工 $CAN\"}" "Authorization: Bearer $T" >/dev/null
done
s1=$(post "/v1/conversations/$C/claim" '' "$AG")
s2=$(post "/v1/conversations/$C/agent-messages" "{\"text\":\"agent says $CAN\"}" "$AG")
s3=$(post "/v1/conversations/$C/resolve" '' "$AG")
s4=$(post "/v1/conversations/$C/feedback" "{\"rating\":4,\"comment\":\"comment $CAN\"}" "Authorization: Bearer $T")
post /v1/conversations "{\"channel\":\"web\",\"customer\":{\"id\":\"keep-me\"}}" >/dev/null
K=$(jb .id) KT=$(jb .token)
s5=$(post "/v1/conversations/$K/messages" "{\"text\":\"hello $KEEP_M\"}" "Authorization: Bearer $KT")
check privacy-setup "$([ "$s1$s2$s3$s4$s5" = 200200200200200 ] && found "$CAN" "$D"; echo $?)" "$s1 $s2 $s3 $s4 $s5"

# logs: a path with a phone number and an e-mail address is logged masked
get "/static/13812345678/li.wei@example.com" >/dev/null
get "/v1/conversations/x/messages?after=0" >/dev/null
sleep 0.2
check privacy-log-redacted "$(grep -q '\[phone\]/\[email\]' "$D.log" && ! grep -q -e 13812345678 -e li.wei@example.com "$D.log"; echo $?)" \
    "$(grep static "$D.log" | head -2)"

s=$(post /v1/admin/erase "{\"customer\":\"cust-$CAN\"}" "$AD")
check privacy-erase-endpoint "$([ "$s" = 200 ] && [ "$(jb .conversations)" = 2 ] && [ "$(jb .messages)" -ge 8 ]; echo $?)" \
    "$s $(cat "$tmp/b")"
s=$(post /v1/admin/erase "{\"customer\":\"cust-$CAN\"}")
s2=$(post /v1/admin/erase '{"customer":""}' "$AD")
check privacy-erase-errors "$([ "$s" = 401 ] && [ "$s2" = 400 ]; echo $?)" "$s $s2"
# while the server still runs: nothing of theirs in any file, the other customer intact
check privacy-canary-gone "$(! found "$CAN" "$D"; echo $?)" \
    "$(for f in "$D"/kefu.db* "$D.log"; do grep -a -c -F "$CAN" "$f" | sed "s|^|$f: |"; done)"
check privacy-others-kept "$(found "$KEEP_M" "$D"; echo $?)"
T1=$(echo "$convs" | awk '{print $1}')
s=$(get "/v1/conversations/$T1/messages?after=0" "Authorization: Bearer $T")
s2=$(get /v1/queue "$AG")
q=$(jb '.conversations | length')
s3=$(post /v1/admin/erase "{\"customer\":\"cust-$CAN\"}" "$AD")
check privacy-erased-api "$([ "$s" = 404 ] && [ "$s2" = 200 ] && [ "$q" = 0 ] && [ "$s3" = 404 ]; echo $?)" \
    "$s $s2 queue=$q $s3"
stop

# the command line on the stopped server's data
out=$("$KEFU" erase --data "$D" keep-me 2>&1)
st=$?
check privacy-erase-cli "$([ $st -eq 0 ] && echo "$out" | grep -q "1 conversations, 3 messages" && ! found "$KEEP_M" "$D" &&
    [ "$(sqlite3 "$D/kefu.db" 'PRAGMA integrity_check')" = ok ]; echo $?)" "$st $out"
out=$("$KEFU" erase --data "$D" nobody 2>&1)
st=$?
check privacy-erase-cli-unknown "$([ $st -eq 1 ] && [ "$(echo "$out" | wc -l)" -eq 1 ] && echo "$out" | grep -q "no customer 'nobody'"; echo $?)" \
    "$st $out"
out=$("$KEFU" erase --data "$tmp/none" x 2>&1)
st=$?
check privacy-erase-cli-no-data "$([ $st -ne 0 ] && [ "$(echo "$out" | wc -l)" -eq 1 ]; echo $?)" "$st $out"

# stored transcripts: --redact-store all masks before anything is stored
D2="$tmp/data2"
if start "$D2" --redact-store all; then
    post /v1/conversations '{"channel":"web","customer":{"id":"r1"}}' >/dev/null
    C=$(jb .id) T=$(jb .token)
    s=$(post "/v1/conversations/$C/messages" \
        '{"text":"order KF12345678, phone 13812345678, mail li.wei@example.com, card 4111 1111 1111 1111, id 11010519491231002X, on 2026-12-02 for ¥1,299.00"}' \
        "Authorization: Bearer $T")
    get "/v1/conversations/$C/messages?after=0" "Authorization: Bearer $T" >/dev/null
    txt=$(jb '[.messages[] | select(.from == "customer")][0].text')
    want="order KF12345678, phone [phone], mail [email], card [card], id [id], on 2026-12-02 for ¥1,299.00"
    check privacy-store-redacted "$([ "$s" = 200 ] && [ "$txt" = "$want" ]; echo $?)" "$s $txt"
    check privacy-store-no-raw "$(! found 13812345678 "$D2" && ! found "4111 1111" "$D2" && ! found li.wei@ "$D2" &&
        ! found 11010519491231002X "$D2"; echo $?)"
    stop
else
    no privacy-store-redacted "$(cat "$D2.log")"
fi
