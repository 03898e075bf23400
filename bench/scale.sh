#!/bin/sh
# scale.sh — the message endpoint on the SQLite store against the PostgreSQL
# store, and two kefu nodes on one PostgreSQL against one, in the same run.
# A throwaway PostgreSQL (tests/pg_lib.sh, with pg_stat_statements loaded)
# on loopback; the load is tests/load_client's crash writers (each its own
# conversation, one message a request with a client_id, the next sent when
# the previous is acknowledged): W writers on one node, or W/2 on each of
# two nodes. Per PostgreSQL run it also counts what one message costs the
# database: statements (each one round trip), the writer's commits and WAL bytes. Every figure is the
# median of RUNS runs of SECS seconds. Writes bench/out/scale.json and
# scale.md. Servers listen on 127.0.0.1 only and are stopped by pid.
# Environment: BUILD (build), SECS (4), RUNS (3), WRITERS (64).
set -eu
cd "$(dirname "$0")/.."
. bench/lib.sh
SECS=${SECS:-4}
RUNS=${RUNS:-3}
WRITERS=${WRITERS:-64}
KEFU=$BUILD/kefu
CLIENT=$BUILD/tests/load_client
[ -x "$KEFU" ] && [ -x "$CLIENT" ] || { echo "bench: build $KEFU and $CLIENT first (make)" >&2; exit 1; }
tmp=$(mktemp -d /tmp/kefu-scale-XXXXXX)
chmod 711 "$tmp"
pids=""
. tests/pg_lib.sh
cleanup() {
    for p in $pids; do kill "$p" 2>/dev/null; done
    pg_stop
    rm -rf "$tmp"
}
trap cleanup EXIT INT TERM
PG_OPTS="-c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track=all"
pg_start "$tmp/pg" || { echo "bench: cannot start PostgreSQL: ${PG_SKIP:-$PG_ERR}" >&2; exit 1; }
mkdir -p "$tmp/rules"
cp rules/*.rules "$tmp/rules/"

# node NAME [STORE]: starts a node; prints its URL, its pid goes to $tmp/NAME.pid
node() {
    : >"$tmp/$1.out"
    ( [ -n "${2:-}" ] && export KEFU_STORE="$2"
      exec "$KEFU" serve --listen 127.0.0.1:0 --data "$tmp/$1" --rules "$tmp/rules" --corpus corpus \
        --rate-limit 0 --log-level error >"$tmp/$1.out" 2>"$tmp/$1.log") &
    echo $! >"$tmp/$1.pid"
    i=0
    while [ $i -lt 400 ] && ! grep -q "serving on" "$tmp/$1.out"; do sleep 0.05; i=$((i + 1)); done
    sed -n 's/^kefu: serving on //p' "$tmp/$1.out"
}
stop() {
    p=$(cat "$tmp/$1.pid")
    kill "$p" 2>/dev/null
    wait "$p" 2>/dev/null || true
}
# load TAG URL...: WRITERS writers split over the URLs for SECS s; prints acknowledged messages per second
load() {
    tag=$1
    shift
    per=$((WRITERS / $#))
    k=0
    for u in "$@"; do
        "$CLIENT" crash "$u" "$per" "$SECS" "$tmp/acks.$tag.$k" "$tag-$k" >"$tmp/load.$tag.$k" 2>&1 &
        echo $! >"$tmp/lpid.$k"
        k=$((k + 1))
    done
    k=0
    for u in "$@"; do wait "$(cat "$tmp/lpid.$k")" || true; k=$((k + 1)); done
    cat "$tmp"/load."$tag".* | awk -v s="$SECS" '{ for (i = 1; i < NF; i++) if ($i == "acked") a += $(i + 1) } END { printf "%.0f\n", a / s }'
}
sql() { pg_sql "$1" "$2"; }
# db_mark DB: statements, commits and WAL position of DB now
db_mark() {
    sql "$1" "SELECT (SELECT coalesce(sum(calls), 0) FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
        WHERE d.datname = '$1'), (SELECT coalesce(sum(calls), 0) FROM pg_stat_statements s JOIN pg_database d
        ON d.oid = s.dbid WHERE d.datname = '$1' AND s.query = 'COMMIT'), pg_current_wal_lsn()"
}

run=0
: >"$tmp/sqlite"
: >"$tmp/pg1"
: >"$tmp/pg2"
: >"$tmp/cost"
while [ $run -lt "$RUNS" ]; do
    # one node on SQLite
    u=$(node "sq$run")
    load "s$run" "$u" >>"$tmp/sqlite"
    stop "sq$run"
    # one node on PostgreSQL, and what a message costs the database
    sql postgres "CREATE DATABASE one$run" >/dev/null
    sql "one$run" "CREATE EXTENSION IF NOT EXISTS pg_stat_statements" >/dev/null
    u=$(node "p1$run" "$PG_URI/one$run")
    sleep 0.2
    m0=$(db_mark "one$run")
    n0=$(sql "one$run" "SELECT count(*) FROM messages WHERE sender = 'customer'")
    load "p$run" "$u" >>"$tmp/pg1"
    m1=$(db_mark "one$run")
    n1=$(sql "one$run" "SELECT count(*) FROM messages WHERE sender = 'customer'")
    stop "p1$run"
    wal=$(sql "one$run" "SELECT pg_wal_lsn_diff('${m1##*|}', '${m0##*|}')")
    echo "$m0|$m1|$wal|$((n1 - n0))" | awk -F'|' '{ n = $8; if (n > 0) printf "%.2f %.3f %.0f\n", ($4 - $1) / n, ($5 - $2) / n, $7 / n }' >>"$tmp/cost"
    # two nodes on one PostgreSQL database
    sql postgres "CREATE DATABASE two$run" >/dev/null
    ua=$(node "pa$run" "$PG_URI/two$run")
    ub=$(node "pb$run" "$PG_URI/two$run")
    load "t$run" "$ua" "$ub" >>"$tmp/pg2"
    stop "pa$run"
    stop "pb$run"
    run=$((run + 1))
done
sq=$(median <"$tmp/sqlite")
p1=$(median <"$tmp/pg1")
p2=$(median <"$tmp/pg2")
stmts=$(cut -d' ' -f1 "$tmp/cost" | median)
xacts=$(cut -d' ' -f2 "$tmp/cost" | median)
walb=$(cut -d' ' -f3 "$tmp/cost" | median)
pgv=$("$PG_BIN/postgres" --version | awk '{ print $3 }')
cat >"$OUT/scale.json" <<J
{"part": "scale", "date": "$(date -u +%Y-%m-%dT%H:%M:%SZ)", "writers": $WRITERS, "seconds": $SECS, "runs": $RUNS,
 "postgresql": "$pgv", "sqlite_msgs_per_s": $sq, "pg_one_node_msgs_per_s": $p1, "pg_two_nodes_msgs_per_s": $p2,
 "pg_statements_per_msg": $stmts, "pg_commits_per_msg": $xacts, "pg_wal_bytes_per_msg": $walb, "targets": []}
J
cat >"$OUT/scale.md" <<M
## Scale-out: SQLite, PostgreSQL, two nodes

\`bench/scale.sh\`: $WRITERS writers of \`tests/load_client\` (each its own conversation, one customer message a request with a \`client_id\`, the next sent when the previous is acknowledged; the rules' bot answers, misses and hands off as it would) for $SECS s, median of $RUNS runs, in the same pass: one node on its SQLite file, one node on a throwaway PostgreSQL $pgv on loopback, and two nodes on one PostgreSQL database ($((WRITERS / 2)) writers on each).

| store | nodes | acknowledged messages/s | vs SQLite |
| --- | ---: | ---: | ---: |
| SQLite (\`--data\`) | 1 | $(fmt "$sq") | 1.00 |
| PostgreSQL (\`--store\`) | 1 | $(fmt "$p1") | $(ratio "$p1" "$sq" 2) |
| PostgreSQL (\`--store\`) | 2 | $(fmt "$p2") | $(ratio "$p2" "$sq" 2) |

What one customer message cost PostgreSQL (one node; pg_stat_statements, pg_stat_database, the WAL position): $stmts statements, each one round trip (the turn's reads and writes, and its share of the group's BEGIN, savepoints, NOTIFY and COMMIT), $xacts of the writer's commits (group commit: $(ratio 1 "$xacts" 1) messages per transaction) and $(fmt "$walb") bytes of WAL.
M
cat "$OUT/scale.md"
