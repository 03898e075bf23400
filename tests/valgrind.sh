#!/bin/sh
# valgrind.sh — run each unit test binary given as an argument under
# valgrind (memcheck, leak checking as in make valgrind) and print
# "ok valgrind-NAME" or "not ok valgrind-NAME" for tests/run.sh. KEFU_SLOW
# stretches the tests' own time bounds; the binaries run two at a time.
set -u
command -v valgrind >/dev/null 2>&1 || { echo "not ok valgrind (valgrind is not installed)"; exit 0; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
one() {
    name=$(basename "$1")
    if KEFU_SLOW=50 valgrind -q --leak-check=full --show-leak-kinds=definite,indirect,possible \
        --errors-for-leak-kinds=definite,indirect,possible --error-exitcode=9 "$1" >"$tmp/$name.out" 2>&1; then
        echo "ok valgrind-$name" >"$tmp/$name.res"
    else
        { echo "not ok valgrind-$name"; grep -E '^==[0-9]+==|FAILED' "$tmp/$name.out" | head -20 | sed 's/^/  /'; } \
            >"$tmp/$name.res"
    fi
}
running=""
for t in "$@"; do
    one "$t" &
    running="$running $!"
    if [ "$(echo $running | wc -w)" -ge 2 ]; then
        wait ${running%% *} 2>/dev/null
        running=${running#* }
        running=${running#"${running%%[! ]*}"}
    fi
done
wait
for t in "$@"; do cat "$tmp/$(basename "$t").res"; done
