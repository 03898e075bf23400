#!/bin/sh
# run.sh — run the unit test binaries given as arguments, then the CLI tests,
# and print one closing line: "N passed, N failed".
# Each cmocka binary prints its own summary; this adds them up.
set -u
passed=0
failed=0
for t in "$@"; do
    out=$("$t" 2>&1)
    status=$?
    printf '%s\n' "$out"
    p=$(printf '%s\n' "$out" | sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' | awk '{s+=$1} END {print s+0}')
    f=$(printf '%s\n' "$out" | sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' | awk '{s+=$1} END {print s+0}')
    passed=$((passed + ${p:-0}))
    failed=$((failed + ${f:-0}))
    if [ "$status" -ne 0 ] && [ "$f" -eq 0 ]; then
        echo "$t: exited with status $status" >&2
        failed=$((failed + 1))
    fi
done
# tally OUTPUT [STATUS WHAT]: prints a suite's "ok NAME" / "not ok NAME" lines and adds them
# up; a non-zero STATUS without a failed line counts as one failure ("not ok WHAT")
tally() {
    printf '%s\n' "$1"
    passed=$((passed + $(printf '%s\n' "$1" | grep -c '^ok ')))
    nf=$(printf '%s\n' "$1" | grep -c '^not ok ')
    if [ "${2:-0}" -ne 0 ] && [ "$nf" -eq 0 ]; then
        nf=1
        echo "not ok $3"
    fi
    failed=$((failed + nf))
}
# command-line tests
tally "$(BUILD="${BUILD:-build}" sh tests/cli.sh 2>&1)"
# the HTTP server end to end on the real engine
tally "$(BUILD="${BUILD:-build}" sh tests/e2e.sh 2>&1)"
# the same journey checked request by request against docs/openapi.json
oa=$(BUILD="${BUILD:-build}" node tests/openapi/run.js 2>&1)
tally "$oa" $? "openapi tests did not run (make openapi-deps?)"
# red lines and VIP service levels on a real kefu serve, with a webhook receiver
sv=$(BUILD="${BUILD:-build}" node tests/service.js 2>&1)
tally "$sv" $? "service tests did not run"
# the Prometheus alerting rules of the red lines (promtool)
tally "$(sh tests/prometheus.sh 2>&1)"
# crash safety (kill -9 under load), a full disk, erasure and redaction, online backups, webhooks,
# the rules' actions against a shop backend,
# what make install lays down (the systemd unit checked by systemd-analyze), agent accounts
tally "$(for s in crash iofail privacy backup webhook actions packaging agents; do BUILD="${BUILD:-build}" sh "tests/$s.sh" 2>&1; done)"
# the PostgreSQL store and two nodes on one database, on a throwaway server (tests/pg_lib.sh)
tally "$(BUILD="${BUILD:-build}" sh tests/pg.sh 2>&1)"
# hostile input against a real kefu serve
tally "$(BUILD="${BUILD:-build}" sh tests/hostile.sh 2>&1)"
# make test only (KEFU_TEST_FULL): the fuzz smoke (committed inputs replayed,
# then a few seconds of fuzzing per target) beside the unit tests under
# valgrind (the smoke is bounded in time, so running both at once only
# shortens the wall time)
if [ -n "${KEFU_TEST_FULL:-}" ]; then
    fzout=$(mktemp)
    FUZZ_BUILD="${FUZZ_BUILD:-build-fuzz}" sh tests/fuzz.sh smoke text rules kb api mem >"$fzout" 2>&1 &
    fzpid=$!
    vg=$(sh tests/valgrind.sh "$@" 2>&1)
    wait "$fzpid"
    tally "$(cat "$fzout")"
    rm -f "$fzout"
    tally "$vg"
fi
# the widget and the console in headless Chromium (tests/browser/)
br=$(BUILD="${BUILD:-build}" node tests/browser/run.js 2>&1)
tally "$br" $? "browser tests did not run (make browser-deps?)"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
