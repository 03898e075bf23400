#!/bin/sh
# http.sh — kefu over HTTP against a bare libmicrohttpd server, on loopback.
#   bench/http.sh http         POST /v1/conversations/{id}/messages answered by
#                              a rule, by an article and by a handoff, against
#                              bench/ceiling.c; server pinned to core 0 and wrk
#                              to core 1, then unpinned; then the latency at half
#                              of kefu's rate with bench/rate_client.c
#   bench/http.sh durability   the rule message with group commit against one
#                              commit per message (both synchronous=FULL)
# Every figure is the median of RUNS runs; ratios are taken within the same
# pass. Writes bench/out/PART.json and PART.md and draws docs/perf-PART*.png.
# Bounded: every load run lasts SECS seconds (creating conversations at most
# ten 2 s runs), servers listen on 127.0.0.1 only and are stopped by pid on exit.
# With PostgreSQL installed (scripts/deps.sh), the http part also runs the
# rule, article and handoff against kefu on a throwaway PostgreSQL on
# loopback (tests/pg_lib.sh; a fresh database for every server start,
# pinned to the server's core with it), reported beside SQLite's.
# Environment: BUILD (build), SECS (4), RUNS (3), CONNS (128), BENCH_PG
# (1; 0 leaves PostgreSQL out).
set -eu
cd "$(dirname "$0")/.."
. bench/lib.sh
part="${1:-http}"
SECS=${SECS:-4}
RUNS=${RUNS:-3}
CONNS=${CONNS:-128}
RULE_TEXT="how long does delivery take"
ARTICLE_TEXT="加急快递收费吗"
HANDOFF_TEXT="转人工"

# wrk and gnuplot come from Debian; install them when missing
need() {
    command -v "$1" >/dev/null 2>&1 && return 0
    echo "bench: $1 is missing; installing $2" >&2
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$2" >&2
}
need wrk wrk
need gnuplot gnuplot-nox
need jq jq
[ "$(nproc)" -ge 2 ] || echo "bench: one core only; pinned runs share it" >&2

tmp=$(mktemp -d)
chmod 711 "$tmp" # the postgres user reaches its data directory inside
spid=""
BENCH_PG=${BENCH_PG:-1}
. tests/pg_lib.sh
pgdb=0
stop_server() {
    if [ -n "$spid" ]; then
        kill "$spid" 2>/dev/null || true
        i=0
        while kill -0 "$spid" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
        kill -9 "$spid" 2>/dev/null || true
        wait "$spid" 2>/dev/null || true
        spid=""
    fi
}
trap 'stop_server; pg_stop; rm -rf "$tmp"' EXIT INT TERM

# pg_up: the throwaway PostgreSQL for the http part (BENCH_PG=1); turns BENCH_PG off when none can run
pg_up() {
    [ "$BENCH_PG" = 1 ] || return 0
    pg_start "$tmp/pg" && return 0
    echo "bench: PostgreSQL left out: ${PG_SKIP:-$PG_ERR}" >&2
    BENCH_PG=0
}

# pg_pin CPUS: the PostgreSQL server's processes (the postmaster and its children) on CPUS
pg_pin() {
    for p in $PG_PID $(pgrep -P "$PG_PID"); do taskset -a -p -c "$1" "$p" >/dev/null 2>&1 || true; done
}

# pg_kefu: kefu on a fresh database of our PostgreSQL, the server's processes pinned as kefu is
pg_kefu() {
    pgdb=$((pgdb + 1))
    pg_sql postgres "CREATE DATABASE bench$pgdb" >/dev/null
    if [ -n "$spin" ]; then pg_pin 0; else pg_pin 0-$(($(nproc) - 1)); fi
    export KEFU_STORE="$PG_URI/bench$pgdb"
    start_kefu
    unset KEFU_STORE
}

# server_pin / client_pin: the taskset prefixes of the current mode
set_mode() {
    if [ "$1" = pinned ]; then
        spin="taskset -c 0"
        cpin="taskset -c 1"
        wthreads=1
    else
        spin=""
        cpin=""
        wthreads=2
    fi
}

