#!/bin/sh
# deps.sh — make sure the Debian packages kefu builds and tests with are installed.
# Quiet and fast when everything is there; otherwise installs the missing set with
# apt-get (as root, or through sudo). Usage: scripts/deps.sh [--check]
set -eu

PKGS="build-essential pkg-config libpcre2-dev libmicrohttpd-dev libsqlite3-dev sqlite3 \
libjansson-dev libcmocka-dev libssl-dev libcurl4-openssl-dev opencc clang libclang-rt-14-dev valgrind curl jq openssl systemd"
# the PostgreSQL store (libpq) and its tests: a throwaway server (tests/pg_lib.sh), nginx in front of two nodes
PKGS="$PKGS libpq-dev postgresql nginx-light"
# the browser tests (tests/browser/): Debian's Chromium, CJK fonts, and node + npm where node is missing
PKGS="$PKGS chromium fonts-noto-cjk"
# the intent classifier (engine/classify_train.c)
PKGS="$PKGS liblinear-dev"
command -v node >/dev/null 2>&1 || PKGS="$PKGS nodejs npm"

missing() {
    for lib in libpcre2-8 libmicrohttpd sqlite3 jansson cmocka libcrypto libpq libcurl; do
        pkg-config --exists "$lib" 2>/dev/null || { echo "$lib"; return; }
    done
    for cmd in cc make opencc_dict clang valgrind sqlite3 curl jq openssl systemd-analyze; do
        command -v "$cmd" >/dev/null 2>&1 || { echo "$cmd"; return; }
    done
    [ -e /usr/share/opencc/TSCharacters.ocd2 ] || { echo opencc-data; return; }
    ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { echo postgresql; return; }
    command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || { echo nginx-light; return; }
    [ -e /usr/include/linear.h ] || { echo liblinear-dev; return; }
    for cmd in chromium node npm; do
        command -v "$cmd" >/dev/null 2>&1 || { echo "$cmd"; return; }
    done
    ls /usr/share/fonts/opentype/noto/NotoSansCJK-*.ttc >/dev/null 2>&1 || { echo fonts-noto-cjk; return; }
    # the sanitizer runtime clang needs for make asan
    ls /usr/lib/llvm-14/lib/clang/14*/lib/linux/libclang_rt.asan-x86_64.a >/dev/null 2>&1 ||
        ls /usr/lib/llvm-14/lib/clang/14*/lib/linux/libclang_rt.asan-*.a >/dev/null 2>&1 || { echo libclang-rt; return; }
}

what=$(missing || true)
[ -z "$what" ] && exit 0
[ "${1:-}" = "--check" ] && { echo "missing: $what" >&2; exit 1; }

echo "deps: $what is missing; installing build and test packages" >&2
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >&2
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $PKGS >&2
what=$(missing || true)
[ -z "$what" ] || { echo "deps: still missing after install: $what" >&2; exit 1; }
