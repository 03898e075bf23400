#!/bin/sh
# webhook.sh — the webhooks end to end: kefu serve against real receivers on 127.0.0.1
# (tests/webhook_receiver.js, node's own http and https). What must hold: a conversation's
# five events (handoff, claim, agent_message, resolve, feedback) reach an https receiver
# whose certificate comes from a private CA made here with openssl, verified through
# --webhook-ca, signed, in order, each with its own X-Kefu-Event-Id; a second URL gets only
# the events its --webhook-events names; without the CA nothing is delivered and the log
# says why; events made while the receiver is down, then kill -9 of kefu (twice: before
# delivery, and with a delivery on the wire) are all delivered after the restarts, each id
# at least once and every id of the store; a receiver that stays down turns events dead
# after the attempts, `kefu webhook list` shows them and `kefu webhook replay` sends them.
# Prints "ok NAME" / "not ok NAME". Servers are stopped by their pid.
set -u
BUILD="${BUILD:-build}"
KEFU="${KEFU:-$BUILD/kefu}"
tmp=$(mktemp -d)
pid=""
rpids=""
cleanup() {
    [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null
    for p in $rpids; do kill "$p" 2>/dev/null; done
    [ -n "${KEEP:-}" ] && echo "kept $tmp" || rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

. tests/lib.sh

if ! command -v node >/dev/null 2>&1 || ! command -v openssl >/dev/null 2>&1; then
    no webhook-tools "node and openssl are needed"
    exit 0
fi
mkdir -p "$tmp/rules" "$tmp/corpus"
cp rules/*.rules "$tmp/rules/"
export KEFU_AGENT_TOKENS="alice:tok-alice-0123456789" KEFU_WEBHOOK_SECRET="whsec-0123456789"
AL="Authorization: Bearer tok-alice-0123456789"

# a private CA and a certificate for 127.0.0.1 signed by it
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$tmp/ca.key" -out "$tmp/ca.pem" -days 2 \
    -subj "/CN=kefu test CA" >/dev/null 2>&1
openssl req -newkey rsa:2048 -nodes -keyout "$tmp/srv.key" -out "$tmp/srv.csr" -subj "/CN=127.0.0.1" \
    >/dev/null 2>&1
printf 'subjectAltName=IP:127.0.0.1\n' >"$tmp/ext"
openssl x509 -req -in "$tmp/srv.csr" -CA "$tmp/ca.pem" -CAkey "$tmp/ca.key" -CAcreateserial \
    -out "$tmp/srv.pem" -days 2 -extfile "$tmp/ext" >/dev/null 2>&1
[ -s "$tmp/srv.pem" ] || { no webhook-ca "openssl could not make the certificates"; exit 0; }

# receiver NAME ARGS...: starts one, sets rport (and rpid); LOG is $tmp/NAME.log
receiver() {
    _n=$1
    shift
    : >>"$tmp/$_n.log"
    : >"$tmp/$_n.out"
    node tests/webhook_receiver.js "$tmp/$_n.log" --secret "$KEFU_WEBHOOK_SECRET" "$@" >"$tmp/$_n.out" 2>&1 &
    rpid=$!
    rpids="$rpids $rpid"
    _i=0
    while [ $_i -lt 200 ] && ! grep -q '^listening' "$tmp/$_n.out"; do sleep 0.05; _i=$((_i + 1)); done
    rport=$(sed -n 's/^listening //p' "$tmp/$_n.out")
}
# start DIR ARGS...: kefu serve on DIR with quick retries
start() {
    _d=$1
    shift
    serve "$tmp/out" "$tmp/log" --data "$_d" --rules "$tmp/rules" --corpus "$tmp/corpus" --rate-limit 0 \
        --webhook-backoff 0.1 "$@"
}
# post PATH BODY [HEADER]: the status; the body in $tmp/b
post() {
    curl -s -m 10 -o "$tmp/b" -w '%{http_code}' -X POST -H 'Content-Type: application/json' ${3:+-H "$3"} \
        --data-binary "$2" "$URL$1"
}
# journey: one conversation through its five events; sets C
journey() {
    post /v1/conversations '{"channel":"web","customer":{"id":"'"$1"'"}}' >/dev/null
    C=$(jq -r .id "$tmp/b")
    _t="Authorization: Bearer $(jq -r .token "$tmp/b")"
    post "/v1/conversations/$C/messages" '{"text":"我要转人工"}' "$_t" >/dev/null
    post "/v1/conversations/$C/claim" '' "$AL" >/dev/null
    post "/v1/conversations/$C/agent-messages" '{"text":"Hi, Alice here."}' "$AL" >/dev/null
    post "/v1/conversations/$C/resolve" '' "$AL" >/dev/null
    post "/v1/conversations/$C/feedback" '{"rating":5}' "$_t" >/dev/null
}
# wait_lines LOG N [S]: until LOG has N lines (at most S seconds, default 10)
wait_lines() {
    _i=0
    while [ $_i -lt $((${3:-10} * 20)) ] && [ "$(wc -l <"$1")" -lt "$2" ]; do sleep 0.05; _i=$((_i + 1)); done
}
# the distinct event ids of conversation $2 in LOG $1, in the order they first came
ids_of() { jq -r --arg c "$2" 'select((.body | fromjson).conversation == $c) | .id' "$1" | awk '!seen[$0]++'; }
types_of() {
    jq -r --arg c "$2" 'select((.body | fromjson).conversation == $c) | "\(.id) \(.event)"' "$1" |
        awk '!seen[$1]++ { print $2 }' | tr '\n' ' '
}
stop() { kill "$pid"; wait "$pid" 2>/dev/null; pid=""; }
ALL="handoff claim agent_message resolve feedback "

# 1. https with the private CA, and a second URL that wants two of the five
receiver tls --tls "$tmp/srv.key" "$tmp/srv.pem"
P1=$rport
receiver plain
P2=$rport
if start "$tmp/d1" --webhook "https://127.0.0.1:$P1/hook" --webhook-ca "$tmp/ca.pem" \
    --webhook "http://127.0.0.1:$P2/only" --webhook-events handoff,resolve; then
    journey w1
    C1=$C
    wait_lines "$tmp/tls.log" 5
    wait_lines "$tmp/plain.log" 2
    got=$(types_of "$tmp/tls.log" "$C1")
    check webhook-https-five-in-order "$([ "$got" = "$ALL" ]; echo $?)" "got '$got'; $(tail -3 "$tmp/log")"
    n=$(jq -r .id "$tmp/tls.log" | sort -u | grep -c '^ev_[0-9a-f]\{32\}$')
    bad=$(jq -r 'select(.sig_ok != true or .path != "/hook") | .id' "$tmp/tls.log" | wc -l)
    check webhook-ids-and-signatures "$([ "$n" = 5 ] && [ "$bad" = 0 ]; echo $?)" "$n ids, $bad bad"
    # the body says what happened: the handoff carries the packet, the claim its agent
    h=$(jq -r 'select(.event == "handoff") | .body' "$tmp/tls.log" | head -1)
    printf "%s\n" "$h" | jq -e --arg c "$C1" '.conversation == $c and .event == "handoff" and .reason == "requested"
        and .customer.id == "w1" and (.transcript | length) >= 2 and (.id | startswith("ev_"))' >/dev/null
    check webhook-handoff-body $? "$h"
    jq -r 'select(.event == "claim") | .body' "$tmp/tls.log" | jq -e '.agent == "alice"' >/dev/null
    check webhook-claim-body $?
    got=$(types_of "$tmp/plain.log" "$C1")
    check webhook-events-filter "$([ "$got" = "handoff resolve " ]; echo $?)" "got '$got'"
    curl -s "$URL/metrics" | grep -q '^kefu_webhook_events_total{result="delivered"} 7$'
    check webhook-metrics $? "$(curl -s "$URL/metrics" | grep webhook)"
    stop
else
    no webhook-https-start "$(cat "$tmp/log")"
fi

# 2. the same https receiver without --webhook-ca: refused, nothing delivered, a clear log line
before=$(wc -l <"$tmp/tls.log")
if start "$tmp/d2" --webhook "https://127.0.0.1:$P1/hook" --webhook-attempts 2; then
    journey w2
    _i=0
    while [ $_i -lt 150 ] && [ "$("$KEFU" webhook list --data "$tmp/d2" --state dead | wc -l)" -lt 5 ]; do
        sleep 0.1
        _i=$((_i + 1))
    done
    after=$(wc -l <"$tmp/tls.log")
    grep -q 'certificate' "$tmp/log"
    check webhook-wrong-ca-refused "$([ $? -eq 0 ] && [ "$after" = "$before" ]; echo $?)" \
        "$before → $after lines; $(grep webhook "$tmp/log" | head -2)"
    stop
    "$KEFU" webhook list --data "$tmp/d2" --state dead >"$tmp/dead2"
    check webhook-wrong-ca-dead "$([ "$(grep -c ' dead 2 ' "$tmp/dead2")" = 5 ] && grep -q certificate "$tmp/dead2"; echo $?)" \
        "$(cat "$tmp/dead2")"
else
    no webhook-wrong-ca-start "$(cat "$tmp/log")"
fi

# 3. the receiver down while events are made; kill -9; it comes up slow; kill -9 with a
# delivery on the wire; restart: every event of the store delivered, in order
receiver probe
P3=$rport
kill "$rpid"
wait "$rpid" 2>/dev/null
rm -f "$tmp/probe.log"
if start "$tmp/d3" --webhook "http://127.0.0.1:$P3/k" --webhook-attempts 100; then
    journey w3
    C3=$C
    sleep 0.5
    kill -9 "$pid"
    wait "$pid" 2>/dev/null
    receiver slow --port "$P3" --delay 3000
    start "$tmp/d3" --webhook "http://127.0.0.1:$P3/k" --webhook-attempts 100
    wait_lines "$tmp/slow.log" 1 10
    kill -9 "$pid" # the first event's answer has not come back yet
    wait "$pid" 2>/dev/null
    kill "$rpid"
    wait "$rpid" 2>/dev/null
    receiver slow --port "$P3"
    start "$tmp/d3" --webhook "http://127.0.0.1:$P3/k" --webhook-attempts 100
    for _ in 1 2 3 4 5 6 7 8 9 10; do
        [ "$(ids_of "$tmp/slow.log" "$C3" | wc -l)" -ge 5 ] && break
        sleep 0.5
    done
    stop
    got=$(types_of "$tmp/slow.log" "$C3")
    stored=$(sqlite3 "$tmp/d3/kefu.db" "SELECT event FROM outbox ORDER BY id" | tr '\n' ' ')
    seen=$(ids_of "$tmp/slow.log" "$C3" | tr '\n' ' ')
    open=$(sqlite3 "$tmp/d3/kefu.db" "SELECT count(*) FROM outbox WHERE state <> 1")
    check webhook-kill9-all-delivered "$([ "$got" = "$ALL" ] && [ "$seen" = "$stored" ] && [ "$open" = 0 ]; echo $?)" \
        "got '$got'; seen '$seen'; stored '$stored'; open $open"
    first=$(ids_of "$tmp/slow.log" "$C3" | head -1)
    tries=$(jq -r --arg i "$first" 'select(.id == $i) | .attempt' "$tmp/slow.log" | wc -l)
    check webhook-kill9-resent "$([ "$tries" -ge 2 ]; echo $?)" "the first event arrived $tries times"
else
    no webhook-kill9-start "$(cat "$tmp/log")"
fi

# 4. a receiver that stays down: retries, then dead; list shows them; replay sends them in order
if start "$tmp/d4" --webhook "http://127.0.0.1:$P3/dl" --webhook-attempts 3; then
    kill "$rpid" # the receiver of 3 goes away
    wait "$rpid" 2>/dev/null
    journey w4
    C4=$C
    _i=0
    while [ $_i -lt 100 ] && [ "$("$KEFU" webhook list --data "$tmp/d4" --state dead | wc -l)" -lt 5 ]; do
        sleep 0.1
        _i=$((_i + 1))
    done
    "$KEFU" webhook list --data "$tmp/d4" --json >"$tmp/l4"
    jq -e 'length == 5 and all(.[]; .state == "dead" and .attempts == 3 and .error != "")' "$tmp/l4" >/dev/null
    check webhook-dead-after-attempts $? "$(cat "$tmp/l4" | head -20)"
    curl -s "$URL/metrics" | grep -q '^kefu_webhook_events_total{result="dead"} 5$'
    check webhook-dead-metric $?
    receiver back --port "$P3"
    out=$("$KEFU" webhook replay --data "$tmp/d4" --all)
    wait_lines "$tmp/back.log" 5
    got=$(types_of "$tmp/back.log" "$C4")
    check webhook-replay "$([ "$out" = "replay: 5 dead events pending again" ] && [ "$got" = "$ALL" ]; echo $?)" \
        "$out; got '$got'"
    "$KEFU" webhook replay --data "$tmp/d4" 99999 >/dev/null 2>"$tmp/e"
    check webhook-replay-unknown "$([ $? -eq 1 ] && grep -q 'no dead webhook event 99999' "$tmp/e"; echo $?)" "$(cat "$tmp/e")"
    stop
else
    no webhook-dead-start "$(cat "$tmp/log")"
fi

# 5. bad use: one plain line, exit 2
"$KEFU" serve --webhook ftp://x/ >/dev/null 2>"$tmp/e"
check webhook-bad-url "$([ $? -eq 2 ] && grep -q 'http:// or https://' "$tmp/e"; echo $?)" "$(cat "$tmp/e")"
"$KEFU" serve --webhook http://127.0.0.1:1/ --webhook-events handoff,typo >/dev/null 2>"$tmp/e"
check webhook-bad-events "$([ $? -eq 2 ] && grep -q "not 'handoff,typo'" "$tmp/e"; echo $?)" "$(cat "$tmp/e")"
"$KEFU" webhook replay --data "$tmp/d4" >/dev/null 2>"$tmp/e"
check webhook-replay-usage "$([ $? -eq 2 ] && [ "$(wc -l <"$tmp/e")" = 1 ]; echo $?)" "$(cat "$tmp/e")"
