#!/bin/sh
# messages.sh — a routing workload for the bundled rules: every example line of
# rules/ (in-domain, Chinese and English) and, when ../shared/data is beside the
# checkout, the Banking77 test lines (out of domain: a shop's bot should not
# answer them). Printed 20 times over, shuffled with a fixed seed.
set -eu
cd "$(dirname "$0")/.."
{
    sed -n 's/^[[:space:]]*example[[:space:]]\{1,\}//p' rules/*.rules
    [ -f ../shared/data/banking77/test.tsv ] && cut -f1 ../shared/data/banking77/test.tsv
} > /tmp/kefu-bench-base.$$
i=0
while [ $i -lt 20 ]; do cat /tmp/kefu-bench-base.$$; i=$((i + 1)); done |
    awk 'BEGIN { srand(42) } { print rand() "\t" $0 }' | sort -k1,1 | cut -f2-
rm -f /tmp/kefu-bench-base.$$