# start_kefu [ARGS...]: a fresh data directory; sets url and port
start_kefu() {
    rm -rf "$tmp/data" "$tmp/out"
    # shellcheck disable=SC2086
    KEFU_LOG_LEVEL=warn $spin "$BUILD/kefu" serve --listen 127.0.0.1:0 --data "$tmp/data" --rate-limit 0 \
        --corpus corpus "$@" >"$tmp/out" 2>"$tmp/log" &
    spid=$!
    i=0
    while [ $i -lt 300 ] && ! grep -q "serving on" "$tmp/out" 2>/dev/null; do sleep 0.1; i=$((i + 1)); done
    url=$(sed -n 's/^kefu: serving on //p' "$tmp/out")
    [ -n "$url" ] || { cat "$tmp/log" >&2; echo "bench: kefu serve did not start" >&2; exit 1; }
    port=${url##*:}
}

start_ceiling() {
    port=$((20000 + $$ % 20000))
    rm -f "$tmp/out"
    # shellcheck disable=SC2086
    $spin "$BUILD/bench/ceiling" "$port" >"$tmp/out" 2>"$tmp/log" &
    spid=$!
    i=0
    while [ $i -lt 100 ] && ! grep -q "serving on" "$tmp/out" 2>/dev/null; do sleep 0.05; i=$((i + 1)); done
    grep -q "serving on" "$tmp/out" || { cat "$tmp/log" >&2; exit 1; }
    url="http://127.0.0.1:$port"
}

# load NAME CONVFILE TEXT SOURCE [once]: one wrk run, its RESULT line appended to $tmp/NAME
load() {
    extra=""
    [ "${5:-}" = once ] && extra="once $wthreads"
    # shellcheck disable=SC2086
    $cpin wrk -t"$wthreads" -c"$CONNS" -d"${SECS}s" --timeout 10s --latency -s bench/post_message.lua "$url" \
        -- "$2" "$3" "$4" $extra >"$tmp/wrk.txt"
    r=$(sed -n 's/^RESULT //p' "$tmp/wrk.txt")
    [ -n "$r" ] || { cat "$tmp/wrk.txt" >&2; exit 1; }
    echo "$r" >>"$tmp/$1"
    if [ "$(echo "$r" | jq -r '.exhausted // 0')" != 0 ]; then
        echo "  $1: the run used up its conversations: its rate is a lower bound" >&2
    fi
    echo "  $1: $(echo "$r" | jq -r '"\(.rps | floor) req/s, p50 \(.p50_ms) ms, p99 \(.p99_ms) ms, non-2xx \(.non2xx), wrong \(.wrong_source)"')" >&2
}

# med NAME FIELD: the median of FIELD over NAME's runs
med() { jq -r ".$2" "$tmp/$1" | median; }

# check that one message gets the expected source before measuring it
probe() {
    conv=$(head -1 "$1")
    got=$(curl -s -X POST -H 'Content-Type: application/json' -H "Authorization: Bearer ${conv#* }" \
        -d "{\"text\":\"$2\"}" "$url/v1/conversations/${conv%% *}/messages" | jq -r '.reply.source')
    [ "$got" = "$3" ] || { echo "bench: '$2' was answered by '$got', not '$3'" >&2; exit 1; }
}

store_counts() { curl -s "$url/metrics" | awk '/^kefu_store_commits_total/ { c = $2 } /^kefu_store_batches_total/ { b = $2 } END { print c + 0, b + 0 }'; }

# the floor under every durable answer: one 4 KiB O_DSYNC write on the data directory's disk, in ms
fsync_ms() {
    dd if=/dev/zero of="$tmp/dsync" bs=4k count=50 oflag=dsync 2>&1 |
        awk '/copied/ { for (i = 1; i <= NF; i++) if ($i == "s,") printf "%.2f\n", $(i - 1) * 1000 / 50 }'
    rm -f "$tmp/dsync"
}

machine_json() {
    cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
    fs=$(df -T "$tmp" | awk 'NR == 2 { print $2 }')
    jq -n --arg cpu "$cpu" --arg kernel "$(uname -sr)" --arg fs "$fs" --argjson cores "$(nproc)" \
        --arg load "$(cut -d' ' -f1-3 /proc/loadavg)" --arg date "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
        --argjson fsync "$(fsync_ms)" \
        '{cpu: $cpu, cores: $cores, kernel: $kernel, data_fs: $fs, load_before: $load, date: $date, fsync_ms: $fsync}'
}

finish() {
    if [ -x bench/report.sh ]; then bench/report.sh; fi
}

# kefu_loads PREFIX: the rule, article and handoff against the kefu started, results in
# PREFIX.rule, PREFIX.article and PREFIX.handoff; stops it
kefu_loads() {
    make_convs 1024 "$tmp/convs"
    make_convs "$H" "$tmp/hconvs"
    probe "$tmp/convs" "$RULE_TEXT" rule
    probe "$tmp/convs" "$ARTICLE_TEXT" kb
    tail -n +2 "$tmp/hconvs" >"$tmp/hconvs2"
    probe "$tmp/hconvs" "$HANDOFF_TEXT" handoff
    load "$1.rule" "$tmp/convs" "$RULE_TEXT" rule
    load "$1.article" "$tmp/convs" "$ARTICLE_TEXT" kb
    load "$1.handoff" "$tmp/hconvs2" "$HANDOFF_TEXT" handoff once
    stop_server
}

# ---------------------------------------------------------------- part 3 ----
run_http() {
    # fresh conversations per handoff run, enough for SECS at the rates seen; a run that uses
    # them up is reported as exhausted (wrk divides by the whole -d: a lower bound then)
    H=${HANDOFFS:-$((SECS * 3000))}
    seq 1 1024 | awk '{ print "c" $1, "t" $1 }' >"$tmp/cconvs" # the ceiling reads no id or token
    pg_up
    for run in $(seq 1 "$RUNS"); do
        for mode in pinned unpinned; do
            set_mode "$mode"
            echo "run $run, $mode" >&2
            start_ceiling
            load "$mode.ceiling" "$tmp/cconvs" "$RULE_TEXT" rule
            stop_server
            start_kefu
            kefu_loads "$mode"
            if [ "$BENCH_PG" = 1 ]; then
                pg_kefu
                kefu_loads "pg.$mode"
            fi
        done
    done
    # latency at half of kefu's rate (pinned), open loop
    set_mode pinned
    half=$(awk -v r="$(med pinned.rule rps)" 'BEGIN { printf "%d", r / 2 }')
    half_pg=0
    [ "$BENCH_PG" = 1 ] && half_pg=$(awk -v r="$(med pg.pinned.rule rps)" 'BEGIN { printf "%d", r / 2 }')
    for run in $(seq 1 "$RUNS"); do
        if [ "$BENCH_PG" = 1 ]; then
            pg_kefu
            make_convs 1024 "$tmp/convs"
            # shellcheck disable=SC2086
            $cpin "$BUILD/bench/rate_client" "$port" "$half_pg" "$SECS" "$CONNS" "$tmp/convs" "$RULE_TEXT" >>"$tmp/half.pg"
            stop_server
            echo "  half rate $half_pg/s on PostgreSQL: $(tail -1 "$tmp/half.pg")" >&2
        fi
        start_kefu
        make_convs 1024 "$tmp/convs"
        # shellcheck disable=SC2086
        $cpin "$BUILD/bench/rate_client" "$port" "$half" "$SECS" "$CONNS" "$tmp/convs" "$RULE_TEXT" >>"$tmp/half.kefu"
        stop_server
        start_ceiling
        # shellcheck disable=SC2086
        $cpin "$BUILD/bench/rate_client" "$port" "$half" "$SECS" "$CONNS" "$tmp/cconvs" "$RULE_TEXT" >>"$tmp/half.ceiling"
        stop_server
        echo "  half rate $half/s: kefu $(tail -1 "$tmp/half.kefu")" >&2
    done
    write_http
}

# half_json FILE: the medians of rate_client's lines in FILE
half_json() {
    jq -s '{p50_ms: (map(.p50_ms) | sort | .[length / 2 | floor]), p99_ms: (map(.p99_ms) | sort | .[length / 2 | floor]), p999_ms: (map(.p999_ms) | sort | .[length / 2 | floor]), reached: (map(.reached) | sort | .[length / 2 | floor]), errors: (map(.errors) | add)}' "$1"
}

# one target's medians as JSON
target_json() {
    jq -n --argjson rps "$(med "$1" rps)" --argjson p50 "$(med "$1" p50_ms)" --argjson p99 "$(med "$1" p99_ms)" \
        --argjson p999 "$(med "$1" p999_ms)" --argjson non2xx "$(jq -s 'map(.non2xx) | add' "$tmp/$1")" \
        --argjson sock "$(jq -s 'map(.socket_errors) | add' "$tmp/$1")" \
        --argjson wrong "$(jq -s 'map(.wrong_source) | add' "$tmp/$1")" \
        --argjson runs "$(jq -s 'map(.rps | floor)' "$tmp/$1")" \
        --argjson exhausted "$(jq -s 'map(.exhausted // 0) | add' "$tmp/$1")" \
        '{rps: $rps, p50_ms: $p50, p99_ms: $p99, p999_ms: $p999, non2xx: $non2xx, socket_errors: $sock,
          wrong_source: $wrong, rps_runs: $runs, exhausted_threads: $exhausted}'
}

