#!/bin/sh
# bench-deps.sh — what `make bench` needs beyond the build: gnuplot (charts), wrk
# (HTTP load), node and npm (RiveScript, the router's peer), and RiveScript itself,
# installed by npm from the committed bench/package-lock.json into bench/node_modules
# (kept between runs). Quiet when everything is there. Usage: scripts/bench-deps.sh [--check]
set -eu
cd "$(dirname "$0")/.."

PKGS="gnuplot-nox wrk nodejs npm jq"
missing=""
for cmd in gnuplot wrk node npm jq; do
    command -v "$cmd" >/dev/null 2>&1 || missing="$missing $cmd"
done
if [ -n "$missing" ]; then
    [ "${1:-}" = "--check" ] && { echo "missing:$missing" >&2; exit 1; }
    echo "bench-deps:$missing missing; installing $PKGS" >&2
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq >&2
    # shellcheck disable=SC2086
    $SUDO apt-get install -y -qq --no-install-recommends $PKGS >&2
fi

# RiveScript at the version the lock file pins; reinstalled when the lock changes
lock=bench/package-lock.json
stamp=bench/node_modules/.kefu-lock
if [ ! -d bench/node_modules/rivescript ] || ! cmp -s "$lock" "$stamp" 2>/dev/null; then
    [ "${1:-}" = "--check" ] && { echo "missing: bench/node_modules (npm ci)" >&2; exit 1; }
    echo "bench-deps: npm ci in bench/ (rivescript)" >&2
    (cd bench && npm ci --no-audit --no-fund --loglevel=error >&2)
    cp "$lock" "$stamp"
fi
