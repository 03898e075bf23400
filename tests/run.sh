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
# command-line tests: each prints "ok NAME" or "not ok NAME"
cli=$(BUILD="${BUILD:-build}" sh tests/cli.sh 2>&1)
printf '%s\n' "$cli"
cp=$(printf '%s\n' "$cli" | grep -c '^ok ')
cf=$(printf '%s\n' "$cli" | grep -c '^not ok ')
passed=$((passed + cp))
failed=$((failed + cf))
# the HTTP server end to end on the real engine: "ok NAME" or "not ok NAME" lines
e2e=$(BUILD="${BUILD:-build}" sh tests/e2e.sh 2>&1)
printf '%s\n' "$e2e"
passed=$((passed + $(printf '%s\n' "$e2e" | grep -c '^ok ')))
failed=$((failed + $(printf '%s\n' "$e2e" | grep -c '^not ok ')))
# the same journey checked request by request against docs/openapi.json: "ok NAME" or "not ok NAME" lines
oa=$(BUILD="${BUILD:-build}" node tests/openapi/run.js 2>&1)
os=$?
printf '%s\n' "$oa"
passed=$((passed + $(printf '%s\n' "$oa" | grep -c '^ok ')))
of=$(printf '%s\n' "$oa" | grep -c '^not ok ')
[ "$os" -ne 0 ] && [ "$of" -eq 0 ] && of=1 && echo "not ok openapi tests did not run (make openapi-deps?)"
failed=$((failed + of))
# crash safety (kill -9 under load), a full disk, erasure and redaction, online backups: "ok NAME" or "not ok NAME" lines
rel=$(for s in crash iofail privacy backup; do BUILD="${BUILD:-build}" sh "tests/$s.sh" 2>&1; done)
printf '%s\n' "$rel"
passed=$((passed + $(printf '%s\n' "$rel" | grep -c '^ok ')))
failed=$((failed + $(printf '%s\n' "$rel" | grep -c '^not ok ')))
# hostile input against a real kefu serve: "ok NAME" or "not ok NAME" lines
ho=$(BUILD="${BUILD:-build}" sh tests/hostile.sh 2>&1)
printf '%s\n' "$ho"
passed=$((passed + $(printf '%s\n' "$ho" | grep -c '^ok ')))
failed=$((failed + $(printf '%s\n' "$ho" | grep -c '^not ok ')))
# make test only (KEFU_TEST_FULL): the fuzz smoke (committed inputs replayed,
# then a few seconds of fuzzing per target) beside the unit tests under
# valgrind (the smoke is bounded in time, so running both at once only
# shortens the wall time)
if [ -n "${KEFU_TEST_FULL:-}" ]; then
    fzout=$(mktemp)
    FUZZ_BUILD="${FUZZ_BUILD:-build-fuzz}" sh tests/fuzz.sh smoke text rules kb api >"$fzout" 2>&1 &
    fzpid=$!
    vg=$(sh tests/valgrind.sh "$@" 2>&1)
    wait "$fzpid"
    fz=$(cat "$fzout")
    rm -f "$fzout"
    printf '%s\n' "$fz"
    passed=$((passed + $(printf '%s\n' "$fz" | grep -c '^ok ')))
    failed=$((failed + $(printf '%s\n' "$fz" | grep -c '^not ok ')))
    printf '%s\n' "$vg"
    passed=$((passed + $(printf '%s\n' "$vg" | grep -c '^ok ')))
    failed=$((failed + $(printf '%s\n' "$vg" | grep -c '^not ok ')))
fi
# the widget and the console in headless Chromium (tests/browser/): "ok NAME" or "not ok NAME" lines
br=$(BUILD="${BUILD:-build}" node tests/browser/run.js 2>&1)
bs=$?
printf '%s\n' "$br"
passed=$((passed + $(printf '%s\n' "$br" | grep -c '^ok ')))
bf=$(printf '%s\n' "$br" | grep -c '^not ok ')
[ "$bs" -ne 0 ] && [ "$bf" -eq 0 ] && bf=1 && echo "not ok browser tests did not run (make browser-deps?)"
failed=$((failed + bf))
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
