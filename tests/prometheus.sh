#!/bin/sh
# prometheus.sh — the Prometheus alerting rules of the red lines (ops/prometheus/):
# promtool checks their syntax and runs their unit tests (kefu-alerts.test.yml: each
# alert fires on series over its line and stays quiet within it). Prints "ok NAME" or
# "not ok NAME" per case (tests/run.sh counts them). promtool is Debian's prometheus.
set -u
ok() { echo "ok $1"; }
no() { echo "not ok $1"; [ $# -gt 1 ] && printf '  %s\n' "$2"; }
if ! command -v promtool >/dev/null 2>&1; then
    no promtool-installed "promtool is missing: scripts/deps.sh installs prometheus"
    exit 0
fi
out=$(promtool check rules ops/prometheus/kefu-alerts.yml 2>&1)
[ $? -eq 0 ] && echo "$out" | grep -q 'SUCCESS: 4 rules found' && ok promtool-check-rules || no promtool-check-rules "$out"
out=$(cd ops/prometheus && promtool test rules kefu-alerts.test.yml 2>&1)
[ $? -eq 0 ] && echo "$out" | grep -q SUCCESS && ok promtool-test-rules || no promtool-test-rules "$out"
