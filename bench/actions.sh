#!/bin/sh
# actions.sh — messages answered by a rule's action over HTTP, against the same
# server's plain rule answer, on loopback.
#   kefu demo-orders (the bundled shop's order system) on 127.0.0.1:0, and kefu
#   serve with the bundled rules and an --actions file pointing at it; wrk posts
#   "where is my order KF12345678" (order.status: the order_status action is
#   called, its answer fills the reply) and "how long does delivery take" (a
#   plain rule) to the same server in the same run, alternately; then wrk against
#   demo-orders alone (what the backend answers without kefu in front).
# Every figure is the median of RUNS runs; the ratio is taken within each run.
# Each action run is checked: every answer 200 with the shipped order's reply,
# and /metrics counts one ok call per message and no other outcome.
# Bounded: each load run lasts SECS seconds (conversations are made in at most
# ten 2 s runs); the servers listen on 127.0.0.1 only and are stopped by pid.
# Writes bench/out/actions.json and actions.md, then bench/report.sh.
# Environment: BUILD (build), SECS (4), RUNS (3), CONNS (48: demo-orders takes at most 64
# connections at once, and kefu opens one per call in flight).
set -eu
cd "$(dirname "$0")/.."
. bench/lib.sh
SECS=${SECS:-4}
RUNS=${RUNS:-3}
CONNS=${CONNS:-48}
RULE_TEXT="how long does delivery take"
ACTION_TEXT="where is my order KF12345678"
ACTION_REPLY="Order KF12345678 has shipped"

for t in wrk jq curl; do
    command -v "$t" >/dev/null 2>&1 || { echo "bench: $t is missing (make bench-deps)" >&2; exit 1; }
done

tmp=$(mktemp -d)
spid=""
dpid=""
stop_pid() {
    [ -n "$1" ] || return 0
    kill "$1" 2>/dev/null || true
    i=0
    while kill -0 "$1" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
    kill -9 "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}
trap 'stop_pid "$spid"; stop_pid "$dpid"; rm -rf "$tmp"' EXIT INT TERM

# the demo order system, once for every run
"$BUILD/kefu" demo-orders --listen 127.0.0.1:0 >"$tmp/demo.out" 2>"$tmp/demo.log" &
dpid=$!
i=0
while [ $i -lt 100 ] && ! grep -q "serving on" "$tmp/demo.out" 2>/dev/null; do sleep 0.05; i=$((i + 1)); done
demo=$(sed -n 's/^kefu demo-orders: serving on //p' "$tmp/demo.out")
[ -n "$demo" ] || { cat "$tmp/demo.log" >&2; echo "bench: kefu demo-orders did not start" >&2; exit 1; }
# the bundled configuration pointed at it; room for every message in flight (the default
# concurrency of 64 calls would turn the rest into 'busy' failures)
sed "s#http://127.0.0.1:8089#$demo#" demo/actions.json |
    jq --argjson c $((CONNS * 2)) 'map_values(. + {concurrency: $c})' >"$tmp/actions.json"

start_kefu() {
    rm -rf "$tmp/data" "$tmp/out"
    KEFU_LOG_LEVEL=warn "$BUILD/kefu" serve --listen 127.0.0.1:0 --data "$tmp/data" --rate-limit 0 \
        --corpus corpus --actions "$tmp/actions.json" >"$tmp/out" 2>"$tmp/log" &
    spid=$!
    i=0
    while [ $i -lt 300 ] && ! grep -q "serving on" "$tmp/out" 2>/dev/null; do sleep 0.1; i=$((i + 1)); done
    url=$(sed -n 's/^kefu: serving on //p' "$tmp/out")
    [ -n "$url" ] || { cat "$tmp/log" >&2; echo "bench: kefu serve did not start" >&2; exit 1; }
}

# say TEXT: one message on the first conversation; prints the answer
say() {
    c=$(head -1 "$tmp/convs")
    curl -s -m 10 -X POST -H 'Content-Type: application/json' -H "Authorization: Bearer ${c#* }" \
        -d "{\"text\":\"$1\"}" "$url/v1/conversations/${c%% *}/messages"
}

# calls OUTCOME: kefu_action_calls_total of order_status with OUTCOME ("" sums every outcome)
calls() {
    curl -s "$url/metrics" | awk -v o="$1" '/^kefu_action_calls_total\{action="order_status"/ {
        if (o == "" || index($0, "outcome=\"" o "\"")) s += $2 } END { print s + 0 }'
}
# the order_status call latency histogram's sum and count
call_time() { curl -s "$url/metrics" | awk '/^kefu_action_duration_seconds_(sum|count)\{action="order_status"/ { printf "%s ", $2 }'; }

# load NAME TEXT CHECK: one wrk run of TEXT over the conversations (CHECK: a substring every
# answer must hold); its RESULT line appended to $tmp/NAME
load() {
    wrk -t2 -c"$CONNS" -d"${SECS}s" --timeout 10s --latency -s bench/post_message.lua "$url" \
        -- "$tmp/convs" "$2" rule >"$tmp/wrk.txt"
    r=$(sed -n 's/^RESULT //p' "$tmp/wrk.txt")
    [ -n "$r" ] || { cat "$tmp/wrk.txt" >&2; exit 1; }
    echo "$r" >>"$tmp/$1"
    echo "  $1: $(echo "$r" | jq -r '"\(.rps | floor) req/s, p50 \(.p50_ms) ms, p99 \(.p99_ms) ms, non-2xx \(.non2xx), wrong \(.wrong_source)"')" >&2
}

