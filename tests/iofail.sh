#!/bin/sh
# iofail.sh — a full disk: `kefu serve` runs with the test-only VFS
# build/tests/vfs_full.so (LD_PRELOAD), whose writes fail with SQLITE_FULL
# while the flag file exists. While full the server answers 503
# storage_full with Retry-After, acknowledges nothing, changes no queue
# and keeps serving reads; when space returns the same requests succeed;
# after kill -9 exactly the acknowledged messages are in the file.
# Prints "ok NAME" / "not ok NAME". Only 127.0.0.1; stopped by pid.
set -u
BUILD="${BUILD:-build}"
KEFU="${KEFU:-$BUILD/kefu}"
SHIM="$(pwd)/$BUILD/tests/vfs_full.so"
tmp=$(mktemp -d)
pid=""
cleanup() {
    [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null
    [ -n "${KEEP:-}" ] && echo "kept $tmp" || rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

ok() { echo "ok $1"; }
no() { echo "not ok $1"; [ $# -gt 1 ] && printf '  %s\n' "$2"; }
check() { if [ "$2" -eq 0 ]; then ok "$1"; else no "$1" "${3:-}"; fi; }

mkdir -p "$tmp/rules" "$tmp/data" "$tmp/corpus"
cp rules/*.rules "$tmp/rules/"
FLAG="$tmp/full"
AG="Authorization: Bearer tok-agent-0123456789"

(KEFU_AGENT_TOKENS="ann:tok-agent-0123456789" KEFU_TEST_FULL_FLAG="$FLAG" LD_PRELOAD="$SHIM" \
    exec "$KEFU" serve --listen 127.0.0.1:0 --data "$tmp/data" --rules "$tmp/rules" --corpus "$tmp/corpus" \
    --rate-limit 0 >"$tmp/out" 2>"$tmp/log") &
pid=$!
i=0
while [ $i -lt 200 ] && kill -0 "$pid" 2>/dev/null && ! grep -q "serving on" "$tmp/out" 2>/dev/null; do sleep 0.05; i=$((i + 1)); done
URL=$(sed -n 's/^kefu: serving on //p' "$tmp/out")
[ -z "$URL" ] && { no iofail-start "$(cat "$tmp/log")"; exit 0; }

# post PATH BODY [AUTH]: status on stdout, headers in $tmp/h, body in $tmp/b
post() {
    curl -s -m 10 -D "$tmp/h" -o "$tmp/b" -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
        ${3:+-H "$3"} --data-binary "$2" "$URL$1"
}
get() { curl -s -m 10 -o "$tmp/b" -w '%{http_code}' ${2:+-H "$2"} "$URL$1"; }
jb() { jq -r "$1" "$tmp/b" 2>/dev/null; }
msg() { post "/v1/conversations/$1/messages" "{\"text\":\"$3\",\"client_id\":\"$4\"}" "Authorization: Bearer $2"; }

s=$(post /v1/conversations '{"channel":"web","customer":{"id":"disk-a"}}')
A=$(jb .id) TA=$(jb .token)
s2=$(post /v1/conversations '{"channel":"web","customer":{"id":"disk-b"}}')
B=$(jb .id) TB=$(jb .token)
s3=$(msg "$A" "$TA" "where is my order KF12345678" ok-1)
check iofail-before "$([ "$s$s2$s3" = 201201200 ]; echo $?)" "$s $s2 $s3"

# the disk fills up
touch "$FLAG"
codes=""
for k in 1 2 3 4 5; do codes="$codes $(msg "$A" "$TA" "hello number $k" "full-$k")"; done
check iofail-503 "$([ "$codes" = " 503 503 503 503 503" ]; echo $?)" "$codes"
check iofail-error-body "$([ "$(jb .error.code)" = storage_full ] && [ -n "$(jb .error.message)" ]; echo $?)" \
    "$(cat "$tmp/b")"
check iofail-retry-after "$(grep -qi '^Retry-After: [0-9]' "$tmp/h"; echo $?)" "$(cat "$tmp/h")"
s=$(msg "$B" "$TB" "转人工" handoff-1)
s2=$(post /v1/conversations '{"channel":"web","customer":{"id":"disk-c"}}')
check iofail-503-handoff-create "$([ "$s$s2" = 503503 ]; echo $?)" "$s $s2"
s=$(get /v1/queue "$AG")
check iofail-queue-unchanged "$([ "$s" = 200 ] && [ "$(jb '.conversations | length')" = 0 ]; echo $?)" "$s $(cat "$tmp/b")"
s=$(get /healthz)
s2=$(get "/v1/conversations/$A/messages?after=0" "Authorization: Bearer $TA")
check iofail-still-serving "$([ "$s$s2" = 200200 ] && kill -0 "$pid" && [ "$(jb '[.messages[] | select(.from == "customer")] | length')" = 1 ]; echo $?)" \
    "$s $s2 $(cat "$tmp/b")"

# space comes back: the retries and new messages go through
rm -f "$FLAG"
s=$(msg "$A" "$TA" "hello number 1" full-1)
s2=$(msg "$A" "$TA" "how do I get a refund" after-1)
s3=$(msg "$B" "$TB" "转人工" handoff-1)
st=$(jb .state)
check iofail-recovers "$([ "$s$s2$s3" = 200200200 ] && [ "$st" = queued ]; echo $?)" "$s $s2 $s3 $st"
s=$(get /v1/queue "$AG")
check iofail-queue-after "$([ "$(jb '.conversations | length')" = 1 ] && [ "$(jb '.conversations[0].id')" = "$B" ]; echo $?)" \
    "$(cat "$tmp/b")"

# 16 writers on keep-alive connections while the disk fills and empties
# again: batches that share a group commit fail together, none is acked
: >"$tmp/acks"
: >"$tmp/nacks"
LOAD_NACKS="$tmp/nacks" "$BUILD/tests/load_client" crash "$URL" 16 3 "$tmp/acks" burst >"$tmp/lc.out" 2>"$tmp/lc.err" &
lc=$!
sleep 0.7
touch "$FLAG"
sleep 1
rm -f "$FLAG"
wait "$lc"
na=$(wc -l <"$tmp/acks")
nn=$(wc -l <"$tmp/nacks")
other=$(awk '$3 != 503' "$tmp/nacks" | wc -l)
check iofail-concurrent-503 "$([ "$nn" -gt 0 ] && [ "$na" -gt 0 ] && [ "$other" -eq 0 ]; echo $?)" \
    "$(cat "$tmp/lc.out") other statuses: $other"

# durable: after kill -9 exactly what was acknowledged is stored
kill -9 "$pid"
wait "$pid" 2>/dev/null
pid=""
ic=$(sqlite3 "$tmp/data/kefu.db" "PRAGMA integrity_check")
got=$(sqlite3 "$tmp/data/kefu.db" "SELECT group_concat(client_id, ' ') FROM (SELECT client_id FROM messages
    WHERE client_id IS NOT NULL AND client_id NOT LIKE 'burst-%' ORDER BY client_id)")
check iofail-durable "$([ "$ic" = ok ] && [ "$got" = "after-1 full-1 handoff-1 ok-1" ]; echo $?)" "$ic / $got"
n=$(sqlite3 "$tmp/data/kefu.db" "SELECT count(*) FROM conversations WHERE customer LIKE 'disk-%'")
check iofail-no-phantom-conversation "$([ "$n" = 2 ]; echo $?)" "$n conversations"
# every acknowledged burst message once, every refused one absent
{
    echo "CREATE TEMP TABLE a(conv TEXT, cid TEXT, status INT);"
    echo "BEGIN;"
    sed "s/^\([A-Za-z0-9_-]*\) \([A-Za-z0-9_-]*\)\$/INSERT INTO a VALUES('\1','\2',200);/" "$tmp/acks"
    sed "s/^\([A-Za-z0-9_-]*\) \([A-Za-z0-9_-]*\) \([0-9]*\)\$/INSERT INTO a VALUES('\1','\2',\3);/" "$tmp/nacks"
    echo "COMMIT;"
    echo "SELECT count(*) FROM a WHERE (SELECT count(*) FROM messages m WHERE m.conv = a.conv AND m.client_id = a.cid)"
    echo "  <> (status = 200);"
} >"$tmp/burst.sql"
bad=$(sqlite3 "$tmp/data/kefu.db" <"$tmp/burst.sql" 2>&1)
check iofail-concurrent-exact "$([ "$bad" = 0 ]; echo $?)" "$bad of $na acked and $nn refused messages misplaced"
check iofail-no-crash "$(! grep -qi 'assert\|sanitizer\|segv' "$tmp/log"; echo $?)" "$(tail -3 "$tmp/log")"
