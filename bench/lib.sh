# lib.sh — helpers the bench/*.sh parts share (sourced, POSIX sh).
# Every part writes bench/out/PART.json (one JSON object of figures, with a
# "targets" array of {what, target, value, met}) and bench/out/PART.md (a
# section starting with "## "), draws docs/perf-PART*.png, then bench/report.sh
# merges everything into bench/results.json and docs/performance.md.

BUILD=${BUILD:-build}
OUT=${OUT:-bench/out}
WORKLOAD=${WORKLOAD:-../shared/bench/workload}
mkdir -p "$OUT" docs "$BUILD/bench"

# median of the numbers on stdin (one a line)
median() {
    sort -g | awk '{ v[NR] = $1 } END { if (!NR) { print 0; exit }
        if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# fmt N: a number with thousands separators and no decimals (1234567 -> 1,234,567)
fmt() {
    printf '%s\n' "$1" | awk '{ n = sprintf("%.0f", $1); s = ""; neg = n ~ /^-/; if (neg) n = substr(n, 2)
        while (length(n) > 3) { s = "," substr(n, length(n) - 2) s; n = substr(n, 1, length(n) - 3) }
        print (neg ? "-" : "") n s }'
}

# gen_corpus LANG N: the generated corpus of N articles in BUILD/bench/corpus/LANG-N,
# made once (a ".complete" file marks a whole one); prints its directory. A corpus
# made anew drops the database a part kept of the old one (DIR.db).
gen_corpus() {
    d=$BUILD/bench/corpus/$1-$2
    if [ ! -f "$d/.complete" ]; then
        rm -rf "$d" "$d.db"
        mkdir -p "$d"
        "$BUILD/bench/gen_corpus" articles "$1" "$2" "$d" >&2 || return 1
        touch "$d/.complete"
    fi
    echo "$d"
}

# ratio A B [DIGITS]: A / B with DIGITS decimals (default 1)
ratio() {
    awk -v a="$1" -v b="$2" -v d="${3:-1}" 'BEGIN { if (b + 0 == 0) print "n/a"; else printf "%.*f\n", d, a / b }'
}

# plot SCRIPT: runs gnuplot on the script given on stdin when gnuplot exists
plot() {
    if command -v gnuplot >/dev/null 2>&1; then
        gnuplot || echo "bench: gnuplot failed; the chart was not redrawn" >&2
    else
        cat >/dev/null
        echo "bench: gnuplot is not installed (make bench-deps); the chart was not redrawn" >&2
    fi
}

# the gnuplot preamble: PNG of 800x450, a readable font, light grid
plot_head() {
    printf 'set terminal pngcairo size 800,450 font "sans,10"\nset output "%s"\nset grid lc rgb "#dddddd"\nset key top right\n' "$1"
}

# make_convs N FILE: N conversations on the server at $url (or as many as ten 2 s wrk runs
# give) as "id token" lines; wrk runs under $cpin when the caller pins it.
# wrk runs for its whole -d even when create.lua's threads stop early, so the runs are short
# and repeated until N are made.
make_convs() {
    rm -f "$2" "$2".part.*
    : >"$2"
    tries=0
    while [ "$(wc -l <"$2")" -lt "$1" ] && [ $tries -lt 10 ]; do
        per=$((($1 - $(wc -l <"$2") + 1) / 2))
        # shellcheck disable=SC2086
        ${cpin:-} wrk -t2 -c16 -d2s -s bench/create.lua "$url" -- "$2.part" "$per" >/dev/null
        cat "$2".part.* >>"$2" 2>/dev/null || true
        rm -f "$2".part.*
        tries=$((tries + 1))
    done
    [ -s "$2" ] || { echo "bench: no conversations were created" >&2; exit 1; }
}
