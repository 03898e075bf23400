#!/bin/sh
# kb.sh — part "kb": knowledge-base import time and search latency on generated
# corpora of 1,000, 10,000 and 100,000 articles, English and Chinese
# (bench/gen_corpus: our own word lists and sentence frames, fixed seed). For
# each corpus kb_bench imports it into a fresh database (one transaction, then
# the index is optimized) and searches it with generated questions (about 80%
# about some article, often naming its product; the rest about nothing there):
# wall and thread-CPU latency, p50 and p99 over every search. The number of
# questions shrinks as the corpus grows (QUERIES) to keep the part bounded.
# Writes bench/out/kb.json and .md, docs/perf-kb.png.
# usage: bench/kb.sh   (env: BUILD, SIZES="1000 10000 100000", QUERIES="1000 500 300")
set -eu
cd "$(dirname "$0")/.."
. bench/lib.sh
SIZES=${SIZES:-1000 10000 100000}
QUERIES=${QUERIES:-1000 500 300}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM
for t in kb_bench gen_corpus; do
    [ -x "$BUILD/bench/$t" ] || { echo "kb.sh: $BUILD/bench/$t is missing (make bench-kb builds it)" >&2; exit 1; }
done

: > "$tmp/rows"
for lang in en zh; do
    set -- $QUERIES
    for n in $SIZES; do
        q=${1:-500}
        [ $# -gt 1 ] && shift
        corpus=$(gen_corpus "$lang" "$n")
        "$BUILD/bench/gen_corpus" queries "$lang" "$n" "$q" > "$tmp/q"
        keep=""
        [ "$lang" = en ] && [ "$n" = 100000 ] && keep=$corpus.db # bench/memory.sh serves it
        "$BUILD/bench/kb_bench" "$corpus" rules "$tmp/q" $keep |
            jq -c --arg lang "$lang" --argjson n "$n" '{lang: $lang, n: $n} + .' >> "$tmp/rows"
        tail -1 "$tmp/rows" | jq -r '"kb: \(.lang) \(.n): import \(.import_ms) ms, search p50 \(.search_p50_ms) p99 \(.search_p99_ms) ms (cpu \(.search_cpu_p99_ms))"' >&2
    done
done

jq -s '
    (map(select(.n == 100000)) ) as $big
    | { corpora: ., row_budget: 1000,
        targets: [ $big[] | { what: "kb search p99 at 100,000 articles, \(.lang) (thread CPU; wall \(.search_p99_ms) ms)",
                             target: "<= 5 ms", value: .search_cpu_p99_ms, met: (.search_cpu_p99_ms <= 5) } ] }' \
    "$tmp/rows" > "$OUT/kb.json"

j=$OUT/kb.json
{
    echo "## Knowledge base: import and search"
    echo
    echo "\`make bench-kb\` (\`bench/kb.sh\`) generates corpora of 1,000, 10,000 and 100,000 articles in English"
    echo "and in Chinese with \`bench/gen_corpus\` (a shop's help centre: a product of one of 4,096 brands,"
    echo "a topic such as returns or repairs, a problem, three paragraphs from sentence frames; word lists"
    echo "and frames of our own), imports each into a fresh database with \`kb_import()\` and searches it"
    echo "with generated questions (about 80% about one of the articles, often naming its brand, the rest"
    echo "about nothing the corpus holds). A search is the whole \`kb_search()\`: tokenize, BM25 over FTS5"
    echo "(\`kefu_rank()\`, or the champion lists for a question of common words), locale preference and"
    echo "confidence; snippets are cut only for the hits a caller shows (\`kb_snippets()\`), not here. The"
    echo "import includes the term counts, champion lists and row lengths. p50 and p99 are over every"
    echo "search of the run; the thread-CPU columns leave out the time other processes of the shared"
    echo "machine took."
    echo
    echo "| corpus | articles | import | searches | found | p50 | p99 | p50 CPU | p99 CPU |"
    echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    jq -r '.corpora[] | [.lang, .n, .import_ms, .messages, .found, .search_p50_ms, .search_p99_ms,
            .search_cpu_p50_ms, .search_cpu_p99_ms] | @tsv' "$j" |
        while IFS="$(printf '\t')" read -r l n im q f p50 p99 c50 c99; do
            echo "| $l | $(fmt "$n") | $(ratio "$im" 1000 1) s | $(fmt "$q") | $(fmt "$f") | $p50 ms | $p99 ms | $c50 ms | $c99 ms |"
        done
    echo
    en1=$(jq -r '.corpora[] | select(.lang == "en" and .n == 1000) | .search_cpu_p50_ms' "$j")
    en3=$(jq -r '.corpora[] | select(.lang == "en" and .n == 100000) | .search_cpu_p50_ms' "$j")
    zh1=$(jq -r '.corpora[] | select(.lang == "zh" and .n == 1000) | .search_cpu_p50_ms' "$j")
    zh3=$(jq -r '.corpora[] | select(.lang == "zh" and .n == 100000) | .search_cpu_p50_ms' "$j")
    echo "From 1,000 to 100,000 articles the median search costs $(ratio "$en3" "$en1" 1)× more in English and"
    echo "$(ratio "$zh3" "$zh1" 1)× more in Chinese (thread CPU)."
    echo
    echo "![search latency by corpus size](perf-kb.png)"
} > "$OUT/kb.md"

jq -r '.corpora[] | select(.lang == "en") | [.n, .search_p50_ms, .search_p99_ms, .search_cpu_p99_ms] | @tsv' "$j" > "$tmp/en.tsv"
jq -r '.corpora[] | select(.lang == "zh") | [.n, .search_p50_ms, .search_p99_ms, .search_cpu_p99_ms] | @tsv' "$j" > "$tmp/zh.tsv"
{
    plot_head docs/perf-kb.png
    cat <<PLOT
set title "Knowledge-base search latency by corpus size"
set logscale xy
set xlabel "articles"
set ylabel "ms"
set xrange [700:140000]
plot "$tmp/en.tsv" using 1:2 with linespoints lw 2 pt 7 title "en p50", \
     "$tmp/en.tsv" using 1:3 with linespoints lw 2 pt 7 dt 2 title "en p99", \
     "$tmp/zh.tsv" using 1:2 with linespoints lw 2 pt 5 title "zh p50", \
     "$tmp/zh.tsv" using 1:3 with linespoints lw 2 pt 5 dt 2 title "zh p99", \
     5 with lines dt 3 lc rgb "#888888" title "target p99 at 100k"
PLOT
} | plot
echo "kb: wrote $OUT/kb.json, $OUT/kb.md, docs/perf-kb.png" >&2
