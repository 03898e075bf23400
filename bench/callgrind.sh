#!/bin/sh
# callgrind.sh — instructions per message of POST /v1/conversations/{id}/messages,
# counted by valgrind's callgrind on a bounded loopback load. Instruction
# counts do not depend on what else the machine runs, so two builds can be
# compared on a shared, noisy machine where timings move by ±20%.
#   bench/callgrind.sh [rule|article|handoff] [OUTFILE]
# Starts `kefu serve` under callgrind with collection off, makes 64
# conversations, warms up with one message each, turns collection on,
# sends messages for SECS seconds (16 keep-alive connections, closed loop, wrk), turns
# it off, dumps and stops the server by pid. Prints one line: the target,
# the messages answered, instructions per message; OUTFILE (default
# bench/out/callgrind.<target>.out) keeps the profile for callgrind_annotate
# or bench/flame.sh. Environment: BUILD (build), SECS (30: the load runs this long, whatever it reaches).
set -eu
cd "$(dirname "$0")/.."
. bench/lib.sh
target="${1:-rule}"
out="${2:-$OUT/callgrind.$target.out}"
SECS=${SECS:-30}
case "$target" in
rule) text="how long does delivery take" src=rule ;;
article) text="加急快递收费吗" src=kb ;;
handoff) text="转人工" src=handoff ;;
*) echo "bench: unknown target '$target' (rule, article or handoff)" >&2; exit 2 ;;
esac
command -v valgrind >/dev/null || { echo "bench: valgrind is missing" >&2; exit 1; }

tmp=$(mktemp -d)
spid=""
stop() {
    if [ -n "$spid" ]; then
        kill "$spid" 2>/dev/null || true
        i=0
        while kill -0 "$spid" 2>/dev/null && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
        kill -9 "$spid" 2>/dev/null || true
        wait "$spid" 2>/dev/null || true
        spid=""
    fi
}
trap 'stop; rm -rf "$tmp"' EXIT INT TERM

KEFU_LOG_LEVEL=warn valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$tmp/cg.%p" \
    "$BUILD/kefu" serve --listen 127.0.0.1:0 --data "$tmp/data" --rate-limit 0 --corpus corpus \
    ${KEFU_ARGS:-} >"$tmp/out" 2>"$tmp/log" &
spid=$!
i=0
while [ $i -lt 1200 ] && ! grep -q "serving on" "$tmp/out" 2>/dev/null; do sleep 0.1; i=$((i + 1)); done
url=$(sed -n 's/^kefu: serving on //p' "$tmp/out")
[ -n "$url" ] || { cat "$tmp/log" >&2; echo "bench: kefu serve did not start" >&2; exit 1; }

# conversations, made one by one (a handoff uses each once)
n=64
[ "$target" = handoff ] && n=${HANDOFFS:-3000}
k=0
: >"$tmp/convs"
while [ $k -lt $n ]; do
    curl -s -X POST -H 'Content-Type: application/json' \
        -d "{\"channel\":\"web\",\"customer\":{\"id\":\"cg-$k\"}}" "$url/v1/conversations" |
        jq -r '"\(.id) \(.token)"' >>"$tmp/convs"
    k=$((k + 1))
done
# warm-up: one message on each of the first 64 (a handoff: on 64 it will not use again)
head -64 "$tmp/convs" | while read -r id tok; do
    curl -s -X POST -H 'Content-Type: application/json' -H "Authorization: Bearer $tok" \
        -d "{\"text\":\"$text\"}" "$url/v1/conversations/$id/messages" >/dev/null
done
once=""
[ "$target" = handoff ] && once="once 1" && tail -n +65 "$tmp/convs" >"$tmp/c2" && mv "$tmp/c2" "$tmp/convs"

callgrind_control -i on "$spid" >/dev/null
wrk -t1 -c16 -d"${SECS}s" --timeout 30s -s bench/post_message.lua "$url" -- "$tmp/convs" "$text" "$src" \
    $once >"$tmp/wrk.txt"
callgrind_control -i off "$spid" >/dev/null
sleep 1
answered=$(sed -n 's/^RESULT //p' "$tmp/wrk.txt" | jq -r '.requests')
wrong=$(sed -n 's/^RESULT //p' "$tmp/wrk.txt" | jq -r '.wrong_source + .non2xx')
callgrind_control -d "$spid" >/dev/null
stop
f=$(ls -S "$tmp"/cg.* | head -1)
mkdir -p "$(dirname "$out")"
cp "$f" "$out"
ir=$(callgrind_annotate "$out" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1; exit }')
echo "$target: $answered messages ($wrong wrong), $(awk -v a="$ir" -v n="$answered" 'BEGIN { printf "%d", a / n }') instructions per message; profile in $out"
