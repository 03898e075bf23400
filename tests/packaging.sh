#!/bin/sh
# packaging.sh — what make install lays down, without building: `make install-files` of the
# built binary into a temporary prefix. What must hold: the binary, the rules, corpus and web
# files, the example environment file and the sysusers entry are there; the systemd unit points
# at the installed paths, keeps its hardening (its own user, ProtectSystem=strict, the data
# directory the only writable path, no new privileges, a private /tmp, no capabilities) and
# passes `systemd-analyze verify` without a single complaint; a unit with a mistake does not.
# Prints "ok NAME" / "not ok NAME".
set -u
BUILD="${BUILD:-build}"
KEFU="${KEFU:-$BUILD/kefu}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
. tests/lib.sh

P="$tmp/prefix"
if ! make -s --no-print-directory install-files PREFIX="$P" KEFU_BIN="$KEFU" >"$tmp/out" 2>&1; then
    no install-files "$(cat "$tmp/out")"
    exit 0
fi
U="$P/lib/systemd/system/kefu.service"
missing=""
for f in bin/kefu share/kefu/rules/account.rules share/kefu/web/widget.js share/kefu/corpus/README.md \
    share/kefu/kefu.env.example lib/sysusers.d/kefu.conf lib/systemd/system/kefu.service; do
    [ -e "$P/$f" ] || missing="$missing $f"
done
[ -x "$P/bin/kefu" ] || missing="$missing bin/kefu(executable)"
check install-layout "$([ -z "$missing" ]; echo $?)" "missing:$missing"

# the unit runs the installed binary on the installed files
grep -q "^ExecStart=$P/bin/kefu serve " "$U" && grep -q -- "--rules $P/share/kefu/rules" "$U" &&
    ! grep -q '@PREFIX@' "$U"
check unit-paths $? "$(grep -A2 ExecStart "$U")"

# the hardening it must keep
lacking=""
for kv in User=kefu Group=kefu ProtectSystem=strict ReadWritePaths=/var/lib/kefu StateDirectory=kefu \
    NoNewPrivileges=yes PrivateTmp=yes PrivateDevices=yes ProtectHome=yes CapabilityBoundingSet= \
    RestrictAddressFamilies= SystemCallFilter=@system-service EnvironmentFile=-/etc/kefu/kefu.env; do
    grep -q "^$kv" "$U" || lacking="$lacking $kv"
done
check unit-hardening "$([ -z "$lacking" ]; echo $?)" "lacking:$lacking"
grep -q '^u kefu ' "$P/lib/sysusers.d/kefu.conf"
check unit-user $?

# systemd-analyze verify: silent and 0 on the unit; a misspelt key or a missing binary is caught
if command -v systemd-analyze >/dev/null 2>&1; then
    systemd-analyze verify "$U" >"$tmp/v" 2>&1
    check unit-verify "$([ $? -eq 0 ] && [ ! -s "$tmp/v" ]; echo $?)" "$(cat "$tmp/v")"
    sed 's/^ProtectSystem=/ProtectSystm=/' "$U" >"$tmp/typo.service"
    systemd-analyze verify "$tmp/typo.service" >"$tmp/v" 2>&1
    check unit-verify-catches-typo "$(grep -q "Unknown key 'ProtectSystm'" "$tmp/v"; echo $?)" "$(cat "$tmp/v")"
    sed "s|^ExecStart=$P/bin/kefu|ExecStart=$P/bin/nokefu|" "$U" >"$tmp/nobin.service"
    systemd-analyze verify "$tmp/nobin.service" >"$tmp/v" 2>&1
    check unit-verify-catches-binary "$([ $? -ne 0 ]; echo $?)" "$(cat "$tmp/v")"
else
    no unit-verify "systemd-analyze is not installed (scripts/deps.sh installs systemd)"
fi

# the example environment file: every setting commented out but KEFU_FLAGS, and no secret in it
grep -v '^#' "$P/share/kefu/kefu.env.example" | grep -v '^$' >"$tmp/set"
check env-example "$([ "$(cat "$tmp/set")" = "KEFU_FLAGS=" ]; echo $?)" "$(cat "$tmp/set")"
