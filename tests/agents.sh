#!/bin/sh
# agents.sh — agent accounts from the command line, on running servers. What must hold: kefu
# agent add prints a token once and the database holds only its SHA-256; the account works
# on a server started without KEFU_AGENT_TOKENS, and KEFU_AGENT_TOKENS agents keep working
# beside it; on two servers sharing the data directory (two nodes), kefu agent disable and
# kefu agent rotate take effect on the very next call of each, with no restart; list shows
# the accounts; an agent's presence (away, offline) decides whether customers are told nobody is
# free; mistakes get one plain line and a non-zero exit. (The admin API for the same:
# tests/openapi/run.js.) Prints "ok NAME" / "not ok NAME". Servers are stopped by their pid.
set -u
BUILD="${BUILD:-build}"
KEFU="${KEFU:-$BUILD/kefu}"
tmp=$(mktemp -d)
pid=""
pid2=""
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null
    [ -n "$pid2" ] && kill "$pid2" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT INT TERM
. tests/lib.sh

mkdir -p "$tmp/rules" "$tmp/corpus"
cp rules/*.rules "$tmp/rules/"
D="$tmp/data"
# code TOKEN [BASE]: the status of GET /v1/queue with TOKEN
code() { curl -s -m 5 -o "$tmp/b" -w '%{http_code}' -H "Authorization: Bearer $1" "${2:-$URL}/v1/queue"; }

# 1. add: the token once, only its hash stored
out=$("$KEFU" agent add alice --skills general,billing --capacity 2 --data "$D" 2>&1)
A=$(printf '%s\n' "$out" | sed -n "s/^agent 'alice' added; its token, shown this once: \([0-9a-f]\{32\}\)$/\1/p")
H=$(printf '%s' "$A" | sha256sum | cut -d' ' -f1)
stored=$(sqlite3 "$D/kefu.db" "SELECT token_hash FROM agents WHERE name = 'alice'")
leak=$(sqlite3 "$D/kefu.db" .dump | grep -c "$A")
check agent-add-hash-only "$([ -n "$A" ] && [ "$stored" = "$H" ] && [ "$leak" = 0 ]; echo $?)" "$out; stored $stored"
"$KEFU" agent add bob --data "$D" >"$tmp/bob"
B=$(sed -n 's/.*shown this once: //p' "$tmp/bob")
"$KEFU" agent list --data "$D" >"$tmp/list"
check agent-list "$(printf 'alice enabled skills=general,billing capacity=2\nbob enabled skills=* capacity=3\n' |
    diff - "$tmp/list" >/dev/null; echo $?)" "$(cat "$tmp/list")"

# 2. two servers on the data directory; an environment agent beside the accounts
export KEFU_AGENT_TOKENS="envy:tok-envy-0123456789abcdef"
if ! serve "$tmp/out2" "$tmp/log2" --data "$D" --rules "$tmp/rules" --corpus "$tmp/corpus" --rate-limit 0; then
    no agents-start "$(cat "$tmp/log2")"
    exit 0
fi
pid2=$pid
URL2=$URL
pid=""
if ! serve "$tmp/out" "$tmp/log" --data "$D" --rules "$tmp/rules" --corpus "$tmp/corpus" --rate-limit 0; then
    no agents-start "$(cat "$tmp/log")"
    exit 0
fi
s1=$(code "$A") s2=$(code "$A" "$URL2") se=$(code tok-envy-0123456789abcdef) sb=$(code "$B") sx=$(code 0123456789abcdef0123456789abcdef)
check agent-account-serves "$([ "$s1$s2$se$sb$sx" = 200200200200401 ]; echo $?)" "$s1 $s2 $se $sb $sx"
code "$A" >/dev/null
jq -e '.queues == ["general", "billing"]' "$tmp/b" >/dev/null
check agent-account-skills $? "$(cat "$tmp/b")"

# 3. disable while both run: refused on both at once; enable brings it back
"$KEFU" agent disable alice --data "$D" >/dev/null
s1=$(code "$A") s2=$(code "$A" "$URL2") sb=$(code "$B")
check agent-disable-at-once "$([ "$s1$s2$sb" = 401401200 ]; echo $?)" "$s1 $s2 $sb"
"$KEFU" agent enable alice --data "$D" >/dev/null
check agent-enable "$([ "$(code "$A")$(code "$A" "$URL2")" = 200200 ]; echo $?)"

# 4. rotate: the old token refused on both, the new one works on both
out=$("$KEFU" agent rotate bob --data "$D")
B2=$(printf '%s\n' "$out" | sed -n 's/.*shown this once: \([0-9a-f]\{32\}\) .*/\1/p')
s=$(code "$B")$(code "$B" "$URL2")$(code "$B2")$(code "$B2" "$URL2")
check agent-rotate-at-once "$([ -n "$B2" ] && [ "$B2" != "$B" ] && [ "$s" = 401401200200 ]; echo $?)" "$out; $s"

# 5. mistakes: one line, a non-zero exit
"$KEFU" agent add alice --data "$D" >/dev/null 2>"$tmp/e"
check agent-add-twice "$([ $? -eq 1 ] && grep -q "agent 'alice' exists" "$tmp/e" && [ "$(wc -l <"$tmp/e")" = 1 ]; echo $?)" "$(cat "$tmp/e")"
"$KEFU" agent disable nobody --data "$D" >/dev/null 2>"$tmp/e"
check agent-unknown "$([ $? -eq 1 ] && grep -q "no agent 'nobody'" "$tmp/e"; echo $?)" "$(cat "$tmp/e")"
"$KEFU" agent add 'Bad Name' --data "$D" >/dev/null 2>"$tmp/e"
check agent-bad-name "$([ $? -eq 2 ] && [ "$(wc -l <"$tmp/e")" = 1 ]; echo $?)" "$(cat "$tmp/e")"
"$KEFU" agent add carol --capacity 0 --data "$D" >/dev/null 2>"$tmp/e"
check agent-bad-capacity "$([ $? -eq 2 ] && grep -q 'capacity' "$tmp/e"; echo $?)" "$(cat "$tmp/e")"
# 6. presence: with every agent away, a handoff tells the customer nobody is free; one back online, not
# presence TOKEN STATUS
presence() {
    curl -s -m 5 -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
        -H "Authorization: Bearer $1" --data-binary "{\"status\":\"$2\"}" "$URL/v1/agent/presence"
}
# handoff: a new conversation asks for a person; its reply in $tmp/h
handoff() {
    curl -s -m 5 -o "$tmp/c" -X POST -H 'Content-Type: application/json' \
        --data-binary '{"channel":"web","customer":{"id":"p-'"$1"'"}}' "$URL/v1/conversations"
    curl -s -m 5 -o "$tmp/h" -X POST -H 'Content-Type: application/json' -H "Authorization: Bearer $(jq -r .token "$tmp/c")" \
        --data-binary '{"text":"我要转人工"}' "$URL/v1/conversations/$(jq -r .id "$tmp/c")/messages"
}
s=$(presence "$A" away)$(presence "$B2" away)$(presence tok-envy-0123456789abcdef offline)
handoff 1
away=$(jq -r '.reply.notice // ""' "$tmp/h")
presence "$A" online >/dev/null
handoff 2
back=$(jq -r '.reply.notice // ""' "$tmp/h")
check agent-presence "$([ "$s" = 200200200 ] && [ -n "$away" ] && [ -z "$back" ]; echo $?)" \
    "$s; away: '$away'; back: '$back'; $(cat "$tmp/h")"
kill "$pid" "$pid2"
wait "$pid" "$pid2" 2>/dev/null
pid=""
pid2=""
