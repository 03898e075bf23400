#!/bin/sh
# soak.sh — steady mixed load for SOAK_SECONDS (default 600): customer
# threads open conversations, ask, poll, ask for a person and rate; an
# agent claims, reads the context, replies and resolves (load_client
# soak, bounded by a pause between requests). The server's RSS and open
# file descriptors are sampled every SOAK_SAMPLE seconds from /proc; the
# growth from the first sample after the warm-up (a tenth of the run) to
# the last is reported and written to $BUILD/soak.txt. Prints "ok NAME" /
# "not ok NAME". Only 127.0.0.1; the server is stopped by its pid.
set -u
BUILD="${BUILD:-build}"
KEFU="${KEFU:-$BUILD/kefu}"
CLIENT="$BUILD/tests/load_client"
SECONDS_="${SOAK_SECONDS:-600}"
SAMPLE="${SOAK_SAMPLE:-10}"
CUSTOMERS="${SOAK_CUSTOMERS:-4}"
PAUSE="${SOAK_PAUSE_MS:-50}"
tmp=$(mktemp -d)
pid=""
cpid=""
cleanup() {
    [ -n "$cpid" ] && kill "$cpid" 2>/dev/null
    [ -n "$pid" ] && kill "$pid" 2>/dev/null
    [ -n "${KEEP:-}" ] && echo "kept $tmp" || rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

ok() { echo "ok $1"; }
no() { echo "not ok $1"; [ $# -gt 1 ] && printf '  %s\n' "$2"; }

mkdir -p "$tmp/rules" "$tmp/data"
cp rules/*.rules "$tmp/rules/"
[ -d corpus ] && cp -r corpus "$tmp/corpus" || mkdir -p "$tmp/corpus"
TOKEN=tok-soak-agent-0123456789
(KEFU_AGENT_TOKENS="sam:$TOKEN:*:50" exec "$KEFU" serve --listen 127.0.0.1:0 --data "$tmp/data" \
    --rules "$tmp/rules" --corpus "$tmp/corpus" --rate-limit 0 >"$tmp/out" 2>"$tmp/log") &
pid=$!
i=0
while [ $i -lt 200 ] && kill -0 "$pid" 2>/dev/null && ! grep -q "serving on" "$tmp/out" 2>/dev/null; do sleep 0.05; i=$((i + 1)); done
URL=$(sed -n 's/^kefu: serving on //p' "$tmp/out")
[ -z "$URL" ] && { no soak-start "$(cat "$tmp/log")"; exit 0; }

sample() { # seconds rss_kb fds
    rss=$(sed -n 's/^VmRSS:[^0-9]*\([0-9]*\).*/\1/p' "/proc/$pid/status" 2>/dev/null)
    fds=$(ls "/proc/$pid/fd" 2>/dev/null | wc -l)
    echo "$1 ${rss:-0} $fds"
}

"$CLIENT" soak "$URL" "$SECONDS_" "$TOKEN" "$PAUSE" "$CUSTOMERS" >"$tmp/client.out" 2>"$tmp/client.err" &
cpid=$!
t=0
: >"$tmp/samples"
while kill -0 "$cpid" 2>/dev/null; do
    sample "$t" >>"$tmp/samples"
    sleep "$SAMPLE"
    t=$((t + SAMPLE))
done
wait "$cpid"
st=$?
cpid=""
sample "$t" >>"$tmp/samples"
alive=0
kill -0 "$pid" 2>/dev/null && alive=1
kill "$pid"
wait "$pid"
rc=$?
pid=""

warm=$((SECONDS_ / 10))
fig=$(awk -v warm="$warm" '
    $1 >= warm && !have { t0 = $1; r0 = $2; f0 = $3; have = 1 }
    { t1 = $1; r1 = $2; f1 = $3; if ($2 > rmax) rmax = $2 }
    END { printf "rss %d kB at %ds -> %d kB at %ds (%+.1f%%, peak %d kB), fds %d -> %d (%+d)",
          r0, t0, r1, t1, r0 ? (r1 - r0) * 100.0 / r0 : 0, rmax, f0, f1, f1 - f0 }' "$tmp/samples")
load=$(cat "$tmp/client.out")
echo "# soak: ${SECONDS_}s, $load; $fig"
{
    echo "soak ${SECONDS_}s, $CUSTOMERS customers + 1 agent, pause ${PAUSE} ms"
    echo "$load"
    echo "$fig"
    echo "samples (seconds rss_kB fds):"
    cat "$tmp/samples"
} >"$BUILD/soak.txt"
[ "$st" -eq 0 ] && ok soak-no-errors || no soak-no-errors "$(head -5 "$tmp/client.err")"
[ "$alive" -eq 1 ] && [ "$rc" -eq 0 ] && ok soak-server-alive-and-clean-exit || no soak-server-alive-and-clean-exit "alive=$alive exit=$rc"
# flat: file descriptors back where they were (connections come and go:
# a few either way), memory within a quarter of the post-warm-up figure
awk -v warm="$warm" '$1 >= warm && !have { r0 = $2; f0 = $3; have = 1 } { r1 = $2; f1 = $3 }
    END { exit !(f1 - f0 <= 4 && r1 <= r0 * 1.25) }' "$tmp/samples" && ok soak-flat || no soak-flat "$fig"
grep -q '"level":"error"' "$tmp/log" && no soak-log-no-errors "$(grep '"level":"error"' "$tmp/log" | head -3)" ||
    ok soak-log-no-errors
