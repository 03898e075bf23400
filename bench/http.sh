#!/bin/sh
# http.sh — messages/s for POST /v1/conversations/{id}/messages on loopback:
# kefu serve (real engine, fresh SQLite file, --rate-limit 0, logs at warn)
# against bare_mhd, a libmicrohttpd server that does nothing, in the same
# run. Usage: bench/http.sh [SECONDS] [CONNECTIONS] [CONVERSATIONS]
# Needs wrk (apt-get install wrk). Bounded: every wrk run lasts SECONDS.
set -eu
BUILD="${BUILD:-build}"
secs="${1:-10}"
conns="${2:-32}"
nconv="${3:-256}"
tmp=$(mktemp -d)
kpid="" bpid=""
trap '[ -n "$kpid" ] && kill "$kpid" 2>/dev/null; [ -n "$bpid" ] && kill "$bpid" 2>/dev/null; rm -rf "$tmp"' EXIT

KEFU_LOG_LEVEL=warn "$BUILD/kefu" serve --listen 127.0.0.1:0 --data "$tmp/data" --rate-limit 0 \
    >"$tmp/out" 2>"$tmp/log" &
kpid=$!
i=0
while [ $i -lt 100 ] && ! grep -q "serving on" "$tmp/out" 2>/dev/null; do sleep 0.1; i=$((i + 1)); done
url=$(sed -n 's/^kefu: serving on //p' "$tmp/out")
[ -n "$url" ] || { cat "$tmp/log" >&2; exit 1; }
k=0
while [ $k -lt "$nconv" ]; do
    curl -s -X POST -H 'Content-Type: application/json' \
        -d "{\"channel\":\"web\",\"customer\":{\"id\":\"bench-$k\"}}" "$url/v1/conversations" |
        jq -r '"\(.id) \(.token)"' >>"$tmp/convs"
    k=$((k + 1))
done
echo "kefu serve: $nconv conversations, $conns connections, $secs s, $(nproc) cores"
wrk -t2 -c"$conns" -d"${secs}s" --latency -s bench/post_message.lua "$url" -- "$tmp/convs" | tee "$tmp/wrk"
grep -q 'Non-2xx' "$tmp/wrk" && echo "WARNING: some requests failed" >&2
kill "$kpid"
wait "$kpid" || true
kpid=""

"$BUILD/bench/bare_mhd" 18089 >/dev/null &
bpid=$!
sleep 0.3
echo "bare libmicrohttpd, same script:"
wrk -t2 -c"$conns" -d"${secs}s" --latency -s bench/post_message.lua http://127.0.0.1:18089 -- "$tmp/convs" |
    tee "$tmp/bare"
kr=$(sed -n 's/^Requests\/sec: *//p' "$tmp/wrk")
br=$(sed -n 's/^Requests\/sec: *//p' "$tmp/bare")
echo "kefu $kr messages/s; bare $br requests/s; ratio $(echo "$kr $br" | awk '{printf "%.3f", $1 / $2}')"
