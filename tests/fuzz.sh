#!/bin/sh
# fuzz.sh — run the libFuzzer targets built by `make fuzz-build`.
#   tests/fuzz.sh run TARGET...    fuzz each for FUZZ_TIME seconds (make fuzz)
#   tests/fuzz.sh smoke TARGET...  replay every committed input of each target
#                                  (seeds and past crashes), then fuzz it for
#                                  FUZZ_SMOKE seconds; prints "ok NAME" /
#                                  "not ok NAME" lines for tests/run.sh
# Seeds and regression inputs live in tests/fuzz/<target>/, dictionaries in
# tests/fuzz/<target>.dict. New inputs go to $FUZZ_BUILD/corpus/<target>/,
# crashes to $FUZZ_BUILD/crash-<target>-*; the figures of each run (runs,
# seconds, corpus, coverage) are appended to $FUZZ_BUILD/fuzz-stats.txt.
set -u
mode=${1:-smoke}
[ $# -gt 0 ] && shift
B=${FUZZ_BUILD:-build-fuzz}
T=${FUZZ_TIME:-60}
S=${FUZZ_SMOKE:-10}

maxlen() {
    case $1 in
    rules) echo 16384 ;;
    api) echo 8192 ;;
    *) echo 4096 ;;
    esac
}

# fuzz TARGET SECONDS CORPUS-DIR LOG: one bounded libFuzzer run
fuzz() {
    t=$1
    dict=""
    [ -f "tests/fuzz/$t.dict" ] && dict="-dict=tests/fuzz/$t.dict"
    mkdir -p "$3"
    # shellcheck disable=SC2086
    KEFU_FUZZ_TMP="$scratch" "$B/fuzz/fuzz_$t" -max_total_time="$2" -timeout=10 -rss_limit_mb=2048 -max_len="$(maxlen "$t")" \
        -print_final_stats=1 -artifact_prefix="$B/crash-$t-" $dict "$3" "tests/fuzz/$t" >"$4" 2>&1
}

# stats TARGET LOG: "runs seconds execs/s corpus-size coverage" from a log
stats() {
    runs=$(sed -n 's/^Done \([0-9]*\) runs in \([0-9]*\) second.*/\1/p' "$2" | tail -1)
    secs=$(sed -n 's/^Done \([0-9]*\) runs in \([0-9]*\) second.*/\2/p' "$2" | tail -1)
    cov=$(sed -n 's/.*cov: \([0-9]*\) .*/\1/p' "$2" | tail -1)
    corp=$(sed -n 's/.*corp: \([0-9]*\/[0-9]*[a-zA-Z]*\).*/\1/p' "$2" | tail -1)
    rate=0
    [ -n "${secs:-}" ] && [ "${secs:-0}" -gt 0 ] && rate=$((runs / secs))
    echo "$1 runs=${runs:-0} seconds=${secs:-0} execs_per_s=$rate cov=${cov:-0} corpus=${corp:-?}"
}

# the api target's data directory lives here (tmpfs when there is one); a
# run that ends without its exit handlers (a crash) leaves nothing behind
shm=/tmp
[ -d /dev/shm ] && [ -w /dev/shm ] && shm=/dev/shm
scratch=$(mktemp -d "$shm/kefu-fuzz-XXXXXX")
trap 'rm -rf "$scratch"' EXIT
fails=0
for t in "$@"; do
    bin="$B/fuzz/fuzz_$t"
    if [ ! -x "$bin" ]; then
        echo "not ok fuzz-$t"
        echo "  $bin is missing: make fuzz-build"
        fails=$((fails + 1))
        continue
    fi
    if [ "$mode" = smoke ]; then
        # every committed input once: seeds and the inputs of past crashes
        files=$(find "tests/fuzz/$t" -type f | sort)
        n=$(printf '%s\n' "$files" | grep -c .)
        # shellcheck disable=SC2086
        if KEFU_FUZZ_TMP="$scratch" "$bin" -timeout=10 -rss_limit_mb=2048 $files >"$B/replay-$t.log" 2>&1; then
            echo "ok fuzz-replay-$t ($n inputs)"
        else
            echo "not ok fuzz-replay-$t"
            grep -E 'ERROR|broken promise|SUMMARY|Running' "$B/replay-$t.log" | tail -5 | sed 's/^/  /'
            fails=$((fails + 1))
        fi
        tmp=$(mktemp -d)
        if fuzz "$t" "$S" "$tmp" "$B/smoke-$t.log"; then
            echo "ok fuzz-smoke-$t ($(stats "$t" "$B/smoke-$t.log" | cut -d' ' -f2-))"
        else
            echo "not ok fuzz-smoke-$t"
            grep -E 'ERROR|broken promise|SUMMARY|Test unit written' "$B/smoke-$t.log" | tail -5 | sed 's/^/  /'
            fails=$((fails + 1))
        fi
        rm -rf "$tmp"
    else
        log="$B/fuzz-$t.log"
        if fuzz "$t" "$T" "$B/corpus/$t" "$log"; then
            line=$(stats "$t" "$log")
            echo "fuzz: $line"
            echo "$(date -u +%Y-%m-%dT%H:%M:%SZ) $line" >>"$B/fuzz-stats.txt"
        else
            echo "fuzz: $t FAILED (see $log)"
            grep -E 'ERROR|broken promise|SUMMARY|Test unit written' "$log" | tail -5
            fails=$((fails + 1))
        fi
    fi
done
[ "$fails" -eq 0 ]