med() { jq -r ".$2" "$tmp/$1" | median; }

# cpu PID: the process's user + system CPU time so far, in clock ticks
cpu() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
TICK=$(getconf CLK_TCK)
# per_msg T0 T1 N: CPU microseconds per message between two cpu readings
per_msg() { awk -v a="$1" -v b="$2" -v n="$3" -v t="$TICK" 'BEGIN { printf "%.1f\n", (b - a) / t * 1e6 / n }'; }

# the backend alone: wrk POSTs the body kefu sends for the order question straight to demo-orders
cat >"$tmp/backend.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"action":"order_status","intent":"order.status","slots":{"order_id":"KF12345678"},' ..
  '"customer":{"id":"bench","name":"","tier":""},"conversation":"c1","locale":"en","channel":"web","attributes":{}}'
function done(summary, latency, requests)
  local secs = summary.duration / 1e6
  io.write(string.format('RESULT {"rps":%.1f,"p50_ms":%.3f,"p99_ms":%.3f,"non2xx":%d}\n',
    summary.requests / secs, latency:percentile(50) / 1e3, latency:percentile(99) / 1e3, summary.errors.status))
end
LUA

for run in $(seq 1 "$RUNS"); do
    echo "run $run" >&2
    start_kefu
    make_convs 1024 "$tmp/convs"
    say "$RULE_TEXT" | jq -e '.reply.source == "rule" and .reply.intent != "order.status"' >/dev/null ||
        { echo "bench: '$RULE_TEXT' is not a plain rule answer" >&2; exit 1; }
    say "$ACTION_TEXT" | jq -e --arg r "$ACTION_REPLY" '.reply.intent == "order.status" and (.reply.text | startswith($r))' \
        >/dev/null || { echo "bench: '$ACTION_TEXT' was not answered from the order system" >&2; exit 1; }
    k0=$(cpu "$spid")
    load rule "$RULE_TEXT"
    k1=$(cpu "$spid")
    per_msg "$k0" "$k1" "$(tail -1 "$tmp/rule" | jq -r .requests)" >>"$tmp/cpu_rule"
    n0=$(calls "")
    ok0=$(calls ok)
    t0=$(call_time)
    k0=$(cpu "$spid")
    b0=$(cpu "$dpid")
    load action "$ACTION_TEXT"
    k1=$(cpu "$spid")
    b1=$(cpu "$dpid")
    n1=$(calls "")
    ok1=$(calls ok)
    t1=$(call_time)
    r=$(tail -1 "$tmp/action")
    msgs=$(echo "$r" | jq -r .requests)
    # every message of the run called the order system once and got its answer (requests still
    # in flight when wrk stopped may add a few calls)
    [ $((ok1 - ok0)) -eq $((n1 - n0)) ] && [ $((ok1 - ok0)) -ge "$msgs" ] && [ $((ok1 - ok0)) -le $((msgs + CONNS)) ] &&
        [ "$(echo "$r" | jq -r '.non2xx + .wrong_source + .socket_errors')" = 0 ] ||
        { echo "bench: action run: $msgs messages, $((ok1 - ok0)) ok calls of $((n1 - n0)) ($r)" >&2
          curl -s "$url/metrics" | grep '^kefu_action_calls_total' | grep -v ' 0$' >&2
          grep 'failed' "$tmp/log" | head -5 >&2; exit 1; }
    say "$ACTION_TEXT" | jq -e --arg r "$ACTION_REPLY" '.reply.text | startswith($r)' >/dev/null ||
        { echo "bench: after the run the order question is not answered from the order system" >&2; exit 1; }
    per_msg "$k0" "$k1" "$msgs" >>"$tmp/cpu_action"
    per_msg "$b0" "$b1" $((ok1 - ok0)) >>"$tmp/cpu_backend"
    echo "$t0 $t1 $((ok1 - ok0))" | awk '{ printf "%.4f\n", ($3 - $1) / ($4 - $2) * 1000 }' >>"$tmp/call_ms"
    echo "$r $(tail -1 "$tmp/rule")" | jq -s '.[0].rps / .[1].rps' >>"$tmp/ratio_rps"
    echo "$r $(tail -1 "$tmp/rule")" | jq -s '.[0].p50_ms / .[1].p50_ms' >>"$tmp/ratio_p50"
    stop_pid "$spid"
    spid=""
    wrk -t2 -c"$CONNS" -d"${SECS}s" --latency -s "$tmp/backend.lua" "$demo/order_status" >"$tmp/wrk.txt"
    sed -n 's/^RESULT //p' "$tmp/wrk.txt" >>"$tmp/backend"
    echo "  backend alone: $(tail -1 "$tmp/backend")" >&2
done
stop_pid "$dpid"
dpid=""

cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
jq -n --arg cpu "$cpu" --argjson cores "$(nproc)" --arg kernel "$(uname -sr)" \
    --arg load "$(cut -d' ' -f1-3 /proc/loadavg)" --arg date "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
    --argjson secs "$SECS" --argjson runs "$RUNS" --argjson conns "$CONNS" \
    --slurpfile rule "$tmp/rule" --slurpfile action "$tmp/action" --slurpfile backend "$tmp/backend" \
    --argjson rr "$(jq -s 'sort | .[length / 2 | floor]' "$tmp/ratio_rps")" \
    --argjson rp "$(jq -s 'sort | .[length / 2 | floor]' "$tmp/ratio_p50")" \
    --argjson cm "$(median <"$tmp/call_ms")" --argjson kr "$(median <"$tmp/cpu_rule")" \
    --argjson ka "$(median <"$tmp/cpu_action")" --argjson kb "$(median <"$tmp/cpu_backend")" '
    def med(f): map(f) | sort | if length % 2 == 1 then .[length / 2 | floor] else (.[length / 2 - 1] + .[length / 2]) / 2 end;
    def sum(v): { rps: (v | med(.rps) | floor), p50_ms: (v | med(.p50_ms)), p99_ms: (v | med(.p99_ms)),
                  errors: (v | map(.non2xx + (.socket_errors // 0) + (.wrong_source // 0)) | add) };
    { machine: { cpu: $cpu, cores: $cores, kernel: $kernel, load_before: $load, date: $date },
      secs: $secs, runs: $runs, conns: $conns,
      rule: sum($rule), action: sum($action), backend_alone: sum($backend),
      action_call_mean_ms: ($cm * 100 | round / 100),
      cpu_us_per_message: { kefu_rule: $kr, kefu_action: $ka, demo_orders_per_call: $kb }, action_over_rule_rps: ($rr * 1000 | round / 1000),
      action_over_rule_p50: ($rp * 100 | round / 100),
      runs_raw: { rule: $rule, action: $action, backend: $backend }, targets: [] }' >"$OUT/actions.json"

j() { jq -r "$1" "$OUT/actions.json"; }
{
    echo "## Actions"
    echo
    echo "\`make bench-actions\` (bench/actions.sh): wrk on loopback against \`kefu serve\` (fresh SQLite file, group commit, rate limits off, bundled rules and corpus) with \`--actions\` pointing at \`kefu demo-orders\` (the bundled shop's order system, one libmicrohttpd thread, on 127.0.0.1). The same server answers \"$ACTION_TEXT\" — intent \`order.status\`, whose \`order_status\` action is called over HTTP through httpc and whose answer fills the reply — and \"$RULE_TEXT\", a plain rule, in alternating runs. Each figure is the median of $(j .runs) runs of $(j .secs) s with $(j .conns) connections over 1,024 conversations (fewer than http.sh's 128: demo-orders accepts at most 64 connections, and httpc holds one per call in flight); every action run is checked: each answer 200 from the rule, \`/metrics\` counting an \`ok\` call for every message (and no other outcome), and the shipped order's reply before and after the run. The backend alone is wrk posting the body kefu sends straight to demo-orders."
    echo
    echo "| message | req/s | p50 ms | p99 ms | errors |"
    echo "| --- | ---: | ---: | ---: | ---: |"
    echo "| answered by a plain rule | $(fmt "$(j .rule.rps)") | $(j .rule.p50_ms) | $(j .rule.p99_ms) | $(j .rule.errors) |"
    echo "| answered by a rule's action (order_status) | $(fmt "$(j .action.rps)") | $(j .action.p50_ms) | $(j .action.p99_ms) | $(j .action.errors) |"
    echo "| the order system alone (no kefu) | $(fmt "$(j .backend_alone.rps)") | $(j .backend_alone.p50_ms) | $(j .backend_alone.p99_ms) | $(j .backend_alone.errors) |"
    echo
    echo "Action over plain rule, taken within each run (median): **$(j .action_over_rule_rps)×** the requests per second, **$(j .action_over_rule_p50)×** the median latency. The order_status call itself (kefu's \`kefu_action_duration_seconds\`, from handing the request to httpc to its answer, over the action runs) took $(j .action_call_mean_ms) ms on average."
    echo
    echo "CPU time per message (\`/proc/PID/stat\` before and after each run, median): kefu $(j .cpu_us_per_message.kefu_rule) µs for the plain rule, $(j .cpu_us_per_message.kefu_action) µs for the action's message (what it adds to a rule: the call through libcurl on httpc's thread, and the turn resumed on a second pass with the answer); demo-orders $(j .cpu_us_per_message.demo_orders_per_call) µs per call. On 2 cores shared by kefu, demo-orders and wrk, the CPU each message takes is what sets the rate."
    echo
    echo "Machine: $(j .machine.cpu), $(j .machine.cores) cores, $(j .machine.kernel); load average $(j .machine.load_before) before the figures were taken (shared machine: compare the ratio, not the absolute figures)."
} >"$OUT/actions.md"
cat "$OUT/actions.md" >&2
if [ -x bench/report.sh ]; then bench/report.sh; fi
