# lib.sh — what the shell suites share: the "ok NAME" / "not ok NAME" lines
# tests/run.sh counts, and starting kefu serve on a free loopback port.
# Source it after setting KEFU; its own variables start with _ (and it sets pid and URL).

ok() { echo "ok $1"; }
no() {
    echo "not ok $1"
    [ $# -gt 1 ] && printf '  %s\n' "$2"
}
# check NAME STATUS [DETAIL]: ok when STATUS is 0, else not ok with DETAIL
check() { if [ "$2" -eq 0 ]; then ok "$1"; else no "$1" "${3:-}"; fi; }

# serve OUT LOG ARGS...: starts `kefu serve --listen 127.0.0.1:0 ARGS...` in the background,
# its output in OUT and its log in LOG; sets pid and URL; returns 1 when it is not serving
# within 15 s
serve() {
    _out=$1
    _log=$2
    shift 2
    : >"$_out" # not a line of an earlier server's while this one starts
    ("$KEFU" serve --listen 127.0.0.1:0 "$@" >"$_out" 2>"$_log") &
    pid=$!
    _i=0
    while [ $_i -lt 300 ] && kill -0 "$pid" 2>/dev/null && ! grep -q "serving on" "$_out" 2>/dev/null; do
        sleep 0.05
        _i=$((_i + 1))
    done
    URL=$(sed -n 's/^kefu: serving on //p' "$_out")
    [ -n "$URL" ]
}

# demo_orders JSON: starts `kefu demo-orders` on a free loopback port in the background and writes
# JSON, demo/actions.json pointed at it; sets dpid and D (its URL, empty when it did not start)
demo_orders() {
    "$KEFU" demo-orders --listen 127.0.0.1:0 >"$1.out" 2>&1 &
    dpid=$!
    _i=0
    while [ $_i -lt 200 ] && ! grep -q 'serving on' "$1.out"; do sleep 0.05; _i=$((_i + 1)); done
    D=$(sed -n 's/^kefu demo-orders: serving on //p' "$1.out")
    sed "s#http://127.0.0.1:8089#$D#" demo/actions.json >"$1"
}
