#!/bin/sh
# memory.sh — part "memory": resident memory of `kefu serve` with a large rule set
# and corpus, the time to compile and swap 10,000 intents, and the requests that
# fail while the rules are reloaded under load (there must be none).
# Three servers in turn, each on 127.0.0.1 with a fresh data directory:
#   base     the bundled rules/ and corpus/
#   intents  the shared workload's 10,000 intents, the bundled corpus
#   full     10,000 intents and 100,000 generated articles (bench/kb.sh's English corpus)
# For each: start-up time, VmRSS once serving and after LOAD_S seconds of wrk, VmHWM.
# On "full": RELOADS sequential POST /v1/admin/reload (curl's total time, median),
# then wrk for LOAD_S*4 seconds while the rules are reloaded RELOADS times over HTTP
# and twice with SIGHUP; every non-2xx answer and socket error counts as failed.
# Writes bench/out/memory.json and .md, docs/perf-memory.png.
# usage: bench/memory.sh   (env: BUILD, WORKLOAD, ARTICLES=100000, LOAD_S=3, RELOADS=6)
set -eu
cd "$(dirname "$0")/.."
. bench/lib.sh
ARTICLES=${ARTICLES:-100000}
LOAD_S=${LOAD_S:-3}
RELOADS=${RELOADS:-6}
kefu=$BUILD/kefu
tmp=$(mktemp -d)
pid=""
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
for t in "$kefu" "$BUILD/bench/gen_corpus"; do
    [ -x "$t" ] || { echo "memory.sh: $t is missing (make bench-memory builds it)" >&2; exit 1; }
done
command -v wrk >/dev/null || { echo "memory.sh: wrk is missing (make bench-deps)" >&2; exit 1; }
[ -d "$WORKLOAD/N10000" ] || { echo "memory.sh: no workload in $WORKLOAD" >&2; exit 1; }

wl=$BUILD/bench/wl/N10000
bench/workload-to-rules "$WORKLOAD/N10000" "$wl"
awk -F'\t' '!/^#/ && $2 == "hit" { print $6 }' "$WORKLOAD/N10000/messages.tsv" > "$tmp/texts"
# the kb part's English corpus and, when it left one, its imported database
# (serve then finds every article unchanged instead of importing 100,000 files)
corpus=$(gen_corpus en "$ARTICLES")
reused=false
[ -f "$corpus.db" ] && reused=true

export KEFU_ADMIN_TOKEN=bench-admin-token
# start NAME RULES CORPUS: serve in the background; sets pid and url
start() {
    mkdir -p "$tmp/$1/data"
    [ "$1" = full ] && [ $reused = true ] && cp "$corpus.db" "$tmp/$1/data/kb.db"
    t0=$(date +%s.%N)
    KEFU_LOG_LEVEL=warn "$kefu" serve --listen 127.0.0.1:0 --data "$tmp/$1/data" --rules "$2" \
        --corpus "$3" --rate-limit 0 --miss-limit 100 >"$tmp/$1/out" 2>"$tmp/$1/log" &
    pid=$!
    i=0
    while [ $i -lt 6000 ] && ! grep -q "serving on" "$tmp/$1/out" 2>/dev/null; do
        kill -0 "$pid" 2>/dev/null || { cat "$tmp/$1/log" >&2; exit 1; }
        sleep 0.1
        i=$((i + 1))
    done
    url=$(sed -n 's/^kefu: serving on //p' "$tmp/$1/out")
    [ -n "$url" ] || { echo "memory.sh: $1 did not start" >&2; cat "$tmp/$1/log" >&2; exit 1; }
    awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f\n", b - a }' > "$tmp/$1/startup"
    k=0
    : > "$tmp/$1/convs"
    while [ $k -lt 64 ]; do
        curl -sf -X POST -H 'Content-Type: application/json' \
            -d "{\"channel\":\"web\",\"customer\":{\"id\":\"bench-$k\"}}" "$url/v1/conversations" |
            jq -r '"\(.id) \(.token)"' >>"$tmp/$1/convs"
        k=$((k + 1))
    done
}
stop() {
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    pid=""
}
status_kib() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }
# load NAME SECONDS TEXTS: wrk on the message endpoint; output in $tmp/NAME/wrk
load() {
    # a request slower than wrk's default 2 s would count as a socket error: allow 30 s, so
    # that only refused, reset or non-2xx requests count as failed (the slowest is reported)
    wrk -t1 -c16 -d"${2}s" --timeout 30s --latency -s bench/reload_message.lua "$url" -- "$tmp/$1/convs" "$3" \
        > "$tmp/$1/wrk" 2>&1
}
wrk_field() { # wrk_field NAME: requests, non-2xx, socket errors, req/s, slowest (ms)
    awk '/requests in/ { r = $1 } /Non-2xx/ { b = $NF }
        /Socket errors/ { gsub(/,/, ""); s = $4 + $6 + $8 + $10 }
        /^ *Latency / && $2 ~ /^[0-9]/ { m = $4; if (m ~ /ms$/) m += 0; else if (m ~ /us$/) m = m / 1000; else if (m ~ /s$/) m = m * 1000 }
        /^Requests\/sec/ { q = $2 } END { printf "%d %d %d %.0f %.0f\n", r, b, s, q, m }' "$tmp/$1/wrk"
}

