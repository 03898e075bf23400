#!/bin/sh
# jit.sh — kefu check and the lazy JIT of regexes: the server JIT-compiles a
# regex only once it has run a few times, so only `kefu check --strict` (which
# JIT-compiles a throwaway copy of each) tells an editor about one PCRE2's JIT
# refuses. Prints "ok NAME" or "not ok NAME" per case (tests/run.sh counts them).
set -u
KEFU="${BUILD:-build}/kefu"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

ok() { echo "ok $1"; }
no() { echo "not ok $1"; [ $# -gt 1 ] && printf '  %s\n' "$2"; }

# \C (one code unit) in UTF mode is the pattern item the JIT does not support
mkdir -p "$tmp/r"
cat >"$tmp/r/odd.rules" <<'RULES'
intent odd
  example abcxdef
  regex   /abc\Cdef/
  reply   odd
intent plain
  example where is my order
  regex   /\bwhere is my (order|package)\b/
  reply   tracking
RULES

# 1. a plain check loads without JIT work and stays quiet about it
"$KEFU" check "$tmp/r" >"$tmp/out" 2>"$tmp/err"
status=$?
if [ "$status" -eq 0 ] && ! grep -q jit "$tmp/err" && grep -q ' 0 misrouted, 0 errors, 0 warnings' "$tmp/out"; then
    ok jit-check-plain
else
    no jit-check-plain "status $status; $(cat "$tmp/out" "$tmp/err")"
fi

# 2. --strict names the refused regex at its slash, with the caret, and fails
"$KEFU" check --strict "$tmp/r" >"$tmp/out" 2>"$tmp/err"
status=$?
if [ "$status" -eq 1 ] && grep -q "odd.rules:3:11: warning: regex could not be jit-compiled" "$tmp/err" &&
    [ "$(grep -c 'could not be jit-compiled' "$tmp/err")" -eq 1 ] && grep -q '^ *\^' "$tmp/err"; then
    ok jit-check-strict
else
    no jit-check-strict "status $status; $(cat "$tmp/err")"
fi

# 3. --strict passes when every regex JIT-compiles
grep -v 'odd\|abc' "$tmp/r/odd.rules" >"$tmp/r/plain.rules.new" && rm "$tmp/r/odd.rules" &&
    mv "$tmp/r/plain.rules.new" "$tmp/r/plain.rules"
if "$KEFU" check --strict "$tmp/r" >"$tmp/out" 2>"$tmp/err"; then
    ok jit-check-strict-clean
else
    no jit-check-strict-clean "$(cat "$tmp/out" "$tmp/err")"
fi
