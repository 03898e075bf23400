#!/bin/sh
# cpu.sh — the server's CPU time per message (user + system, from
# /proc/PID/stat around one bounded wrk run), the measure the HTTP notes
# compare between rounds: unlike req/s it does not move with the disk's
# flushes, though it still moves with the other load on a shared machine.
#   bench/cpu.sh [rule|article] KEFU...
# For each kefu binary given, alternated RUNS times: a fresh server pinned
# to core 0 on a fresh SQLite file, 1,024 conversations, then SECS s of
# wrk on core 1 (CONNS connections). Prints one line per binary: the CPU
# µs per message of each run and the medians of the total, user and system. Servers listen on
# 127.0.0.1 only and are stopped by pid. Environment: SECS (5), RUNS (3), CONNS (128).
set -eu
cd "$(dirname "$0")/.."
. bench/lib.sh
target=$1
shift
SECS=${SECS:-5}
RUNS=${RUNS:-3}
CONNS=${CONNS:-128}
case "$target" in
rule) text="how long does delivery take" src=rule ;;
article) text="加急快递收费吗" src=kb ;;
*) echo "bench: unknown target '$target' (rule or article)" >&2; exit 2 ;;
esac
tmp=$(mktemp -d)
spid=""
stop() {
    [ -n "$spid" ] || return 0
    kill "$spid" 2>/dev/null || true
    wait "$spid" 2>/dev/null || true
    spid=""
}
trap 'stop; rm -rf "$tmp"' EXIT INT TERM
ticks=$(getconf CLK_TCK)
cpu_ticks() { awk '{ print $14, $15 }' "/proc/$1/stat"; }

run_one() { # KEFU: prints CPU µs per message, then its user and system parts
    rm -rf "$tmp/data" "$tmp/out"
    KEFU_LOG_LEVEL=warn taskset -c 0 "$1" serve --listen 127.0.0.1:0 --data "$tmp/data" --rate-limit 0 \
        --corpus corpus >"$tmp/out" 2>"$tmp/log" &
    spid=$!
    i=0
    while [ $i -lt 300 ] && ! grep -q "serving on" "$tmp/out" 2>/dev/null; do sleep 0.1; i=$((i + 1)); done
    url=$(sed -n 's/^kefu: serving on //p' "$tmp/out")
    [ -n "$url" ] || { cat "$tmp/log" >&2; exit 1; }
    rm -f "$tmp"/convs*
    taskset -c 1 wrk -t2 -c16 -d2s -s bench/create.lua "$url" -- "$tmp/convs.part" 512 >/dev/null
    cat "$tmp"/convs.part.* >"$tmp/convs"
    c0=$(cpu_ticks "$spid")
    taskset -c 1 wrk -t1 -c"$CONNS" -d"${SECS}s" --timeout 10s -s bench/post_message.lua "$url" -- "$tmp/convs" \
        "$text" "$src" >"$tmp/wrk.txt"
    c1=$(cpu_ticks "$spid")
    n=$(sed -n 's/^RESULT //p' "$tmp/wrk.txt" | jq -r '.requests')
    stop
    echo "$c0 $c1" | awk -v t="$ticks" -v n="$n" '{ u = ($3 - $1) / t * 1e6 / n; s = ($4 - $2) / t * 1e6 / n
        printf "%.1f %.1f %.1f\n", u + s, u, s }'
}

for k in $(seq 1 "$RUNS"); do
    for b in "$@"; do
        run_one "$b" >>"$tmp/$(echo "$b" | tr '/' '_')"
    done
done
for b in "$@"; do
    f="$tmp/$(echo "$b" | tr '/' '_')"
    echo "$b: $target, CPU µs per message: $(cut -d' ' -f1 "$f" | tr '\n' ' ')(median $(cut -d' ' -f1 "$f" | median);" \
        "user $(cut -d' ' -f2 "$f" | median), system $(cut -d' ' -f3 "$f" | median))"
done
