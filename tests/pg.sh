#!/bin/sh
# pg.sh — the PostgreSQL store against a real server on loopback: starts
# a throwaway PostgreSQL (tests/pg_lib.sh: initdb in a temp dir as the
# unprivileged postgres user, a port and socket dir of its own), runs the
# store's unit cases on it (test_store with KEFU_TEST_PG), then two
# `kefu serve --store postgresql://...` nodes on one database: a
# conversation carried across both, idempotent retries across nodes,
# 503 store_unavailable while PostgreSQL is stopped and recovery without
# a restart, the queue and the claim race across nodes, push across nodes
# within 1 s, nginx round-robin in front of both (an nginx.conf of our own
# in the temp dir: the journey through it, then SIGKILL of a node under 64
# writers behind it: every acknowledged message stored exactly once, the
# other node carries on), PostgreSQL stopped and restarted under load,
# kefu store copy (with the outbox and agent accounts), a newer schema refused, webhooks sent
# by both nodes from the one outbox (every event received exactly once), agent accounts made,
# disabled and rotated on one node and refused or accepted on both at once. Prints "ok NAME" / "not ok NAME";
# when PostgreSQL is not installed it says so loudly and fails
# (scripts/deps.sh installs it). Servers are stopped by their own pids.
set -u
BUILD="${BUILD:-build}"
KEFU="${KEFU:-$BUILD/kefu}"
CLIENT="$BUILD/tests/load_client"
tmp=$(mktemp -d /tmp/kefu-pg-XXXXXX)
pa=""
pb=""
cpid=""
. tests/pg_lib.sh
NG_PID=""
cleanup() {
    [ -n "$cpid" ] && kill "$cpid" 2>/dev/null
    [ -n "$NG_PID" ] && kill "$NG_PID" 2>/dev/null && wait "$NG_PID" 2>/dev/null
    [ -n "$pa" ] && kill -9 "$pa" 2>/dev/null
    [ -n "$pb" ] && kill -9 "$pb" 2>/dev/null
    pg_stop
    [ -n "${KEEP:-}" ] && echo "kept $tmp" || rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

ok() { echo "ok $1"; }
no() { echo "not ok $1"; [ $# -gt 1 ] && printf '  %s\n' "$2"; }
check() { if [ "$2" -eq 0 ]; then ok "$1"; else no "$1" "${3:-}"; fi; }

chmod 711 "$tmp" # the server's user reaches its data directory inside
pg_start "$tmp/pg"
case $? in
0) ;;
1)
    echo "#####################################################################"
    echo "# FAILED: the PostgreSQL store cannot be tested: $PG_SKIP"
    echo "#####################################################################"
    no pg-server-installed "$PG_SKIP"
    exit 0
    ;;
*)
    no pg-server-start "$PG_ERR"
    exit 0
    ;;
esac
ok pg-server-start

# 1. the store's cases on PostgreSQL, one line per cmocka test
KEFU_TEST_PG="$PG_URI" "$BUILD/tests/test_store" >"$tmp/unit" 2>&1
st=$?
sed -n 's/^\[       OK \] \(.*\)$/ok pg-store-\1/p' "$tmp/unit"
sed -n 's/^\[  FAILED  \] \(test_[a-z0-9_]*\)$/\1/p' "$tmp/unit" | sort -u | while read -r t; do
    no "pg-store-$t" "$(grep -B3 "FAILED  \] $t" "$tmp/unit" | head -4 | tr '\n' ' ')"
done
[ "$st" -ne 0 ] && ! grep -q '^\[  FAILED  \]' "$tmp/unit" && no pg-store-unit "exited $st: $(tail -3 "$tmp/unit")"

