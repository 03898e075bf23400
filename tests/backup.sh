#!/bin/sh
# backup.sh — kefu store backup while kefu serve runs under load from 16
# writers, then a restore. What must hold: the copy passes integrity_check
# and is one file (no -wal); every message acknowledged before the backup
# began is in it exactly once; a copy taken when the load is over holds the
# same rows as the live store; a server started on the restored file gives
# the same conversation, with the same token, as the original; bad use gets
# one plain line and a non-zero exit and writes nothing. Prints "ok NAME" /
# "not ok NAME". Only 127.0.0.1; servers are stopped by their pid.
set -u
BUILD="${BUILD:-build}"
KEFU="${KEFU:-$BUILD/kefu}"
CLIENT="$BUILD/tests/load_client"
tmp=$(mktemp -d)
pid=""
lpid=""
cleanup() {
    [ -n "$lpid" ] && kill "$lpid" 2>/dev/null
    [ -n "$pid" ] && kill "$pid" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

. tests/lib.sh

mkdir -p "$tmp/rules" "$tmp/corpus"
cp rules/*.rules "$tmp/rules/"

# start DIR: one server on DIR
start() { serve "$tmp/out" "$tmp/log" --data "$1" --rules "$tmp/rules" --corpus "$tmp/corpus" --rate-limit 0; }
stop() { kill "$pid"; wait "$pid" 2>/dev/null; pid=""; }
post() {
    curl -s -m 10 -o "$tmp/b" -w '%{http_code}' -X POST -H 'Content-Type: application/json' ${3:+-H "$3"} \
        --data-binary "$2" "$URL$1"
}
# rows DB: every conversation and message, one line each, in a fixed order
rows() {
    sqlite3 "$1" "SELECT id, token, customer, state, last_seq FROM conversations ORDER BY id;
        SELECT conv, seq, sender, text, client_id FROM messages ORDER BY conv, seq;"
}

D="$tmp/data"
if ! start "$D"; then
    no backup-start "$(cat "$tmp/log")"
    exit 0
fi
post /v1/conversations '{"channel":"web","customer":{"id":"backup-1","name":"Bao"}}' >/dev/null
C=$(jq -r .id "$tmp/b") T=$(jq -r .token "$tmp/b")
post "/v1/conversations/$C/messages" '{"text":"我的退款什么时候到账"}' "Authorization: Bearer $T" >/dev/null
post "/v1/conversations/$C/messages" '{"text":"where is my order KF12345678"}' "Authorization: Bearer $T" >/dev/null

# 1. under load: 16 writers for 2 s (what they were acknowledged is known when they stop), then
# 16 more for 4 s, with the backup taken 1 s into their run
: >"$tmp/before"
"$CLIENT" crash "$URL" 16 2 "$tmp/before" bk1 >"$tmp/load1" 2>&1
: >"$tmp/acks"
"$CLIENT" crash "$URL" 16 4 "$tmp/acks" bk2 >"$tmp/load" 2>&1 &
lpid=$!
sleep 1
out=$("$KEFU" store backup --data "$D" "$tmp/b1.db" 2>&1)
st=$?
wait "$lpid"
lpid=""
n=$(wc -l <"$tmp/before")
check backup-under-load "$([ $st -eq 0 ] && echo "$out" | grep -q '^backup: .* integrity ok$' && [ -s "$tmp/b1.db" ] &&
    [ ! -e "$tmp/b1.db-wal" ] && [ ! -e "$tmp/b1.db.tmp" ] && [ "$n" -gt 0 ] &&
    [ "$(sqlite3 "$tmp/b1.db" 'PRAGMA integrity_check')" = ok ] &&
    [ "$(sqlite3 "$tmp/b1.db" 'PRAGMA journal_mode')" = delete ]; echo $?)" "status $st, $n acks before: $out"
{
    echo "CREATE TEMP TABLE acks(conv TEXT, cid TEXT);"
    echo "BEGIN;"
    sed "s/^\([A-Za-z0-9_-]*\) \([A-Za-z0-9_-]*\)\$/INSERT INTO acks VALUES('\1','\2');/" "$tmp/before"
    echo "COMMIT;"
    echo "SELECT count(*) FROM acks a WHERE (SELECT count(*) FROM messages m WHERE m.conv = a.conv"
    echo "  AND m.client_id = a.cid AND m.sender = 'customer') <> 1;"
} >"$tmp/check.sql"
missing=$(sqlite3 "$tmp/b1.db" <"$tmp/check.sql" 2>&1)
check backup-holds-acked "$([ "$missing" = 0 ]; echo $?)" "$missing of $n acknowledged before the backup are not in it once"
# the second load went on during the copy and after it (else nothing here is about a live store)
later=$(sqlite3 "$tmp/b1.db" "SELECT count(*) FROM messages WHERE client_id LIKE 'bk2-%'")
total=$(wc -l <"$tmp/acks")
check backup-load-went-on "$([ "$later" -gt 0 ] && [ "$total" -gt "$later" ]; echo $?)" \
    "$later of the second load's messages in the copy, $total acknowledged in all"

# 2. when the load is over, a copy holds exactly the live store's rows
"$KEFU" store backup --data "$D" "$tmp/b2.db" >"$tmp/o2" 2>&1
st=$?
rows "$D/kefu.db" >"$tmp/live.rows"
rows "$tmp/b2.db" >"$tmp/copy.rows"
conv=$(sqlite3 "$D/kefu.db" "SELECT count(*) FROM conversations")
check backup-same-rows "$([ $st -eq 0 ] && [ -s "$tmp/live.rows" ] && cmp -s "$tmp/live.rows" "$tmp/copy.rows" &&
    grep -q "^backup: .*: $conv conversations, " "$tmp/o2"; echo $?)" "status $st: $(cat "$tmp/o2"); $(diff "$tmp/live.rows" "$tmp/copy.rows" | head -5)"
curl -s -m 10 -H "Authorization: Bearer $T" "$URL/v1/conversations/$C/messages" >"$tmp/orig.json"
stop

# 3. restore: a server on the copy gives the same conversation to the same token
mkdir -p "$tmp/restored"
cp "$tmp/b2.db" "$tmp/restored/kefu.db"
if start "$tmp/restored"; then
    curl -s -m 10 -H "Authorization: Bearer $T" "$URL/v1/conversations/$C/messages" >"$tmp/rest.json"
    post "/v1/conversations/$C/messages" '{"text":"谢谢"}' "Authorization: Bearer $T" >"$tmp/code"
    check backup-restore "$(jq -e '.messages | length >= 4' "$tmp/orig.json" >/dev/null && cmp -s "$tmp/orig.json" "$tmp/rest.json" &&
        [ "$(cat "$tmp/code")" = 200 ]; echo $?)" "$(head -c 300 "$tmp/orig.json") vs $(head -c 300 "$tmp/rest.json")"
    stop
else
    no backup-restore "$(tail -3 "$tmp/log")"
fi

# 4. bad use: one line, non-zero, nothing written or overwritten
before=$(cksum <"$tmp/b1.db")
"$KEFU" store backup --data "$D" "$tmp/b1.db" >"$tmp/o" 2>"$tmp/e"
s1=$?
"$KEFU" store backup --data "$tmp/nothing" "$tmp/b3.db" >"$tmp/o" 2>"$tmp/e2"
s2=$?
"$KEFU" store frobnicate >"$tmp/o" 2>"$tmp/e3"
s3=$?
"$KEFU" store backup --data "$D" >"$tmp/o" 2>"$tmp/e4"
s4=$?
check backup-bad-use "$([ $s1 -eq 1 ] && grep -q "exists; a backup never overwrites" "$tmp/e" && [ "$(cksum <"$tmp/b1.db")" = "$before" ] &&
    [ $s2 -eq 1 ] && grep -q "no store at '$tmp/nothing/kefu.db'" "$tmp/e2" && [ ! -e "$tmp/b3.db" ] &&
    [ $s3 -eq 2 ] && grep -q "unknown store command 'frobnicate'" "$tmp/e3" && [ $s4 -eq 2 ] &&
    [ "$(cat "$tmp/e" "$tmp/e2" "$tmp/e3" "$tmp/e4" | wc -l)" -eq 4 ]; echo $?)" \
    "$s1 $(cat "$tmp/e") / $s2 $(cat "$tmp/e2") / $s3 $(cat "$tmp/e3") / $s4 $(cat "$tmp/e4")"
