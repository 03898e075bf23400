#!/bin/sh
# crash.sh — kill -9 under load loses no acknowledged message.
# CRASH_CYCLES times (default 20): start `kefu serve` on the same data
# dir, check the file (PRAGMA integrity_check) and that every message
# acknowledged with 2xx so far is stored exactly once, put 64 writers on
# it (build/tests/load_client crash: keep-alive connections, one
# conversation each, client ids logged on every 2xx), and SIGKILL the
# server after a random 0.2-1.2 s. A last restart is checked the same
# way. Prints "ok NAME" / "not ok NAME" lines and one "# crash:" line of
# figures. Only 127.0.0.1; the server is stopped by its own pid.
set -u
BUILD="${BUILD:-build}"
KEFU="${KEFU:-$BUILD/kefu}"
CLIENT="$BUILD/tests/load_client"
CYCLES="${CRASH_CYCLES:-20}"
WRITERS="${CRASH_WRITERS:-64}"
tmp=$(mktemp -d)
pid=""
cpid=""
cleanup() {
    [ -n "$cpid" ] && kill "$cpid" 2>/dev/null
    [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null
    [ -n "${KEEP:-}" ] && echo "kept $tmp" || rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

ok() { echo "ok $1"; }
no() { echo "not ok $1"; [ $# -gt 1 ] && printf '  %s\n' "$2"; }

mkdir -p "$tmp/rules" "$tmp/data"
cp rules/*.rules "$tmp/rules/"
[ -d corpus ] && cp -r corpus "$tmp/corpus" || mkdir -p "$tmp/corpus"
: >"$tmp/acks"
DB="$tmp/data/kefu.db"

# start: runs the server in the background, sets pid and URL; 1 if it did not come up
start() {
    : >"$tmp/out"
    (exec "$KEFU" serve --listen 127.0.0.1:0 --data "$tmp/data" --rules "$tmp/rules" --corpus "$tmp/corpus" \
        --rate-limit 0 >"$tmp/out" 2>>"$tmp/log") &
    pid=$!
    i=0
    while [ $i -lt 300 ] && kill -0 "$pid" 2>/dev/null && ! grep -q "serving on" "$tmp/out"; do
        sleep 0.05
        i=$((i + 1))
    done
    URL=$(sed -n 's/^kefu: serving on //p' "$tmp/out")
    [ -n "$URL" ]
}

# verify: integrity_check and every acknowledged message present exactly once
bad_integrity=0
bad_acks=0
checked=0
verify() {
    ic=$(sqlite3 "$DB" "PRAGMA integrity_check" 2>&1)
    if [ "$ic" != ok ]; then
        bad_integrity=$((bad_integrity + 1))
        echo "  integrity after restart $1: $ic"
    fi
    n=$(wc -l <"$tmp/acks")
    [ "$n" -eq 0 ] && return
    {
        echo "CREATE TEMP TABLE acks(conv TEXT, cid TEXT);"
        echo "BEGIN;"
        sed "s/^\([A-Za-z0-9_-]*\) \([A-Za-z0-9_-]*\)\$/INSERT INTO acks VALUES('\1','\2');/" "$tmp/acks"
        echo "COMMIT;"
        echo "SELECT count(*) FROM acks;"
        echo "SELECT count(*) FROM acks a WHERE (SELECT count(*) FROM messages m WHERE m.conv = a.conv"
        echo "  AND m.client_id = a.cid AND m.sender = 'customer') <> 1"
        echo "  OR (SELECT count(*) FROM messages m WHERE m.conv = a.conv AND m.sender = 'customer'"
        echo "  AND m.text LIKE '%(' || a.cid || ')') <> 1;"
    } >"$tmp/check.sql"
    res=$(sqlite3 "$DB" <"$tmp/check.sql" 2>&1 | tr '\n' ' ')
    set -- $res
    if [ "$#" -ne 2 ] || [ "$1" -ne "$n" ] || [ "$2" -ne 0 ]; then
        bad_acks=$((bad_acks + 1))
        echo "  acks after restart: $res (want $n 0)"
    fi
    checked=$n
}

rand_ms() { # a pseudo-random delay in [200, 1200) ms, as seconds
    r=$(od -An -N2 -tu2 /dev/urandom | tr -d ' ')
    awk -v r="$r" 'BEGIN { printf "%.3f", 0.2 + (r % 1000) / 1000 }'
}

starts=0
errors=0
sent=0
c=1
while [ $c -le "$CYCLES" ]; do
    if ! start; then
        no crash-restart "cycle $c: $(tail -3 "$tmp/log")"
        exit 0
    fi
    starts=$((starts + 1))
    verify "$c"
    "$CLIENT" crash "$URL" "$WRITERS" 5 "$tmp/acks" "c$c" >"$tmp/client.out" 2>"$tmp/client.err" &
    cpid=$!
    sleep "$(rand_ms)"
    kill -9 "$pid"
    wait "$pid" 2>/dev/null
    pid=""
    wait "$cpid"
    st=$?
    cpid=""
    [ "$st" -ne 0 ] && errors=$((errors + 1)) && sed -n '1,3p' "$tmp/client.err"
    s=$(sed -n 's/^sent \([0-9]*\) .*/\1/p' "$tmp/client.out")
    sent=$((sent + ${s:-0}))
    c=$((c + 1))
done
# the last restart, checked like the others, then a clean stop
if start; then
    starts=$((starts + 1))
    verify final
    kill "$pid"
    wait "$pid" 2>/dev/null
    pid=""
fi

acked=$(wc -l <"$tmp/acks")
echo "# crash: $CYCLES kill -9 cycles, $WRITERS writers, $sent messages sent, $acked acknowledged, all checked after each of $starts restarts"
[ "$starts" -eq $((CYCLES + 1)) ] && ok crash-restarts || no crash-restarts "$starts of $((CYCLES + 1)) starts"
[ "$bad_integrity" -eq 0 ] && ok crash-integrity-check || no crash-integrity-check "$bad_integrity restarts failed it"
[ "$bad_acks" -eq 0 ] && [ "$checked" -eq "$acked" ] && ok crash-acked-stored-once ||
    no crash-acked-stored-once "$bad_acks restarts with missing or repeated acknowledged messages"
# acknowledgements in most cycles: a run that never reached the writers proves nothing
[ "$acked" -ge "$CYCLES" ] && ok crash-under-load || no crash-under-load "only $acked acknowledged messages"
[ "$errors" -eq 0 ] && ok crash-no-error-status || no crash-no-error-status "$errors cycles answered non-2xx"