# 2. two nodes on one database
pg_sql postgres "CREATE DATABASE kefu" >/dev/null
STORE="$PG_URI/kefu"
mkdir -p "$tmp/rules" "$tmp/a" "$tmp/b"
cp rules/*.rules "$tmp/rules/"
# an A/B-tested reply (schema 7's answers; store copy and the reports compare them)
printf 'intent gift\n  match giftcardtrial\n  variant plain 1\n  variant warm 1\n  reply ~plain Sold at the checkout.\n  reply ~warm Happy to help: at the checkout.\n' >"$tmp/rules/ab.rules"
[ -d corpus ] && cp -r corpus "$tmp/corpus" || mkdir -p "$tmp/corpus"

AGENTS="alice:tok-alice-0123456789:*:20,bob:tok-bob-0123456789ab:*:20"
AL="tok-alice-0123456789"
BO="tok-bob-0123456789ab"

# node NAME [ARGS...]: starts a node on $STORE in the background (ARGS added to kefu serve's);
# sets NODE_PID and NODE_URL
node() {
    _nn=$1
    shift
    : >"$tmp/$_nn.out"
    (KEFU_STORE="$STORE" KEFU_AGENT_TOKENS="$AGENTS" exec "$KEFU" serve --listen 127.0.0.1:0 --data "$tmp/$_nn" --rules "$tmp/rules" \
        --corpus "$tmp/corpus" --rate-limit 0 "$@" >"$tmp/$_nn.out" 2>>"$tmp/$_nn.log") &
    NODE_PID=$!
    i=0
    while [ $i -lt 300 ] && kill -0 "$NODE_PID" 2>/dev/null && ! grep -q "serving on" "$tmp/$_nn.out"; do
        sleep 0.05
        i=$((i + 1))
    done
    NODE_URL=$(sed -n 's/^kefu: serving on //p' "$tmp/$_nn.out")
    [ -n "$NODE_URL" ]
}

node a && pa=$NODE_PID && A=$NODE_URL
node b && pb=$NODE_PID && B=$NODE_URL
if [ -z "$pa" ] || [ -z "$pb" ] || [ -z "${A:-}" ] || [ -z "${B:-}" ]; then
    no pg-nodes-start "$(tail -3 "$tmp/a.log" "$tmp/b.log")"
    exit 0
fi
ok pg-nodes-start

# post URL PATH BODY [TOKEN]: status on line 1, body after
post() {
    curl -s -o "$tmp/body" -w '%{http_code}\n' -X POST -H 'Content-Type: application/json' \
        ${4:+-H "Authorization: Bearer $4"} -d "$3" "$1$2"
    cat "$tmp/body"
}

r=$(post "$A" /v1/conversations '{"channel":"web","customer":{"id":"pg-cust","name":"Ann"},"locale":"en"}')
conv=$(printf '%s' "$r" | sed 1d | jq -r .id)
tok=$(printf '%s' "$r" | sed 1d | jq -r .token)
check pg-create-on-a "$([ "$(printf '%s' "$r" | head -1)" = 201 ] && [ -n "$conv" ]; echo $?)" "$r"
r=$(post "$B" "/v1/conversations/$conv/messages" '{"text":"where is my refund","client_id":"pg-1"}' "$tok")
seq_b=$(printf '%s' "$r" | sed 1d | jq -r .seq)
check pg-message-on-b "$([ "$(printf '%s' "$r" | head -1)" = 200 ] &&
    printf '%s' "$r" | sed 1d | jq -e '.reply.source == "rule"' >/dev/null; echo $?)" "$r"
r2=$(post "$A" "/v1/conversations/$conv/messages" '{"text":"where is my refund","client_id":"pg-1"}' "$tok")
check pg-retry-on-other-node "$([ "$(printf '%s' "$r2" | head -1)" = 200 ] &&
    [ "$(printf '%s' "$r2" | sed 1d | jq -r .seq)" = "$seq_b" ] &&
    [ "$(pg_sql kefu "SELECT count(*) FROM messages WHERE client_id = 'pg-1'")" = 1 ]; echo $?)" "$r2"
r=$(post "$A" "/v1/conversations/$conv/messages" '{"text":"KF12345678"}' "$tok")
msgs=$(curl -s -H "Authorization: Bearer $tok" "$B/v1/conversations/$conv/messages?after=0")
check pg-transcript-on-b "$([ "$(printf '%s' "$msgs" | jq '.messages | length')" -ge 5 ] &&
    printf '%s' "$msgs" | jq -e '[.messages[].text] | index("KF12345678") != null' >/dev/null; echo $?)" "$msgs"

# 3. PostgreSQL stopped: 503 store_unavailable, never a false acknowledgement; back without a restart
before=$(pg_sql kefu "SELECT count(*) FROM messages")
pg_stop
r=$(post "$B" "/v1/conversations/$conv/messages" '{"text":"are you there","client_id":"pg-down"}' "$tok")
check pg-down-503 "$([ "$(printf '%s' "$r" | head -1)" = 503 ] &&
    printf '%s' "$r" | sed 1d | jq -e '.error.code == "store_unavailable"' >/dev/null; echo $?)" "$r"
r=$(post "$A" /v1/conversations '{"channel":"web","customer":{"id":"pg-cust2"}}')
check pg-down-503-create "$([ "$(printf '%s' "$r" | head -1)" = 503 ]; echo $?)" "$r"
h=$(curl -s -o /dev/null -w '%{http_code}' "$A/healthz")
check pg-down-node-alive "$([ "$h" = 200 ] || [ "$h" = 503 ]; echo $?)" "healthz $h"
pg_restart
check pg-restart "$([ -n "$PG_PID" ]; echo $?)" "$(tail -3 "$tmp/pg/log")"
r=$(post "$B" "/v1/conversations/$conv/messages" '{"text":"are you there","client_id":"pg-down"}' "$tok")
check pg-reconnect "$([ "$(printf '%s' "$r" | head -1)" = 200 ] &&
    [ "$(pg_sql kefu "SELECT count(*) FROM messages WHERE client_id = 'pg-down'")" = 1 ] &&
    [ "$(pg_sql kefu "SELECT count(*) FROM messages")" -gt "$before" ]; echo $?)" "$r"

# 3b. the queue and claims are the database's: a handoff on one node is in the other's queue, and
# two agents on two nodes racing for one conversation: exactly one wins, the other gets 409
# queued URL: a new conversation created on URL and handed off there; prints its id
queued() {
    r=$(post "$1" /v1/conversations "{\"channel\":\"web\",\"customer\":{\"id\":\"pg-q-$2\"}}" | sed 1d)
    qc=$(printf '%s' "$r" | jq -r .id)
    post "$1" "/v1/conversations/$qc/messages" '{"text":"I want to talk to a human agent"}' \
        "$(printf '%s' "$r" | jq -r .token)" >"$tmp/q.$2"
    printf '%s' "$qc"
}
q1=$(queued "$A" 1)
ql=$(curl -s -H "Authorization: Bearer $AL" "$B/v1/queue")
check pg-queue-across-nodes "$(sed 1d "$tmp/q.1" | jq -e '.state == "queued"' >/dev/null &&
    printf '%s' "$ql" | jq -e --arg c "$q1" '.conversations | map(.id) | index($c) != null' >/dev/null; echo $?)" \
    "$(cat "$tmp/q.1") / $ql"
wins=0
losses=0
other=""
k=0
while [ $k -lt 8 ]; do
    qc=$(queued "$B" "race-$k")
    curl -s -o "$tmp/ra" -w '%{http_code}' -X POST -H "Authorization: Bearer $AL" "$A/v1/conversations/$qc/claim" >"$tmp/sa" &
    ca=$!
    curl -s -o "$tmp/rb" -w '%{http_code}' -X POST -H "Authorization: Bearer $BO" "$B/v1/conversations/$qc/claim" >"$tmp/sb" &
    cb=$!
    wait "$ca" "$cb"
    sa=$(cat "$tmp/sa")
    sb=$(cat "$tmp/sb")
    held=$(pg_sql kefu "SELECT agent FROM conversations WHERE id = '$qc' AND state = 2")
    claims=$(pg_sql kefu "SELECT count(*) FROM events WHERE conv = '$qc' AND kind = 'claim'")
    if { [ "$sa" = 200 ] && [ "$sb" = 409 ] && [ "$held" = alice ]; } ||
        { [ "$sa" = 409 ] && [ "$sb" = 200 ] && [ "$held" = bob ]; }; then
        [ "$claims" = 1 ] && wins=$((wins + 1)) || other="$other $qc:$claims-claim-events"
    else
        other="$other $qc:$sa/$sb/held-by-'$held'"
    fi
    k=$((k + 1))
done
check pg-claim-race-one-winner "$([ "$wins" = 8 ]; echo $?)" "$wins of 8 races had one winner and one 409:$other"
# the loser sees it held, on either node; the winner's node and the other agree on the queue
r=$(post "$A" "/v1/conversations/$q1/claim" "" "$AL")
r2=$(post "$B" "/v1/conversations/$q1/claim" "" "$BO")
check pg-claim-held-elsewhere-409 "$([ "$(printf '%s' "$r" | head -1)" = 200 ] &&
    [ "$(printf '%s' "$r2" | head -1)" = 409 ]; echo $?)" "$r / $r2"
ql=$(curl -s -H "Authorization: Bearer $BO" "$B/v1/queue")
check pg-queue-claimed-gone "$(printf '%s' "$ql" | jq -e --arg c "$q1" \
    '[.conversations[] | select(.id == $c and (.agent // null) == null)] | length == 0' >/dev/null; echo $?)" "$ql"

# 3c. push across nodes (LISTEN/NOTIFY): a handoff on A reaches a queue long-poll parked on B, an
# agent's reply on B reaches the customer's long-poll and SSE stream parked on A, within 1 s
now_ms() { date +%s%3N; }
r=$(post "$A" /v1/conversations '{"channel":"web","customer":{"id":"pg-push"}}' | sed 1d)
pc=$(printf '%s' "$r" | jq -r .id)
pt=$(printf '%s' "$r" | jq -r .token)
qv=$(curl -s -H "Authorization: Bearer $BO" "$B/v1/queue" | jq -r .version)
curl -s -m 10 -H "Authorization: Bearer $BO" -o "$tmp/qpoll" "$B/v1/queue?since=$qv&wait=8" &
qp=$!
sleep 0.3
t0=$(now_ms)
post "$A" "/v1/conversations/$pc/messages" '{"text":"I want to talk to a human agent"}' "$pt" >/dev/null
wait "$qp"
t1=$(now_ms)
qms=$((t1 - t0))
check pg-push-queue-1s "$(jq -e --arg c "$pc" '.conversations | map(.id) | index($c) != null' "$tmp/qpoll" >/dev/null &&
    [ $((t1 - t0)) -le 1000 ]; echo $?)" "$((t1 - t0)) ms: $(cat "$tmp/qpoll")"
post "$B" "/v1/conversations/$pc/claim" "" "$BO" >/dev/null
last=$(curl -s -H "Authorization: Bearer $pt" "$A/v1/conversations/$pc/messages" | jq '[.messages[].seq] | max')
curl -s -m 10 -H "Authorization: Bearer $pt" -o "$tmp/ppoll" "$A/v1/conversations/$pc/messages?after=$last&wait=8" &
lp=$!
curl -s -N -m 10 "$A/v1/conversations/$pc/events?token=$pt&after=$last" >"$tmp/psse" &
sp=$!
sleep 0.5
t0=$(now_ms)
r=$(post "$B" "/v1/conversations/$pc/agent-messages" '{"text":"Hi, Bob here on node b"}' "$BO")
i=0
while [ $i -lt 60 ] && ! grep -q 'node b' "$tmp/ppoll" 2>/dev/null; do sleep 0.02; i=$((i + 1)); done
t1=$(now_ms)
check pg-push-long-poll-1s "$([ "$(printf '%s' "$r" | head -1)" = 200 ] && grep -q 'node b' "$tmp/ppoll" &&
    [ $((t1 - t0)) -le 1000 ]; echo $?)" "$((t1 - t0)) ms: $r $(cat "$tmp/ppoll")"
i=0
while [ $i -lt 60 ] && ! grep -q 'node b' "$tmp/psse" 2>/dev/null; do sleep 0.02; i=$((i + 1)); done
t2=$(now_ms)
check pg-push-sse-1s "$(grep -q '^data: .*node b' "$tmp/psse" && [ $((t2 - t0)) -le 1000 ]; echo $?)" \
    "$((t2 - t0)) ms: $(cat "$tmp/psse")"
echo "# pg: push across nodes: queue $qms ms, long-poll $((t1 - t0)) ms, SSE $((t2 - t0)) ms"
kill "$sp" 2>/dev/null
wait "$lp" "$sp" 2>/dev/null

# acked_once FILE: every "<conv> <client_id>" in FILE is stored exactly once; prints the bad count
acked_once() {
    {
        echo "CREATE TEMP TABLE acks(conv TEXT, cid TEXT);"
        sed "s/^\([A-Za-z0-9_-]*\) \([A-Za-z0-9_-]*\).*\$/INSERT INTO acks VALUES('\1','\2');/" "$1"
        echo "SELECT count(*) FROM acks a WHERE (SELECT count(*) FROM messages m WHERE m.conv = a.conv"
        echo "  AND m.client_id = a.cid AND m.sender = 'customer') <> 1;"
    } >"$tmp/check.sql"
    "$PG_BIN/psql" -X -q -t -A -h 127.0.0.1 -p "$PG_PORT" -U postgres -d kefu -f "$tmp/check.sql" 2>&1 | tail -1
}

# 4. nginx round-robin in front of both nodes (a config of our own in the temp dir, a loopback
# port, stopped by its pid): the journey through it, then node a killed with SIGKILL under 64
# writers through it: every acknowledged message is there once, and node b carries on
NGINX=""
for n in /usr/sbin/nginx /usr/local/sbin/nginx /usr/local/bin/nginx; do [ -x "$n" ] && NGINX=$n && break; done
# nginx_start: writes $tmp/nginx/nginx.conf for a free port; sets NG_PID and N (its URL)
nginx_start() {
    mkdir -p "$tmp/nginx"
    tries=0
    while [ $tries -lt 8 ]; do
        port=$((20000 + $(od -An -tu2 -N2 /dev/urandom | tr -d ' ') % 40000))
        cat >"$tmp/nginx/nginx.conf" <<EOF
daemon off;
worker_processes 1;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $tmp/nginx/body;
    proxy_temp_path $tmp/nginx/proxy;
    fastcgi_temp_path $tmp/nginx/fastcgi;
    uwsgi_temp_path $tmp/nginx/uwsgi;
    scgi_temp_path $tmp/nginx/scgi;
    upstream kefu {
        server ${A#http://} max_fails=1 fail_timeout=5s;
        server ${B#http://} max_fails=1 fail_timeout=5s;
        keepalive 64;
    }
    server {
        listen 127.0.0.1:$port;
        location / {
            proxy_pass http://kefu;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header X-Forwarded-For \$remote_addr;
            proxy_buffering off;
            proxy_read_timeout 90s;
            proxy_connect_timeout 2s;
            proxy_next_upstream error timeout;
        }
    }
}
EOF
        ("$NGINX" -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf" -e "$tmp/nginx/error.log" 2>>"$tmp/nginx/start.log" &
            echo $! >"$tmp/nginx/master") 
        NG_PID=$(cat "$tmp/nginx/master")
        i=0
        while [ $i -lt 100 ] && kill -0 "$NG_PID" 2>/dev/null &&
            [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/healthz")" != 200 ]; do
            sleep 0.05
            i=$((i + 1))
        done
        if kill -0 "$NG_PID" 2>/dev/null; then
            N="http://127.0.0.1:$port"
            return 0
        fi
        tries=$((tries + 1))
    done
    NG_PID=""
    return 1
}
if [ -z "$NGINX" ]; then
    no pg-nginx-installed "no nginx binary (/usr/sbin/nginx): run scripts/deps.sh (nginx-light)"
elif ! nginx_start; then
    no pg-nginx-start "$(tail -3 "$tmp/nginx/error.log" "$tmp/nginx/start.log" 2>/dev/null)"
fi
if [ -n "${NG_PID:-}" ]; then
    ok pg-nginx-start
    # the journey through nginx: every call may land on either node
    r=$(post "$N" /v1/conversations '{"channel":"web","customer":{"id":"pg-lb","name":"Lin","tier":"vip"},"locale":"en"}')
    jc=$(printf '%s' "$r" | sed 1d | jq -r .id)
    jt=$(printf '%s' "$r" | sed 1d | jq -r .token)
    r1=$(post "$N" "/v1/conversations/$jc/messages" '{"text":"where is my refund","client_id":"lb-1"}' "$jt")
    r2=$(post "$N" "/v1/conversations/$jc/messages" '{"text":"where is my refund","client_id":"lb-1"}' "$jt")
    check pg-lb-message-and-retry "$([ "$(printf '%s' "$r1" | head -1)" = 200 ] &&
        [ "$(printf '%s' "$r2" | head -1)" = 200 ] &&
        [ "$(printf '%s' "$r1" | sed 1d | jq -r .seq)" = "$(printf '%s' "$r2" | sed 1d | jq -r .seq)" ] &&
        [ "$(pg_sql kefu "SELECT count(*) FROM messages WHERE conv = '$jc' AND client_id = 'lb-1'")" = 1 ]; echo $?)" "$r1 / $r2"
    r=$(post "$N" "/v1/conversations/$jc/messages" '{"text":"I want to talk to a human agent"}' "$jt")
    ql=$(curl -s -H "Authorization: Bearer $AL" "$N/v1/queue")
    ql2=$(curl -s -H "Authorization: Bearer $AL" "$N/v1/queue")
    check pg-lb-handoff-queued "$(printf '%s' "$r" | sed 1d | jq -e '.state == "queued"' >/dev/null &&
        printf '%s' "$ql" | jq -e --arg c "$jc" '.conversations | map(.id) | index($c) != null' >/dev/null &&
        printf '%s' "$ql2" | jq -e --arg c "$jc" '.conversations | map(.id) | index($c) != null' >/dev/null; echo $?)" \
        "$r / $ql / $ql2"
    r=$(post "$N" "/v1/conversations/$jc/claim" "" "$AL")
    r2=$(post "$N" "/v1/conversations/$jc/claim" "" "$BO")
    check pg-lb-claim "$([ "$(printf '%s' "$r" | head -1)" = 200 ] && [ "$(printf '%s' "$r2" | head -1)" = 409 ]; echo $?)" "$r / $r2"
    last=$(curl -s -H "Authorization: Bearer $jt" "$N/v1/conversations/$jc/messages" | jq '[.messages[].seq] | max')
    curl -s -m 10 -H "Authorization: Bearer $jt" -o "$tmp/lpoll" "$N/v1/conversations/$jc/messages?after=$last&wait=8" &
    lp=$!
    curl -s -N -m 10 "$N/v1/conversations/$jc/events?token=$jt&after=$last" >"$tmp/lsse" &
    sp=$!
    sleep 0.5
    t0=$(now_ms)
    r=$(post "$N" "/v1/conversations/$jc/agent-messages" '{"text":"Alice here, through the balancer"}' "$AL")
    i=0
    while [ $i -lt 60 ] && ! { grep -q 'balancer' "$tmp/lpoll" && grep -q 'balancer' "$tmp/lsse"; } 2>/dev/null; do
        sleep 0.02
        i=$((i + 1))
    done
    t1=$(now_ms)
    check pg-lb-push-1s "$([ "$(printf '%s' "$r" | head -1)" = 200 ] && grep -q 'balancer' "$tmp/lpoll" &&
        grep -q '^data: .*balancer' "$tmp/lsse" && [ $((t1 - t0)) -le 1000 ]; echo $?)" \
        "$((t1 - t0)) ms: $r / $(cat "$tmp/lpoll") / $(cat "$tmp/lsse")"
    kill "$sp" 2>/dev/null
    wait "$lp" "$sp" 2>/dev/null
    r=$(post "$N" "/v1/conversations/$jc/resolve" "" "$AL")
    r2=$(post "$N" "/v1/conversations/$jc/feedback" '{"rating":5}' "$jt")
    check pg-lb-resolve-rate "$([ "$(printf '%s' "$r" | head -1)" = 200 ] && [ "$(printf '%s' "$r2" | head -1)" -lt 300 ] &&
        [ "$(pg_sql kefu "SELECT state FROM conversations WHERE id = '$jc'")" = 3 ]; echo $?)" "$r / $r2"
    ra=$(curl -s "$A/metrics" | awk '/^kefu_http_requests_total/ {s += $NF} END {print s + 0}')
    rb=$(curl -s "$B/metrics" | awk '/^kefu_http_requests_total/ {s += $NF} END {print s + 0}')
    check pg-lb-both-nodes-served "$([ "$ra" -gt 0 ] && [ "$rb" -gt 0 ]; echo $?)" "node a $ra requests, node b $rb"

    # SIGKILL of node a under 64 writers through nginx
    : >"$tmp/acks"
    : >"$tmp/knacks"
    LOAD_NACKS="$tmp/knacks" "$CLIENT" crash "$N" 64 3 "$tmp/acks" k >"$tmp/client.out" 2>"$tmp/client.err" &
    cpid=$!
    sleep 1.2
    kill -9 "$pa"
    wait "$pa" 2>/dev/null
    pa=""
    at_kill=$(pg_sql kefu "SELECT count(*) FROM messages WHERE client_id LIKE 'k-%'")
    wait "$cpid"
    cpid=""
    after=$(pg_sql kefu "SELECT count(*) FROM messages WHERE client_id LIKE 'k-%'")
    n=$(wc -l <"$tmp/acks")
    bad=$(acked_once "$tmp/acks")
    check pg-kill9-acked-once "$([ "$n" -gt 0 ] && [ "$bad" = 0 ]; echo $?)" "$n acknowledged, $bad missing or repeated"
    check pg-kill9-other-node-carries-on "$([ "$after" -gt "$at_kill" ]; echo $?)" \
        "$at_kill messages stored when node a died, $after at the end"
    r=$(post "$N" "/v1/conversations/$conv/messages" '{"text":"still here?","client_id":"pg-after-kill"}' "$tok")
    check pg-kill9-same-conversation-on-b "$([ "$(printf '%s' "$r" | head -1)" = 200 ]; echo $?)" "$r"
    echo "# pg: SIGKILL of node a under 64 writers through nginx: $n acknowledged, all stored once; $((after - at_kill)) stored after the kill, $(wc -l <"$tmp/knacks") refused"
fi

# 5. PostgreSQL stopped and restarted under load on node b: no false acknowledgement, then it goes on
: >"$tmp/acks2"
: >"$tmp/nacks"
LOAD_NACKS="$tmp/nacks" "$CLIENT" crash "$B" 16 4 "$tmp/acks2" r >"$tmp/client2.out" 2>"$tmp/client2.err" &
cpid=$!
sleep 0.8
n1=$(pg_sql kefu "SELECT count(*) FROM messages WHERE client_id LIKE 'r-%'") # committed before the stop
pg_stop
sleep 0.8
pg_restart || echo "# pg: $PG_ERR"
wait "$cpid"
cpid=""
n=$(wc -l <"$tmp/acks2")
n2=$(pg_sql kefu "SELECT count(*) FROM messages WHERE client_id LIKE 'r-%'")
bad=$(acked_once "$tmp/acks2")
other=$(awk '$3 != 503' "$tmp/nacks" | wc -l)
check pg-restart-under-load "$([ "$n" -gt "$n1" ] && [ "$n1" -gt 0 ] && [ "$n2" -gt "$n1" ] && [ "$bad" = 0 ] && [ "$other" -eq 0 ]; echo $?)" \
    "$n1 stored before the stop, $n2 after the restart, $n acknowledged in all, $bad missing or repeated, $other answers other than 2xx/503"
echo "# pg: PostgreSQL restarted under 16 writers: $n acknowledged ($n1 stored before the stop), $(wc -l <"$tmp/nacks") answered 503"

# 5b. kefu store copy: an SQLite store (conversations, handoffs, ratings, webhook deliveries that
# failed, agent accounts, one disabled) moved into an empty database, every row there after (the
# same rows, counted and compared); a non-empty target refused
"$KEFU" agent add lina --data "$tmp/lite" >/dev/null
"$KEFU" agent add lou --skills billing --capacity 4 --data "$tmp/lite" >/dev/null
"$KEFU" agent disable lou --data "$tmp/lite" >/dev/null
(KEFU_AGENT_TOKENS="$AGENTS" exec "$KEFU" serve --listen 127.0.0.1:0 --data "$tmp/lite" --rules "$tmp/rules" --corpus "$tmp/corpus" \
    --rate-limit 0 --webhook http://127.0.0.1:1/nobody --webhook-backoff 0.1 >"$tmp/lite.out" 2>"$tmp/lite.log") &
pl=$!
i=0
while [ $i -lt 300 ] && ! grep -q "serving on" "$tmp/lite.out"; do sleep 0.05; i=$((i + 1)); done
L=$(sed -n 's/^kefu: serving on //p' "$tmp/lite.out")
"$CLIENT" crash "$L" 4 1 "$tmp/lacks" s >/dev/null 2>&1
r=$(post "$L" /v1/conversations '{"channel":"web","customer":{"id":"lite-1","name":"Li"}}' | sed 1d)
lc=$(printf '%s' "$r" | jq -r .id)
lt=$(printf '%s' "$r" | jq -r .token)
post "$L" "/v1/conversations/$lc/messages" '{"text":"I want to talk to a human agent"}' "$lt" >/dev/null
post "$L" "/v1/conversations/$lc/feedback" '{"rating":4,"comment":"quick copy"}' "$lt" >/dev/null
# a first response (schema 6) and answers by A/B variants, one rated (schema 7)
post "$L" "/v1/conversations/$lc/claim" "" "$AL" >/dev/null
post "$L" "/v1/conversations/$lc/agent-messages" '{"text":"Alice here"}' "$AL" >/dev/null
for g in 1 2 3 4; do
    r=$(post "$L" /v1/conversations "{\"channel\":\"app\",\"customer\":{\"id\":\"gift-$g\"}}" | sed 1d)
    post "$L" "/v1/conversations/$(printf '%s' "$r" | jq -r .id)/messages" '{"text":"giftcardtrial"}' \
        "$(printf '%s' "$r" | jq -r .token)" >/dev/null
    [ $g = 1 ] && post "$L" "/v1/conversations/$(printf '%s' "$r" | jq -r .id)/feedback" '{"rating":5}' \
        "$(printf '%s' "$r" | jq -r .token)" >/dev/null
done
i=0 # the webhook to a closed port fails at least once before the stop
while [ $i -lt 40 ] && [ "$(sqlite3 "$tmp/lite/kefu.db" "SELECT count(*) FROM outbox WHERE attempts > 0")" = 0 ]; do
    sleep 0.05
    i=$((i + 1))
done
kill "$pl"
wait "$pl"
pg_sql postgres "CREATE DATABASE copied" >/dev/null
"$KEFU" store copy --from "$tmp/lite" --to "$PG_URI/copied" >"$tmp/copy.out" 2>&1
st=$?
q="SELECT conv, seq, sender, text, coalesce(source, ''), coalesce(client_id, ''), created_at FROM messages ORDER BY conv, seq"
sqlite3 -separator '|' "$tmp/lite/kefu.db" "$q" >"$tmp/lite.rows"
pg_sql copied "$q" >"$tmp/copied.rows"
counts="SELECT (SELECT count(*) FROM customers) || ' ' || (SELECT count(*) FROM conversations) || ' ' ||
  (SELECT count(*) FROM messages) || ' ' || (SELECT count(*) FROM events) || ' ' || (SELECT count(*) FROM feedback) ||
  ' ' || (SELECT count(*) FROM outbox) || ' ' || (SELECT count(*) FROM agents) || ' ' ||
  (SELECT count(*) FROM responses) || ' ' || (SELECT count(*) FROM answers)"
q="SELECT event, target, conv, type, body, at, state, attempts, next_ms, error, done_at FROM outbox ORDER BY id"
sqlite3 -separator '|' "$tmp/lite/kefu.db" "$q" >"$tmp/lite.out.rows"
pg_sql copied "$q" >"$tmp/copied.out.rows"
q="SELECT name, token_hash, skills, capacity, disabled, created_at, updated_at FROM agents ORDER BY name"
sqlite3 -separator '|' "$tmp/lite/kefu.db" "$q" >"$tmp/lite.ag.rows"
pg_sql copied "$q" >"$tmp/copied.ag.rows"
cl=$(sqlite3 "$tmp/lite/kefu.db" "$counts")
cp=$(pg_sql copied "$counts")
check pg-store-copy "$([ $st -eq 0 ] && [ "$cl" = "$cp" ] && [ "$(wc -l <"$tmp/lite.rows")" -gt 100 ] &&
    cmp -s "$tmp/lite.rows" "$tmp/copied.rows" && grep -q "counts checked" "$tmp/copy.out" &&
    [ "$(pg_sql copied "SELECT comment FROM feedback WHERE comment IS NOT NULL")" = "quick copy" ] &&
    [ "$(pg_sql copied "SELECT state || queue || agent FROM conversations WHERE id = '$lc'")" = 2generalalice ]; echo $?)" \
    "exit $st: $(cat "$tmp/copy.out"); sqlite $cl, postgresql $cp"
check pg-store-copy-outbox-agents "$([ $st -eq 0 ] && [ "$(wc -l <"$tmp/lite.out.rows")" -ge 2 ] &&
    [ "$(wc -l <"$tmp/lite.ag.rows")" -eq 2 ] && cmp -s "$tmp/lite.out.rows" "$tmp/copied.out.rows" &&
    cmp -s "$tmp/lite.ag.rows" "$tmp/copied.ag.rows" &&
    [ "$(pg_sql copied "SELECT count(*) FROM outbox WHERE attempts > 0 AND error <> ''")" -ge 1 ] &&
    [ "$(pg_sql copied "SELECT disabled FROM agents WHERE name = 'lou'")" = 1 ]; echo $?)" \
    "outbox: $(head -3 "$tmp/lite.out.rows") / $(head -3 "$tmp/copied.out.rows"); agents: $(cat "$tmp/lite.ag.rows") / $(cat "$tmp/copied.ag.rows")"
# the reports read the same figures from both stores: first responses, A/B variants, the KPI table
"$KEFU" report --json --data "$tmp/lite" --rules "$tmp/rules" >"$tmp/rep.lite" 2>&1
KEFU_STORE="$PG_URI/copied" "$KEFU" report --json --rules "$tmp/rules" >"$tmp/rep.pg" 2>&1
"$KEFU" report --kpi --json --days 3650 --data "$tmp/lite" --rules "$tmp/rules" >"$tmp/kpi.lite" 2>&1
KEFU_STORE="$PG_URI/copied" "$KEFU" report --kpi --json --days 3650 --rules "$tmp/rules" >"$tmp/kpi.pg" 2>&1
# (averages to 9 places: the two databases add the same numbers in their own order)
same() { jq -S 'del(.since) | walk(if type == "number" then (. * 1e9 | round) / 1e9 else . end)' "$1"; }
check pg-reports-as-sqlite "$([ $st -eq 0 ] && [ "$(same "$tmp/rep.lite")" = "$(same "$tmp/rep.pg")" ] &&
    [ "$(same "$tmp/kpi.lite")" = "$(same "$tmp/kpi.pg")" ] &&
    [ "$(sqlite3 "$tmp/lite/kefu.db" "SELECT count(*) FROM responses")" = 1 ] &&
    [ "$(sqlite3 "$tmp/lite/kefu.db" "SELECT count(*) FROM answers")" = 4 ] &&
    jq -e '([.experiments[0].variants[].answers] | add) == 4 and ([.experiments[0].variants[].ratings] | add) == 1' "$tmp/rep.pg" >/dev/null &&
    jq -e '[.channels[] | select(.channel == "app")][0].conversations == 4' "$tmp/kpi.pg" >/dev/null; echo $?)" \
    "report: $(head -c 600 "$tmp/rep.lite") / $(head -c 600 "$tmp/rep.pg"); kpi: $(cat "$tmp/kpi.lite") / $(cat "$tmp/kpi.pg")"
"$KEFU" store copy --from "$tmp/lite" --to "$PG_URI/copied" >"$tmp/copy.out" 2>&1
st=$?
check pg-store-copy-refuses-non-empty "$([ $st -eq 1 ] && grep -q "not empty" "$tmp/copy.out" &&
    [ "$(pg_sql copied "$counts")" = "$cp" ]; echo $?)" "exit $st: $(cat "$tmp/copy.out")"
# bad use: one plain line and exit 1 (or 2 for the usage), nothing written
"$KEFU" store copy --from "$tmp/lite" >"$tmp/o" 2>"$tmp/e1"
s1=$?
"$KEFU" store copy --from "$tmp/lite" --to "$tmp/elsewhere.db" >"$tmp/o" 2>"$tmp/e2"
s2=$?
"$KEFU" store copy --from "$tmp/nothing" --to "$PG_URI/copied" >"$tmp/o" 2>"$tmp/e3"
s3=$?
"$KEFU" store copy --from "$tmp/lite" --to "postgresql://postgres@127.0.0.1:1/x?connect_timeout=2" >"$tmp/o" 2>"$tmp/e4"
s4=$?
check pg-store-copy-bad-use "$([ $s1 -eq 2 ] && grep -q "needs --from DIR and --to URI" "$tmp/e1" &&
    [ $s2 -eq 2 ] && grep -q "takes a postgresql:// URI" "$tmp/e2" && [ ! -e "$tmp/elsewhere.db" ] &&
    [ $s3 -eq 1 ] && grep -q "no store at" "$tmp/e3" && [ $s4 -eq 1 ] && grep -q "cannot open the target store" "$tmp/e4" &&
    [ "$(cat "$tmp/e1" "$tmp/e2" "$tmp/e3" "$tmp/e4" | wc -l)" -eq 4 ]; echo $?)" \
    "$s1 $s2 $s3 $s4: $(cat "$tmp/e1" "$tmp/e2" "$tmp/e3" "$tmp/e4")"
echo "# pg: store copy: $cl (customers conversations messages events ratings webhook-deliveries agents first-responses answers)"

# 5c. a database of schema 5 (before first responses and answers) is brought to the current one
# by the first program that opens it, its rows kept
before=$(pg_sql copied "SELECT count(*) FROM messages")
pg_sql copied "DROP TABLE responses; DROP TABLE answers; UPDATE kefu_schema SET version = 5" >/dev/null
KEFU_STORE="$PG_URI/copied" "$KEFU" report --json --rules "$tmp/rules" >"$tmp/o" 2>"$tmp/err"
st=$?
check pg-migrates-5-to-current "$([ $st -eq 0 ] && [ "$(pg_sql copied "SELECT version FROM kefu_schema")" = 7 ] &&
    [ "$(pg_sql copied "SELECT count(*) FROM responses") $(pg_sql copied "SELECT count(*) FROM answers")" = "0 0" ] &&
    [ "$(pg_sql copied "SELECT count(*) FROM messages")" = "$before" ]; echo $?)" "exit $st: $(cat "$tmp/err")"

# 6. a database newer than this program is refused; --store takes only a URI
pg_sql kefu "UPDATE kefu_schema SET version = 99" >/dev/null
KEFU_STORE="$STORE" "$KEFU" serve --listen 127.0.0.1:0 --data "$tmp/c" --rules "$tmp/rules" --corpus "$tmp/corpus" \
    >/dev/null 2>"$tmp/err"
check pg-newer-schema-refused "$([ $? -eq 1 ] && grep -q "cannot open the store" "$tmp/err"; echo $?)" "$(cat "$tmp/err")"
"$KEFU" serve --store /tmp/nowhere.db >/dev/null 2>"$tmp/err"
check pg-store-flag-needs-uri "$([ $? -eq 2 ] && grep -q "postgresql:// URI" "$tmp/err"; echo $?)" "$(cat "$tmp/err")"

kill "$pb" 2>/dev/null
wait "$pb" 2>/dev/null
pb=""

# 7. webhooks on two nodes: both send from the one outbox, each row taken with a lease, so a
# receiver on 127.0.0.1 gets every event exactly once, whichever node sent it
pg_sql postgres "CREATE DATABASE hooks" >/dev/null
STORE="$PG_URI/hooks"
rpid=""
NODEJS=$(which node 2>/dev/null) # node() above is this script's own
if [ -n "$NODEJS" ]; then
    : >"$tmp/hook.log"
    "$NODEJS" tests/webhook_receiver.js "$tmp/hook.log" --secret whsec-pg-0123456789 >"$tmp/hook.out" 2>&1 &
    rpid=$!
    i=0
    while [ $i -lt 200 ] && ! grep -q '^listening' "$tmp/hook.out"; do sleep 0.05; i=$((i + 1)); done
fi
rport=$(sed -n 's/^listening //p' "$tmp/hook.out" 2>/dev/null)
ADM="adm-pg-0123456789abcdef"
export KEFU_WEBHOOK_SECRET="whsec-pg-0123456789" KEFU_ADMIN_TOKEN="$ADM"
HOOK="http://127.0.0.1:$rport/hook"
if [ -z "$rport" ] || ! node c --webhook "$HOOK" --webhook-backoff 0.1; then
    no pg-webhook-nodes-start "receiver port '$rport': $(tail -3 "$tmp/c.log" 2>/dev/null)"
else
    pa=$NODE_PID
    C1=$NODE_URL
    node d --webhook "$HOOK" --webhook-backoff 0.1 && pb=$NODE_PID && C2=$NODE_URL
    # twelve conversations, each: handoff, claim and resolve on alternating nodes (36 events)
    k=0
    while [ $k -lt 12 ]; do
        if [ $((k % 2)) -eq 0 ]; then U=$C1 V=$C2; else U=$C2 V=$C1; fi
        r=$(post "$U" /v1/conversations '{"channel":"web","customer":{"id":"hook-'$k'"}}' | sed 1d)
        hc=$(printf '%s' "$r" | jq -r .id)
        ht=$(printf '%s' "$r" | jq -r .token)
        post "$V" "/v1/conversations/$hc/messages" '{"text":"I want to talk to a human agent"}' "$ht" >/dev/null
        post "$U" "/v1/conversations/$hc/claim" '' "$AL" >/dev/null
        post "$V" "/v1/conversations/$hc/resolve" '' "$AL" >/dev/null
        k=$((k + 1))
    done
    i=0
    while [ $i -lt 200 ] && [ "$(pg_sql hooks "SELECT count(*) FROM outbox WHERE state <> 1")" != 0 ]; do
        sleep 0.05
        i=$((i + 1))
    done
    sleep 0.5 # a second send, were there one, would land now
    rows=$(pg_sql hooks "SELECT count(*) FROM outbox")
    delivered=$(pg_sql hooks "SELECT count(*) FROM outbox WHERE state = 1")
    got=$(wc -l <"$tmp/hook.log")
    ids=$(jq -r .id "$tmp/hook.log" | sort -u | wc -l)
    pg_sql hooks "SELECT event FROM outbox ORDER BY event" >"$tmp/hook.want"
    jq -r .id "$tmp/hook.log" | sort >"$tmp/hook.got"
    signed=$(jq -r 'select(.sig_ok != true) | .id' "$tmp/hook.log" | wc -l)
    check pg-webhook-once-across-nodes "$([ "$rows" -eq 36 ] && [ "$delivered" -eq 36 ] && [ "$got" -eq 36 ] &&
        [ "$ids" -eq 36 ] && cmp -s "$tmp/hook.want" "$tmp/hook.got" && [ "$signed" -eq 0 ]; echo $?)" \
        "$rows rows, $delivered delivered, $got received, $ids distinct ids, $signed not signed right"
    echo "# pg: webhooks on two nodes: $rows events, $got received, $ids distinct"

    # 8. agent accounts in the shared store: made through one node's admin API, refused on every
    # node at once when disabled (by the command line on the store) or rotated (through the other node)
    acode() { curl -s -m 5 -o "$tmp/ab" -w '%{http_code}' -H "Authorization: Bearer $1" "$2/v1/queue"; }
    r=$(post "$C1" /v1/admin/agents '{"name":"amy","skills":["general"],"capacity":5}' "$ADM")
    T1=$(printf '%s' "$r" | sed 1d | jq -r .token)
    s1=$(acode "$T1" "$C1")$(acode "$T1" "$C2")
    KEFU_STORE="$STORE" "$KEFU" agent disable amy >/dev/null 2>"$tmp/e"
    s2=$(acode "$T1" "$C1")$(acode "$T1" "$C2")
    r=$(post "$C2" /v1/admin/agents/amy/enable '' "$ADM")
    s3=$(acode "$T1" "$C1")$(acode "$T1" "$C2")
    r=$(post "$C2" /v1/admin/agents/amy/rotate '' "$ADM")
    T2=$(printf '%s' "$r" | sed 1d | jq -r .token)
    s4=$(acode "$T1" "$C1")$(acode "$T1" "$C2")$(acode "$T2" "$C1")$(acode "$T2" "$C2")
    KEFU_STORE="$STORE" "$KEFU" agent list >"$tmp/alist" 2>&1
    check pg-agents-across-nodes "$([ -n "$T1" ] && [ "$T1" != null ] && [ -n "$T2" ] && [ "$T2" != "$T1" ] &&
        [ "$s1" = 200200 ] && [ "$s2" = 401401 ] && [ "$s3" = 200200 ] && [ "$s4" = 401401200200 ] &&
        grep -q '^amy enabled skills=general capacity=5' "$tmp/alist" &&
        [ "$(pg_sql hooks "SELECT count(*) FROM agents WHERE token_hash LIKE '%$T2%'")" = 0 ]; echo $?)" \
        "made $s1, disabled $s2, enabled $s3, rotated $s4: $(cat "$tmp/e" "$tmp/alist")"
    kill "$pa" "$pb" 2>/dev/null
    wait "$pa" "$pb" 2>/dev/null
    pa=""
    pb=""
fi
[ -n "$rpid" ] && kill "$rpid" 2>/dev/null && wait "$rpid" 2>/dev/null