: > "$tmp/rows"
for cfg in base intents full; do
    case $cfg in
    base) start base rules corpus; texts=$tmp/base/texts
        sed -n 's/^[[:space:]]*example[[:space:]]\{1,\}//p' rules/*.rules > "$texts" ;;
    intents) start intents "$wl" corpus; texts=$tmp/texts ;;
    full) start full "$wl" "$corpus"; texts=$tmp/texts ;;
    esac
    rss0=$(status_kib "$pid" VmRSS)
    load "$cfg" "$LOAD_S" "$texts"
    set -- $(wrk_field "$cfg")
    rss1=$(status_kib "$pid" VmRSS)
    anon=$(status_kib "$pid" RssAnon)
    file=$(status_kib "$pid" RssFile)
    hwm=$(status_kib "$pid" VmHWM)
    intents=$(curl -sf "$url/healthz" | jq -r '.rules.intents')
    articles=$(curl -sf "$url/healthz" | jq -r '.kb.articles')
    echo "memory: $cfg: $intents intents, $articles articles, RSS $rss0 -> $rss1 KiB (peak $hwm)" >&2
    printf '{"config":"%s","intents":%s,"articles":%s,"startup_s":%s,"rss_kib":%s,"rss_after_load_kib":%s,"rss_anon_kib":%s,"rss_file_kib":%s,"hwm_kib":%s,"load_requests":%s,"load_failed":%s}\n' \
        "$cfg" "$intents" "$articles" "$(cat "$tmp/$cfg/startup")" "$rss0" "$rss1" "$anon" "$file" "$hwm" "$1" \
        $(($2 + $3)) >> "$tmp/rows"
    [ $cfg = full ] || stop
done

# reloads of the 10,000 intents, one after the other, nothing else running
reload() {
    curl -s -o "$tmp/reload.out" -w '%{http_code} %{time_total}\n' -X POST \
        -H "Authorization: Bearer $KEFU_ADMIN_TOKEN" "$url/v1/admin/reload"
}
: > "$tmp/quiet"
i=0
while [ $i -lt "$RELOADS" ]; do
    reload >> "$tmp/quiet"
    i=$((i + 1))
done
# and under load: HTTP reloads and SIGHUPs while wrk posts messages
mkdir -p "$tmp/full_load"
cp "$tmp/full/convs" "$tmp/full_load/convs"
load full_load $((LOAD_S * 4)) "$tmp/texts" &
wpid=$!
sleep 1
: > "$tmp/busy"
i=0
while [ $i -lt "$RELOADS" ]; do
    reload >> "$tmp/busy"
    [ $i -eq 1 ] || [ $i -eq 3 ] && kill -HUP "$pid"
    sleep 0.5
    i=$((i + 1))
done
wait "$wpid" || true
set -- $(wrk_field full_load)
busy_req=$1 busy_failed=$(($2 + $3)) busy_rps=$4 busy_max_ms=$5
cp "$tmp/full_load/wrk" "$OUT/memory-wrk.txt"
bad_reloads=$(awk '$1 != 200' "$tmp/quiet" "$tmp/busy" | wc -l)
intents_after=$(curl -sf "$url/healthz" | jq -r '.rules.intents')
stop

# the reload's own cost, in process: compile 10,000 intents (router_bench's load time)
compile_s=null
if [ -x "$BUILD/bench/router_bench" ]; then
    compile_s=$(for r in 1 2 3; do "$BUILD/bench/router_bench" "$wl" /dev/null 1 | jq -r .load_s; done | median)
fi

q_med=$(awk '{ print $2 }' "$tmp/quiet" | median)
q_max=$(awk '{ print $2 }' "$tmp/quiet" | sort -g | tail -1)
b_med=$(awk '{ print $2 }' "$tmp/busy" | median)
b_max=$(awk '{ print $2 }' "$tmp/busy" | sort -g | tail -1)
jq -s --argjson qm "$q_med" --argjson qx "$q_max" --argjson bm "$b_med" --argjson bx "$b_max" \
    --argjson br "$busy_req" --argjson bf "$busy_failed" --argjson brps "$busy_rps" --argjson bmax "$busy_max_ms" \
    --argjson bad "$bad_reloads" --argjson n "$RELOADS" --argjson c "$compile_s" --argjson after "$intents_after" \
    --argjson reused "$reused" '
    { servers: ., compile_10k_s: $c, kb_db_reused: $reused,
      reload_quiet_s: { median: $qm, max: $qx, count: $n },
      reload_under_load_s: { median: $bm, max: $bx, count: $n, sighup: 2 },
      under_load: { requests: $br, failed: $bf, req_per_s: $brps, slowest_ms: $bmax, reloads_refused: $bad, intents_after: $after },
      targets: [
        { what: "reload of 10,000 intents (POST /v1/admin/reload, median)", target: "<= 1 s",
          value: ($qm * 100 | round / 100), met: ($qm <= 1) },
        { what: "failed requests while reloading under load", target: "0",
          value: ($bf + $bad), met: ($bf + $bad == 0) } ] }' "$tmp/rows" > "$OUT/memory.json"

j=$OUT/memory.json
mib() { awk -v k="$1" 'BEGIN { printf "%.0f", k / 1024 }'; }
{
    echo "## Memory and reload"
    echo
    echo "\`make bench-memory\` (\`bench/memory.sh\`) starts \`kefu serve\` three times on 127.0.0.1, each with a"
    echo "fresh data directory, and reads \`/proc/PID/status\` once it serves and after $LOAD_S s of wrk posting"
    echo "messages (16 connections, durable acknowledgement as always). The 10,000 intents are the shared"
    echo "workload's (\`bench/workload-to-rules\`); the 100,000 articles are the English corpus of the kb part"
    if [ $reused = true ]; then
        echo "(\`bench/gen_corpus\`), whose database the kb part imported, so start-up only checks every file."
    else
        echo "(\`bench/gen_corpus\`), imported at start-up."
    fi
    echo
    echo "| server | intents | articles | start-up | RSS serving | RSS after load | of which heap (anon) | of which mapped files | peak RSS |"
    echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    jq -r '.servers[] | [.config, .intents, .articles, .startup_s, .rss_kib, .rss_after_load_kib, .rss_anon_kib,
            .rss_file_kib, .hwm_kib] | @tsv' "$j" |
        while IFS="$(printf '\t')" read -r c i a s r0 r1 an fi h; do
            echo "| $c | $(fmt "$i") | $(fmt "$a") | $s s | $(mib "$r0") MiB | $(mib "$r1") MiB | $(mib "$an") MiB | $(mib "$fi") MiB | $(mib "$h") MiB |"
        done
    echo
    echo "Mapped files are the binary, its libraries and what was read of the memory-mapped knowledge base;"
    echo "the heap is everything the process allocated (rule sets, SQLite's page caches, buffers)."
    echo
    echo "Reloading the 10,000 intents (\`POST /v1/admin/reload\`: read and compile every file, build the"
    echo "example index, swap the rule set under a lock; requests in flight keep the set they started with):"
    echo
    echo "| | median | max | reloads |"
    echo "| --- | --- | --- | --- |"
    echo "| idle server | $(jq -r .reload_quiet_s.median "$j") s | $(jq -r .reload_quiet_s.max "$j") s | $RELOADS |"
    echo "| under load | $(jq -r .reload_under_load_s.median "$j") s | $(jq -r .reload_under_load_s.max "$j") s | $RELOADS + 2 SIGHUP |"
    echo "| compile alone, in process (\`router_bench\` load time) | $(jq -r .compile_10k_s "$j") s | | 3 |"
    echo
    echo "Under load: $(fmt "$(jq -r .under_load.requests "$j")") messages posted in $((LOAD_S * 4)) s ($(fmt "$(jq -r .under_load.req_per_s "$j")")/s) while the rules were"
    echo "reloaded $((RELOADS + 2)) times; **$(jq -r .under_load.failed "$j") failed** (non-2xx answers, refused or reset connections;"
    echo "wrk waits up to 30 s for an answer; the slowest took $(jq -r .under_load.slowest_ms "$j") ms), $(jq -r .under_load.reloads_refused "$j") reloads refused,"
    echo "$(fmt "$(jq -r .under_load.intents_after "$j")") intents served afterwards."
    echo
    echo "![resident memory per server](perf-memory.png)"
} > "$OUT/memory.md"

jq -r '.servers[] | [.config, .rss_kib / 1024, .rss_after_load_kib / 1024, .hwm_kib / 1024] | @tsv' "$j" > "$tmp/plot.tsv"
{
    plot_head docs/perf-memory.png
    cat <<PLOT
set title "kefu serve resident memory"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set ylabel "MiB"
set yrange [0:*]
set xtics ("bundled rules + corpus" 0, "10k intents + bundled corpus" 1, "10k intents + 100k articles" 2)
plot "$tmp/plot.tsv" using 2 title "serving", "" using 3 title "after load", "" using 4 title "peak"
PLOT
} | plot
echo "memory: wrote $OUT/memory.json, $OUT/memory.md, docs/perf-memory.png" >&2
