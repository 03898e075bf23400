#!/bin/sh
# tsan.sh — the unit tests, the HTTP suite (tests/e2e.sh) and the crash suite
# (tests/crash.sh, TSAN_CRASH_CYCLES kill -9 cycles) on a ThreadSanitizer
# build (make tsan). Every process of a suite, servers included, writes its
# reports into one directory; a report fails the suite it came from, as does
# the suite's own failure. Prints "ok NAME" / "not ok NAME" per suite and
# closes with "N passed, N failed". Usage: tests/tsan.sh TEST-BINARY...
set -u
B=${BUILD:-build-tsan}
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
passed=0
failed=0

# suite NAME CMD...: runs CMD with TSan reporting into $logs/NAME.PID
suite() {
    name=$1
    shift
    TSAN_OPTIONS="log_path=$logs/$name second_deadlock_stack=1 history_size=4" "$@" >"$logs/out" 2>&1
    status=$?
    reports=$(cat "$logs/$name".* 2>/dev/null | grep -c 'WARNING: ThreadSanitizer')
    bad=$(grep -c '^not ok' "$logs/out")
    if [ "$status" -eq 0 ] && [ "$bad" -eq 0 ] && [ "$reports" -eq 0 ]; then
        echo "ok tsan-$name"
        passed=$((passed + 1))
    else
        echo "not ok tsan-$name"
        echo "  status $status, $bad failed cases, $reports ThreadSanitizer reports"
        grep '^not ok' "$logs/out" | head -5 | sed 's/^/  /'
        cat "$logs/$name".* 2>/dev/null | head -60 | sed 's/^/  /'
        failed=$((failed + 1))
    fi
    rm -f "$logs/$name".*
}

for t in "$@"; do
    suite "$(basename "$t")" "$t"
done
suite e2e env BUILD="$B" sh tests/e2e.sh
suite crash env BUILD="$B" CRASH_CYCLES="${TSAN_CRASH_CYCLES:-5}" sh tests/crash.sh
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
