#!/bin/sh
# classify.sh — part "classify": the trained intent classifier at scale.
# bench/classify_bench generates example-only rule sets (our own syllables
# and random ideographs, a fixed seed: two in three intents English-like,
# one in three Chinese) of 15 / 50 / 150 intents with 100 examples each,
# trains the classifier three times without a cache, loads it three times
# from the cache and classifies 2,000 generated messages five times; at
# 150 intents it also times loading the bundled rules alone, with their
# classifier from the cache, and with it trained. Medians throughout.
# Writes bench/out/classify.json and .md.
# usage: bench/classify.sh   (env: BUILD, SIZES="15 50 150")
set -eu
cd "$(dirname "$0")/.."
. bench/lib.sh
SIZES=${SIZES:-15 50 150}
[ -x "$BUILD/bench/classify_bench" ] ||
    { echo "classify.sh: $BUILD/bench/classify_bench is missing (make bench-classify builds it)" >&2; exit 1; }
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT INT TERM
for n in $SIZES; do
    extra=""
    [ "$n" = 150 ] && extra=rules
    "$BUILD/bench/classify_bench" "$n" 100 $extra >> "$tmp"
    tail -1 "$tmp" >/dev/null
    jq -r 'select(.intents == '"$n"') | "classify: \(.intents) intents: train \(.train_cpu_s) s cpu, \(.model_bytes) bytes, \(.classify_us) us"' "$tmp" >&2
done
jq -s '(map(select(.intents == 150)) | .[0]) as $b
    | { sets: ., targets: [
        { what: "classifier training, 15,000 examples of 150 intents (CPU of all training threads; wall \($b.train_s) s)",
          target: "<= 3 s", value: $b.train_cpu_s, met: ($b.train_cpu_s <= 3) },
        { what: "classifier model, 15,000 examples of 150 intents (bytes)",
          target: "<= 16 MB", value: $b.model_bytes, met: ($b.model_bytes <= 16777216) },
        { what: "classify one message at 150 intents (µs)", target: "<= 20 µs", value: $b.classify_us,
          met: ($b.classify_us <= 20) },
        { what: "load the bundled rules with their cached classifier against without it (s)",
          target: "no slower than today (load alone: \($b.bundled_load_s) s)", value: $b.bundled_load_cached_s,
          met: ($b.bundled_load_cached_s <= $b.bundled_load_s * 1.1) } ] }' "$tmp" > "$OUT/classify.json"

j=$OUT/classify.json
{
    echo "## Classifier: training, size and cost at scale"
    echo
    echo "\`make bench-classify\` (\`bench/classify.sh\`) generates example-only rule sets of 15, 50 and 150"
    echo "intents with 100 example lines each (two in three intents English-like words made of our own"
    echo "syllables, one in three random ideographs; each intent has six words of its own among Zipf-drawn"
    echo "common ones), trains the classifier three times without a cache, loads it three times from the"
    echo "cache and classifies 2,000 generated messages five times (medians). Training and the cached load"
    echo "go through \`classify_build()\`, exactly as a reload does."
    echo
    echo "| intents | examples | features kept | model | training (CPU) | training (wall) | cached load | per message |"
    echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
    jq -r '.sets[] | [.intents, .examples, .features, .model_bytes, .train_cpu_s, .train_s, .cached_load_s, .classify_us] | @tsv' "$j" |
        while IFS="$(printf '\t')" read -r n e f b tc tw cl us; do
            echo "| $n | $(fmt "$e") | $(fmt "$f") | $(ratio "$b" 1048576 1) MiB | $(ratio "$tc" 1 2) s | $(ratio "$tw" 1 2) s | $(ratio "$cl" 0.001 1) ms | $(ratio "$us" 1 1) µs |"
        done
    echo
    b=$(jq -r '.sets[] | select(.intents == 150)' "$j")
    echo "The bundled rules (54 intents with examples) load in $(echo "$b" | jq -r '.bundled_load_s * 10000 | round / 10') ms alone,"
    echo "$(echo "$b" | jq -r '.bundled_load_cached_s * 10000 | round / 10') ms with their classifier from the cache (every start and reload"
    echo "of unchanged examples) and $(echo "$b" | jq -r '.bundled_load_trained_s * 1000 | round') ms when the examples changed and it"
    echo "is trained (off the request path: messages go on with the running set meanwhile)."
} > "$OUT/classify.md"