write_http() {
    {
        echo '{'
        echo "\"machine\": $(machine_json),"
        echo "\"config\": {\"seconds\": $SECS, \"runs\": $RUNS, \"connections\": $CONNS, \"rule_text\": \"$RULE_TEXT\", \"article_text\": \"$ARTICLE_TEXT\", \"handoff_text\": \"$HANDOFF_TEXT\"},"
        for mode in pinned unpinned; do
            echo "\"$mode\": {"
            for t in ceiling rule article handoff; do
                sep=","
                [ $t = handoff ] && sep=""
                echo "\"$t\": $(target_json "$mode.$t")$sep"
            done
            echo "},"
        done
        if [ "$BENCH_PG" = 1 ]; then
            echo "\"postgresql\": {\"version\": \"$("$PG_BIN/postgres" --version | awk '{ print $3 }')\","
            for mode in pinned unpinned; do
                echo "\"$mode\": {"
                for t in rule article handoff; do
                    sep=","
                    [ $t = handoff ] && sep=""
                    echo "\"$t\": $(target_json "pg.$mode.$t")$sep"
                done
                echo "},"
            done
            echo "\"half_rate\": {\"rate\": $half_pg, \"kefu\": $(half_json "$tmp/half.pg")}},"
        fi
        echo "\"half_rate\": {\"rate\": $half, \"kefu\": $(jq -s '{p50_ms: (map(.p50_ms) | sort | .[length / 2 | floor]), p99_ms: (map(.p99_ms) | sort | .[length / 2 | floor]), p999_ms: (map(.p999_ms) | sort | .[length / 2 | floor]), reached: (map(.reached) | sort | .[length / 2 | floor]), errors: (map(.errors) | add)}' "$tmp/half.kefu"), \"ceiling\": $(jq -s '{p50_ms: (map(.p50_ms) | sort | .[length / 2 | floor]), p99_ms: (map(.p99_ms) | sort | .[length / 2 | floor]), p999_ms: (map(.p999_ms) | sort | .[length / 2 | floor]), reached: (map(.reached) | sort | .[length / 2 | floor]), errors: (map(.errors) | add)}' "$tmp/half.ceiling")}"
        echo '}'
    } | jq '. + {ratios: {pinned: {rule: (.pinned.rule.rps / .pinned.ceiling.rps), article: (.pinned.article.rps / .pinned.ceiling.rps), handoff: (.pinned.handoff.rps / .pinned.ceiling.rps)},
                          unpinned: {rule: (.unpinned.rule.rps / .unpinned.ceiling.rps), article: (.unpinned.article.rps / .unpinned.ceiling.rps), handoff: (.unpinned.handoff.rps / .unpinned.ceiling.rps)}}}
             | if .postgresql then .postgresql.ratios = {pinned: {rule: (.postgresql.pinned.rule.rps / .pinned.ceiling.rps), article: (.postgresql.pinned.article.rps / .pinned.ceiling.rps), handoff: (.postgresql.pinned.handoff.rps / .pinned.ceiling.rps)},
                          unpinned: {rule: (.postgresql.unpinned.rule.rps / .unpinned.ceiling.rps), article: (.postgresql.unpinned.article.rps / .unpinned.ceiling.rps), handoff: (.postgresql.unpinned.handoff.rps / .unpinned.ceiling.rps)}} else . end
             | . + {targets: [
                 {what: "message endpoint (rule, pinned) / ceiling", target: ">= 0.25", value: (.ratios.pinned.rule * 1000 | round / 1000), met: (.ratios.pinned.rule >= 0.25)},
                 {what: "message endpoint (rule, unpinned) / ceiling", target: ">= 0.25", value: (.ratios.unpinned.rule * 1000 | round / 1000), met: (.ratios.unpinned.rule >= 0.25)},
                 {what: "p99 at half of the max rate (ms)", target: "<= 10", value: .half_rate.kefu.p99_ms, met: (.half_rate.kefu.p99_ms <= 10)},
                 {what: "message endpoint (article, pinned) / ceiling", target: ">= 0.15", value: (.ratios.pinned.article * 1000 | round / 1000), met: (.ratios.pinned.article >= 0.15)},
                 {what: "message endpoint (handoff, pinned) / ceiling", target: ">= 0.15", value: (.ratios.pinned.handoff * 1000 | round / 1000), met: (.ratios.pinned.handoff >= 0.15)}]}' \
        >"$OUT/http.json"
    j="$OUT/http.json"
    g() { jq -r "$1" "$j"; }
    # charts: throughput per target (log scale), latency percentiles pinned
    for t in ceiling rule article handoff; do
        printf '%s %s %s\n' "$t" "$(g ".pinned.$t.rps")" "$(g ".unpinned.$t.rps")"
    done >"$tmp/rps.dat"
    for t in ceiling rule article handoff; do
        printf '%s %s %s %s\n' "$t" "$(g ".pinned.$t.p50_ms")" "$(g ".pinned.$t.p99_ms")" "$(g ".pinned.$t.p999_ms")"
    done >"$tmp/lat.dat"
    gnuplot <<EOF || echo "bench: gnuplot failed" >&2
