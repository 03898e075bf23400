#!/bin/sh
# quality.sh — answer quality on the public data sets (docs/quality.md).
# Learns intents from the training splits only, evaluates the test splits
# mixed with out-of-scope lines from other domains, scores article
# retrieval on the FAQ sets, and draws the automation/precision curves.
#
#   scripts/quality.sh            # DATA=../shared/data, results in build/quality
#   DATA=/path/to/data OUT=dir scripts/quality.sh
#
# Writes OUT/*.json (one kefu eval --json --sweep object per set, and the
# peer's, bench/peer_linear.c, for the sets with examples), OUT/summary.txt,
# docs/quality.png and docs/quality-calibration.png (with gnuplot). Nothing from the data
# sets is written outside OUT.
set -eu
DATA=${DATA:-../shared/data}
OUT=${OUT:-build/quality}
KEFU=${KEFU:-build/kefu}
PEER=${PEER:-build/bench/peer_linear}
PNG=${PNG:-docs/quality.png}
CAL=${CAL:-docs/quality-calibration.png}
mkdir -p "$OUT"
[ -x "$KEFU" ] || make -s "$KEFU"
[ -x "$PEER" ] || make -s "$PEER"

# Every text of a file as an out-of-scope line (text<TAB>oos).
as_oos() { cut -f1 "$@" | awk 'NF' | sed 's/$/\toos/'; }
# The bundled rules' example lines, English or Chinese.
examples() { grep -h '^[[:space:]]*example[[:space:]]' rules/*.rules | sed 's/^[[:space:]]*example[[:space:]]*//; s/\\#/#/g'; }
has_han() { grep -P '[\x{4e00}-\x{9fff}]'; }
no_han() { grep -v -P '[\x{4e00}-\x{9fff}]'; }

echo "learning from the training splits" >&2
"$KEFU" learn "$DATA/banking77/train.tsv" -o "$OUT/banking77.rules"
"$KEFU" learn "$DATA/xsid_zh/val.tsv" -o "$OUT/xsid_zh.rules"
# StackFAQ with example questions: the source's first five rephrasings of each FAQ (rows 1-5 of
# each faq_id in queries.tsv) are examples of an intent named after the FAQ; rows 6-10 are the test.
awk -F'\t' '++n[$2] <= 5' "$DATA/stackfaq/queries.tsv" >"$OUT/stackfaq_ex.train.tsv"
awk -F'\t' '++n[$2] > 5' "$DATA/stackfaq/queries.tsv" >"$OUT/stackfaq_ex.test.tsv"
"$KEFU" learn "$OUT/stackfaq_ex.train.tsv" -o "$OUT/stackfaq_ex.rules"

echo "building the test files (in scope + out of scope)" >&2
examples | no_han | sed 's/$/\toos/' >"$OUT/shop_en.oos.tsv"
examples | has_han | sed 's/$/\toos/' >"$OUT/shop_zh.oos.tsv"
# banking77: its test split; oos = StackFAQ queries (web-app support, en) + shop examples (en)
{ cat "$DATA/banking77/test.tsv"; as_oos "$DATA/stackfaq/queries.tsv"; cat "$OUT/shop_en.oos.tsv"; } >"$OUT/banking77.test.tsv"
# xsid_zh: its test split; oos = CMRC 2018 questions (zh Wikipedia) + shop examples (zh)
{ cat "$DATA/xsid_zh/test.tsv"; as_oos "$DATA/cmrc2018_passages/queries.tsv"; cat "$OUT/shop_zh.oos.tsv"; } >"$OUT/xsid_zh.test.tsv"
# bundled shop rules: bank and assistant traffic. The Banking77 intents a shop shares
# (scripts/shop_shared.tsv: refunds, the account, a declined card payment, ...) are in scope with
# the shop's intent; every other Banking77 and every xSID test line must not be answered.
awk -F'\t' 'FNR == NR { if ($0 !~ /^#/ && NF == 2) map[$1] = $2; next }
    NF >= 2 && $1 != "" { print $1 "\t" ($2 in map ? map[$2] : "oos") }' \
    scripts/shop_shared.tsv "$DATA/banking77/test.tsv" >"$OUT/shop.oos.tsv"
as_oos "$DATA/xsid_zh/test.tsv" >>"$OUT/shop.oos.tsv"
# the same lines, every one out of scope (the stricter reading, reported beside it)
{ as_oos "$DATA/banking77/test.tsv"; as_oos "$DATA/xsid_zh/test.tsv"; } >"$OUT/shop_all.oos.tsv"
# FAQ sets: their queries; oos = the other domain's test lines in the same language
{ cat "$DATA/stackfaq/queries.tsv"; as_oos "$DATA/banking77/test.tsv"; } >"$OUT/stackfaq.queries.tsv"
{ cat "$DATA/cmrc2018_passages/queries.tsv"; as_oos "$DATA/xsid_zh/test.tsv"; } >"$OUT/cmrc2018.queries.tsv"
{ cat "$OUT/stackfaq_ex.test.tsv"; as_oos "$DATA/banking77/test.tsv"; } >"$OUT/stackfaq_ex.queries.tsv"

echo "evaluating" >&2
"$KEFU" eval --json --sweep --rules "$OUT/banking77.rules" "$OUT/banking77.test.tsv" >"$OUT/banking77.json"
"$KEFU" eval --json --sweep --rules "$OUT/xsid_zh.rules" "$OUT/xsid_zh.test.tsv" >"$OUT/xsid_zh.json"
"$KEFU" eval --json --sweep --rules rules "$OUT/shop.oos.tsv" >"$OUT/shop.json"
"$KEFU" eval --json --rules rules "$OUT/shop_all.oos.tsv" >"$OUT/shop_all.json"
"$KEFU" eval --json --sweep --faq "$DATA/stackfaq/faq.tsv" "$OUT/stackfaq.queries.tsv" >"$OUT/stackfaq.json"
"$KEFU" eval --json --sweep --faq "$DATA/cmrc2018_passages/faq.tsv" "$OUT/cmrc2018.queries.tsv" >"$OUT/cmrc2018.json"
"$KEFU" eval --json --sweep --faq "$DATA/stackfaq/faq.tsv" --rules "$OUT/stackfaq_ex.rules" \
    "$OUT/stackfaq_ex.queries.tsv" >"$OUT/stackfaq_ex.json"

# Each stage alone on the intent sets: the classifier without the vote, the vote without the classifier.
for s in banking77 xsid_zh; do
    "$KEFU" eval --json --no-examples --rules "$OUT/$s.rules" "$OUT/$s.test.tsv" >"$OUT/$s.clf_only.json"
    "$KEFU" eval --json --no-classifier --rules "$OUT/$s.rules" "$OUT/$s.test.tsv" >"$OUT/$s.vote_only.json"
done

# The peer: a plain liblinear logistic regression over tf-idf of the raw text (bench/peer_linear.c),
# trained on the same splits, tested on the same mixed files, its C by cross-validation and its
# threshold picked on the test file itself (its best case).
echo "training and testing the peer" >&2
"$PEER" "$DATA/banking77/train.tsv" "$OUT/banking77.test.tsv" >"$OUT/banking77.peer.json" 2>/dev/null
"$PEER" "$DATA/xsid_zh/val.tsv" "$OUT/xsid_zh.test.tsv" >"$OUT/xsid_zh.peer.json" 2>/dev/null
"$PEER" "$OUT/stackfaq_ex.train.tsv" "$OUT/stackfaq_ex.queries.tsv" >"$OUT/stackfaq_ex.peer.json" 2>/dev/null
"$KEFU" eval --json --faq "$DATA/stackfaq/faq.tsv" "$OUT/stackfaq_ex.queries.tsv" >"$OUT/stackfaq_half.json"

{
    printf '%-12s %6s %6s %6s %9s %10s %9s %11s %9s %9s %9s\n' set lines in oos accuracy automation precision \
        oos_handoff top1 top3 clarified
    for s in banking77 xsid_zh shop shop_all stackfaq cmrc2018 stackfaq_half stackfaq_ex; do
        jq -r --arg s "$s" '[$s, .total, .in_scope, .oos, .accuracy, .automation, .precision, .oos_handoff,
            (.top1 // "-"), (.top3 // "-"), .clarified] | @tsv' "$OUT/$s.json"
    done | awk -F'\t' '{ printf "%-12s %6d %6d %6d", $1, $2, $3, $4;
        for (i = 5; i <= 11; i++) if ($i == "-") printf " %9s", "-"; else printf " %8.1f%%", 100 * $i; print "" }'
} | tee "$OUT/summary.txt"

# kefu against the peer on the sets with examples: top-1, and the most automation any threshold
# gives at precision >= 95% with oos handoff >= 90% (kefu: over both of its sweeps; the peer: over
# its threshold), then kefu at its defaults and the classifier's expected calibration error.
best() { jq '[(.sweep // [])[], (.sweep_classifier // [])[] | select(.precision >= 0.95 and .oos_handoff >= 0.90)
    | .automation] | max // 0' "$1"; }
{
    printf '\n%-12s %4s %11s %11s %12s %12s %12s %7s\n' set lang kefu_top1 peer_top1 kefu_auto@95 peer_auto@95 \
        kefu_default ece
    for s in banking77:en xsid_zh:zh stackfaq_ex:en; do
        set=${s%:*}
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$set" "${s#*:}" "$(jq .accuracy "$OUT/$set.json")" \
            "$(jq .top1 "$OUT/$set.peer.json")" "$(best "$OUT/$set.json")" "$(jq .best.automation "$OUT/$set.peer.json")" \
            "$(jq .automation "$OUT/$set.json")" "$(jq '.calibration.ece // 0' "$OUT/$set.json")"
    done | awk -F'\t' '{ printf "%-12s %4s", $1, $2; for (i = 3; i <= 7; i++) printf " %11.1f%%", 100 * $i;
        printf " %7.3f\n", $8 }'
} | tee -a "$OUT/summary.txt"

{
    printf '\n%-12s %-12s %9s %10s %9s %11s\n' set stages accuracy automation precision oos_handoff
    for s in banking77 xsid_zh; do
        for v in "$s:all" "$s.clf_only:classifier" "$s.vote_only:examples"; do
            jq -r --arg s "$s" --arg v "${v#*:}" '[$s, $v, .accuracy, .automation, .precision, .oos_handoff] | @tsv' \
                "$OUT/${v%:*}.json"
        done
    done | awk -F'\t' '{ printf "%-12s %-12s", $1, $2; for (i = 3; i <= 6; i++) printf " %8.1f%%", 100 * $i; print "" }'
} | tee -a "$OUT/summary.txt"

# Reliability of the classifier: per bin of its best probability, the share of in-scope lines right.
for s in banking77 xsid_zh stackfaq_ex; do
    jq -r '.calibration.bins[] | select(.n > 0) | [.confidence, .accuracy, .n] | @tsv' "$OUT/$s.json" >"$OUT/$s.cal.tsv"
done

# The curves: one point per threshold, automation against precision.
for s in banking77 xsid_zh stackfaq cmrc2018; do
    jq -r '.sweep[] | [.threshold, .automation, .precision, .oos_handoff] | @tsv' "$OUT/$s.json" >"$OUT/$s.sweep.tsv"
    jq -r '[.automation, .precision] | @tsv' "$OUT/$s.json" >"$OUT/$s.default.tsv"
done
if command -v gnuplot >/dev/null; then
    gnuplot <<EOF
set terminal pngcairo size 1200,520 font "sans,10" noenhanced
set output "$PNG"
set multiplot layout 1,2
set title "Automation against precision as the lead needed moves (dots: the defaults)"
set xlabel "automation (share of in-scope messages answered automatically)"
set ylabel "precision (share of automatic answers that are right)"
set xrange [0:1]; set yrange [0.75:1]; set grid
set key bottom left
set arrow 1 from 0,0.95 to 1,0.95 nohead dt 2 lc rgb "gray"
set arrow 2 from 0.8,0.75 to 0.8,1 nohead dt 2 lc rgb "gray"
plot "$OUT/banking77.sweep.tsv" using 2:3 with lines lw 2 lc 1 title "Banking77 (en, examples)", \
     "$OUT/xsid_zh.sweep.tsv" using 2:3 with lines lw 2 lc 2 title "xSID zh (examples)", \
     "$OUT/stackfaq.sweep.tsv" using 2:3 with lines lw 2 lc 3 title "StackFAQ (en, articles)", \
     "$OUT/cmrc2018.sweep.tsv" using 2:3 with lines lw 2 lc 4 title "CMRC 2018 (zh, articles)", \
     "$OUT/banking77.default.tsv" using 1:2 with points pt 7 ps 1.5 lc 1 notitle, \
     "$OUT/xsid_zh.default.tsv" using 1:2 with points pt 7 ps 1.5 lc 2 notitle, \
     "$OUT/stackfaq.default.tsv" using 1:2 with points pt 7 ps 1.5 lc 3 notitle, \
     "$OUT/cmrc2018.default.tsv" using 1:2 with points pt 7 ps 1.5 lc 4 notitle
unset arrow 1; unset arrow 2
set title "Out-of-scope messages handed off, by the lead needed"
set xlabel "lead needed (examples: example_lead x 2, 0-1; articles: kb_lead, 0-1)"
set ylabel "oos handoff (share of out-of-scope messages not answered)"
set xrange [0:1]; set yrange [0.5:1]
set arrow 3 from 0,0.9 to 1,0.9 nohead dt 2 lc rgb "gray"
set key bottom right
plot "$OUT/banking77.sweep.tsv" using (\$1*2):4 with lines lw 2 lc 1 title "Banking77", \
     "$OUT/xsid_zh.sweep.tsv" using (\$1*2):4 with lines lw 2 lc 2 title "xSID zh", \
     "$OUT/stackfaq.sweep.tsv" using 1:4 with lines lw 2 lc 3 title "StackFAQ", \
     "$OUT/cmrc2018.sweep.tsv" using 1:4 with lines lw 2 lc 4 title "CMRC 2018"
unset multiplot
EOF
    echo "wrote $PNG" >&2
    gnuplot <<EOF
set terminal pngcairo size 640,560 font "sans,10" noenhanced
set output "$CAL"
set title "Classifier reliability: in-scope lines right, by its best probability"
set xlabel "probability of the classifier's best intent (bin mean)"
set ylabel "share of lines whose best intent is right"
set xrange [0:1]; set yrange [0:1]; set grid; set key bottom right
plot x with lines dt 2 lc rgb "gray" title "perfect calibration", \\
     "$OUT/banking77.cal.tsv" using 1:2 with linespoints lw 2 pt 7 lc 1 title "Banking77 (en)", \\
     "$OUT/xsid_zh.cal.tsv" using 1:2 with linespoints lw 2 pt 7 lc 2 title "xSID (zh)", \\
     "$OUT/stackfaq_ex.cal.tsv" using 1:2 with linespoints lw 2 pt 7 lc 3 title "StackFAQ + examples (en)"
EOF
    echo "wrote $CAL" >&2
fi
