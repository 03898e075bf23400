#!/bin/sh
# report.sh — merge every part's figures into bench/results.json and write
# docs/performance.md from them.
# Each part P (router, kb, http, durability, memory, ...) leaves bench/out/P.json
# (one JSON object; an optional "targets" array of {what, target, value, met})
# and bench/out/P.md (its section, starting with "## "). This script adds the
# machine the figures come from, orders the sections (router, kb, http,
# durability, memory, then any other part by name), each followed by the
# hand-written bench/notes/P.md when there is one, and ends with a table of
# every target, met or missed. It measures nothing itself, so it can run after
# a single part was re-run: `make bench-kb` re-runs it too.
set -eu
cd "$(dirname "$0")/.."
OUT=${OUT:-bench/out}
mkdir -p "$OUT" docs

order="router kb http durability memory"
parts=""
for p in $order; do [ -f "$OUT/$p.json" ] || [ -f "$OUT/$p.md" ] && parts="$parts $p"; done
for f in "$OUT"/*.json "$OUT"/*.md; do
    [ -f "$f" ] || continue
    p=$(basename "$f"); p=${p%.*}
    case " $order $parts " in *" $p "*) ;; *) parts="$parts $p" ;; esac
done

# the machine: a part may have been run on another day, so each part's JSON
# may carry its own "date"; this is the machine the report is written on
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo 2>/dev/null | head -1)
cores=$(nproc 2>/dev/null || echo 0)
mem_kib=$(awk '/^MemTotal:/ { print $2 }' /proc/meminfo 2>/dev/null || echo 0)
kernel=$(uname -sr)
os=$(. /etc/os-release 2>/dev/null && echo "${PRETTY_NAME:-}" || true)
ccver=$(${CC:-cc} --version 2>/dev/null | head -1 || true)
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
git diff --quiet HEAD -- engine include bench 2>/dev/null || commit="$commit+changes"
date=$(date -u +%Y-%m-%dT%H:%M:%SZ)

tmp=$(mktemp)
trap 'rm -f "$tmp" "$tmp.parts"' EXIT INT TERM
: > "$tmp.parts"
for p in $parts; do
    [ -f "$OUT/$p.json" ] || continue
    jq -c --arg p "$p" '{($p): .}' "$OUT/$p.json" >> "$tmp.parts" ||
        { echo "report.sh: $OUT/$p.json is not valid JSON" >&2; exit 1; }
done
jq -s --arg cpu "$cpu" --argjson cores "$cores" --argjson mem "$mem_kib" --arg kernel "$kernel" \
    --arg os "$os" --arg cc "$ccver" --arg commit "$commit" --arg date "$date" --arg order "$parts" '
    { machine: { cpu: $cpu, cores: $cores, memory_gib: ($mem / 1048576 * 10 | round / 10),
                 kernel: $kernel, os: $os, compiler: $cc, date: $date, git_commit: $commit },
      order: ($order | split(" ") | map(select(. != ""))),
      parts: (add // {}) }' "$tmp.parts" > bench/results.json

m() { jq -r ".machine.$1" bench/results.json; }
# how long the last whole run took, part by part (the Makefile's bench target writes it)
took="bounded to about 10 minutes on 2 cores"
if [ -f "$OUT/seconds" ]; then
    took=$(awk '$1 == "total" { t = $2 } $1 != "total" { p = p sep $1 " " int($2 / 60) " min " $2 % 60 " s"; sep = ", " }
        END { printf "the last whole run took %d min %d s on 2 cores: %s", t / 60, t % 60, p }' "$OUT/seconds")
fi
{
    cat <<EOF2
# Performance

Every figure on this page comes from \`make bench\` ($took), which runs
each part below and then \`bench/report.sh\`; a single part re-runs alone with \`make bench-router\`,
\`bench-kb\`, \`bench-http\`, \`bench-durability\`, \`bench-memory\` or \`bench-actions\` (each rewrites its own
\`bench/out/PART.json\` and \`.md\`, and this page). The raw figures are in
[bench/results.json](../bench/results.json). \`make bench-deps\` installs what the benchmarks need
beyond the build (gnuplot, wrk, and RiveScript from npm into \`bench/node_modules\`).

How to read them: a rate or a time is the **median** of several runs or rounds (the spread is in the
JSON), and a latency percentile (p50, p99) is over every request of a run. The machine is shared
and noisy, so an absolute figure can move by tens of percent between runs; what carries over is
a **ratio** to a baseline measured in the same run on the same machine — kefu against RiveScript,
kefu against a bare libmicrohttpd server, N = 10,000 intents against N = 100.

Machine of this report: $(m cpu), $(m cores) cores, $(m memory_gib) GiB, $(m os), $(m kernel),
$(m compiler); written $(m date) at commit \`$(m git_commit)\`.

EOF2
    for p in $parts; do
        [ -f "$OUT/$p.md" ] || continue
        cat "$OUT/$p.md"
        echo
        # what the figures alone do not say: where the time goes, what was changed
        [ -f "bench/notes/$p.md" ] && { cat "bench/notes/$p.md"; echo; }
    done
    echo "## Targets"
    echo
    echo "| part | what | target | measured | |"
    echo "| --- | --- | --- | --- | --- |"
    jq -r '.order[] as $p | .parts[$p].targets[]? |
        "| \($p) | \(.what) | \(.target) | \(.value) | \(if .met then "met" else "**missed**" end) |"' bench/results.json
    echo
    echo "Where a target is missed, the part's section says where the time goes."
} > "$tmp"
mv "$tmp" docs/performance.md
echo "report: wrote bench/results.json and docs/performance.md ($(echo $parts | wc -w) parts)" >&2