set terminal pngcairo size 800,450 font "sans,10" noenhanced
set output "docs/perf-http.png"
set title "POST /v1/conversations/{id}/messages: requests/s (median of $RUNS runs of ${SECS} s, $CONNS connections)"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set logscale y
set ylabel "requests/s (log scale)"
set grid ytics lc rgb "#dddddd"
set key top right
plot "$tmp/rps.dat" using 2:xtic(1) title "server on core 0, wrk on core 1", "" using 3 title "unpinned"
set output "docs/perf-http-latency.png"
set title "Latency under full load, pinned (wrk --latency; median of $RUNS runs)"
set ylabel "milliseconds (log scale)"
plot "$tmp/lat.dat" using 2:xtic(1) title "p50", "" using 3 title "p99", "" using 4 title "p99.9"
EOF
    {
        echo "## HTTP end to end"
        echo
        echo "\`make bench-http\` (bench/http.sh): wrk on loopback against \`kefu serve\` (fresh SQLite file on $(g .machine.data_fs), \`synchronous=FULL\`, group commit, rate limits off, bundled rules and corpus) and against [bench/ceiling.c](../bench/ceiling.c), a bare libmicrohttpd server in kefu's threading mode (epoll, one thread per core, same limits) that answers a fixed JSON reply. Each figure is the median of $RUNS runs of $SECS s with $CONNS connections; the load is spread over 1,024 conversations (the handoff over fresh ones, each used once, since a queued conversation answers differently); every answer is checked for status 200 and its \`reply.source\`. Pinned: the server on core 0 (\`taskset -c 0\`), wrk on core 1 with one thread; unpinned: both free, wrk with two threads."
        echo
        echo "| target | pinned req/s | p50 ms | p99 ms | p99.9 ms | unpinned req/s | p50 ms | p99 ms | p99.9 ms | errors |"
        echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
        for t in ceiling rule article handoff; do
            case $t in
                ceiling) name="ceiling (bare libmicrohttpd)" ;;
                rule) name="message answered by a rule" ;;
                article) name="message answered by an article" ;;
                handoff) name="message handed off" ;;
            esac
            echo "| $name | $(fmt "$(g ".pinned.$t.rps")") | $(g ".pinned.$t.p50_ms") | $(g ".pinned.$t.p99_ms") | $(g ".pinned.$t.p999_ms") | $(fmt "$(g ".unpinned.$t.rps")") | $(g ".unpinned.$t.p50_ms") | $(g ".unpinned.$t.p99_ms") | $(g ".unpinned.$t.p999_ms") | $(g "[.pinned.$t, .unpinned.$t] | map(.non2xx + .socket_errors + .wrong_source) | add") |"
        done
        echo
        echo "| kefu / ceiling | rule | article | handoff |"
        echo "| --- | ---: | ---: | ---: |"
        for mode in pinned unpinned; do
            echo "| $mode | $(g ".ratios.$mode.rule * 1000 | round / 1000") | $(g ".ratios.$mode.article * 1000 | round / 1000") | $(g ".ratios.$mode.handoff * 1000 | round / 1000") |"
        done
        echo
        if [ "$(g '.postgresql != null')" = true ]; then
            echo "**On PostgreSQL** ($(g .postgresql.version), a throwaway server on loopback started as tests/pg_lib.sh does, a fresh database for every kefu start, its processes pinned to core 0 with kefu in the pinned runs; the ceiling is the same run's): the same load against \`kefu serve --store postgresql://...\`."
            echo
            echo "| target on PostgreSQL | pinned req/s | p50 ms | p99 ms | p99.9 ms | unpinned req/s | p50 ms | p99 ms | p99.9 ms | errors |"
            echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
            for t in rule article handoff; do
                case $t in
                    rule) name="message answered by a rule" ;;
                    article) name="message answered by an article" ;;
                    handoff) name="message handed off" ;;
                esac
                echo "| $name | $(fmt "$(g ".postgresql.pinned.$t.rps")") | $(g ".postgresql.pinned.$t.p50_ms") | $(g ".postgresql.pinned.$t.p99_ms") | $(g ".postgresql.pinned.$t.p999_ms") | $(fmt "$(g ".postgresql.unpinned.$t.rps")") | $(g ".postgresql.unpinned.$t.p50_ms") | $(g ".postgresql.unpinned.$t.p99_ms") | $(g ".postgresql.unpinned.$t.p999_ms") | $(g "[.postgresql.pinned.$t, .postgresql.unpinned.$t] | map(.non2xx + .socket_errors + .wrong_source) | add") |"
            done
            echo
            echo "| kefu on PostgreSQL / ceiling | rule | article | handoff |"
            echo "| --- | ---: | ---: | ---: |"
            for mode in pinned unpinned; do
                echo "| $mode | $(g ".postgresql.ratios.$mode.rule * 1000 | round / 1000") | $(g ".postgresql.ratios.$mode.article * 1000 | round / 1000") | $(g ".postgresql.ratios.$mode.handoff * 1000 | round / 1000") |"
            done
            echo
            echo "At half of kefu's pinned rule rate on PostgreSQL ($(g .postgresql.half_rate.rate) requests/s, the same open-loop client): p50 $(g .postgresql.half_rate.kefu.p50_ms) ms, p99 $(g .postgresql.half_rate.kefu.p99_ms) ms, p99.9 $(g .postgresql.half_rate.kefu.p999_ms) ms, $(fmt "$(g .postgresql.half_rate.kefu.reached)") req/s reached, $(g .postgresql.half_rate.kefu.errors) errors."
            echo
        fi
        echo "**Latency at half of kefu's maximum rate** ($(g .half_rate.rate) requests/s, half the pinned rule median): bench/rate_client.c, an open-loop client of ours (wrk2 is not in Debian) — request *i* is due at start + *i*/rate whatever happened before, goes out on the first idle keep-alive connection, and its latency runs from its due time to the answer's last byte, so a stall counts against every request it delayed. Pinned, $CONNS connections, $SECS s, median of $RUNS runs:"
        echo
        echo "| server | reached req/s | p50 ms | p99 ms | p99.9 ms | errors |"
        echo "| --- | ---: | ---: | ---: | ---: | ---: |"
        for s in kefu ceiling; do
            echo "| $s | $(fmt "$(g ".half_rate.$s.reached")") | $(g ".half_rate.$s.p50_ms") | $(g ".half_rate.$s.p99_ms") | $(g ".half_rate.$s.p999_ms") | $(g ".half_rate.$s.errors") |"
        done
        echo
        echo "Targets: message endpoint ≥ 0.25× the ceiling — $(g 'if .targets[0].met then "met" else "missed" end') pinned ($(g '.targets[0].value')), $(g 'if .targets[1].met then "met" else "missed" end') unpinned ($(g '.targets[1].value')); p99 ≤ 10 ms at half rate — $(g 'if .targets[2].met then "met" else "missed" end') ($(g .half_rate.kefu.p99_ms) ms); the article and the handoff ≥ 0.15× — $(g 'if .targets[3].met then "met" else "missed" end') ($(g '.targets[3].value')) and $(g 'if .targets[4].met then "met" else "missed" end') ($(g '.targets[4].value')) pinned."
        echo
        echo "![requests/s per target](perf-http.png)"
        echo
        echo "![latency percentiles, pinned](perf-http-latency.png)"
        echo
        echo "Machine: $(g .machine.cpu), $(g .machine.cores) cores, $(g .machine.kernel); load average $(g .machine.load_before) when the figures were written (the machine is shared; compare the ratios, not the absolute figures). One 4 KiB \`O_DSYNC\` write on the data disk took $(g .machine.fsync_ms) ms when measured: every durable answer waits for at least one commit."
        echo
        [ -f bench/http-notes.md ] && cat bench/http-notes.md
        echo
    } >"$OUT/http.md"
    finish
}

# ---------------------------------------------------------------- part 4 ----
run_durability() {
    set_mode unpinned
    for run in $(seq 1 "$RUNS"); do
        for mode in group each; do
            start_kefu --commit "$mode"
            make_convs 1024 "$tmp/convs"
            probe "$tmp/convs" "$RULE_TEXT" rule
            set -- $(store_counts)
            c0=$1 b0=$2
            load "$mode" "$tmp/convs" "$RULE_TEXT" rule
            set -- $(store_counts)
            echo "$(ratio $(($2 - b0)) $(($1 - c0)) 2)" >>"$tmp/$mode.per_commit"
            stop_server
        done
    done
    pc_g=$(median <"$tmp/group.per_commit")
    pc_e=$(median <"$tmp/each.per_commit")
    {
        echo '{'
        echo "\"machine\": $(machine_json),"
        echo "\"config\": {\"seconds\": $SECS, \"runs\": $RUNS, \"connections\": $CONNS, \"text\": \"$RULE_TEXT\", \"synchronous\": \"FULL\"},"
        echo "\"group\": $(target_json group | jq --argjson pc "$pc_g" '. + {messages_per_commit: $pc}'),"
        echo "\"each\": $(target_json each | jq --argjson pc "$pc_e" '. + {messages_per_commit: $pc}')"
        echo '}'
    } | jq '. + {ratio: (.group.rps / .each.rps)}
             | . + {targets: [{what: "group commit / one commit per message (req/s)", target: "> 1", value: (.ratio * 100 | round / 100), met: (.ratio > 1)}]}' \
        >"$OUT/durability.json"
    j="$OUT/durability.json"
    g() { jq -r "$1" "$j"; }
    printf 'group %s\neach %s\n' "$(g .group.rps)" "$(g .each.rps)" >"$tmp/dur.dat"
    gnuplot <<EOF || echo "bench: gnuplot failed" >&2
set terminal pngcairo size 800,450 font "sans,10" noenhanced
set output "docs/perf-durability.png"
set title "Rule message, synchronous=FULL: group commit vs one commit per message (median of $RUNS runs)"
set style data histograms
set style fill solid 0.8 border -1
set boxwidth 0.6
set ylabel "messages/s"
set yrange [0:*]
set grid ytics lc rgb "#dddddd"
unset key
plot "$tmp/dur.dat" using 2:xtic(1) lc rgb "#4477aa"
EOF
    {
        echo "## Durability cost"
        echo
        echo "\`make bench-durability\`: the message answered by a rule (\"$RULE_TEXT\") with \`kefu serve --commit group\` (the default: every message in flight joins the next transaction) against \`--commit each\` (one transaction per message), both \`synchronous=FULL\` in WAL mode on $(g .machine.data_fs), in the same pass; a 2xx is sent only after the message's commit either way. wrk, $CONNS connections, $SECS s, unpinned, median of $RUNS runs."
        echo
        echo "| commit | messages/s | p50 ms | p99 ms | p99.9 ms | messages per commit | errors |"
        echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
        for m in group each; do
            echo "| $m | $(fmt "$(g ".$m.rps")") | $(g ".$m.p50_ms") | $(g ".$m.p99_ms") | $(g ".$m.p999_ms") | $(g ".$m.messages_per_commit") | $(g ".$m | .non2xx + .socket_errors + .wrong_source") |"
        done
        echo
        echo "Group commit carries $(g '.ratio * 100 | round / 100')× the messages of one commit per message. With one commit per message every message waits for a commit of its own; with group commit one fsync acknowledges the whole group ($(g .group.messages_per_commit) messages per commit here). One 4 KiB \`O_DSYNC\` write on the data disk took $(g .machine.fsync_ms) ms when measured (it varies from minute to minute on this shared disk)."
        echo
        echo "![group commit against one commit per message](perf-durability.png)"
        echo
    } >"$OUT/durability.md"
    finish
}

case "$part" in
    http) run_http ;;
    durability) run_durability ;;
    *) echo "usage: bench/http.sh http|durability" >&2; exit 2 ;;
esac
