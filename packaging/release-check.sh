#!/usr/bin/env bash
# Release check for the Debian package, as root on Debian 12:
#   sudo bash packaging/release-check.sh
# 1. builds qmon (release) and the .deb with cargo-deb,
# 2. runs lintian on it (fails on any error; warnings are printed),
# 3. installs it into a clean Debian 12 minbase root made by debootstrap
#    (built once and cached under $QMON_PKG_CACHE; every run installs into a
#    fresh copy of it) and runs `qmon --version` and `qmon doctor` there.
# Prints the time each step took. The .deb is left in
# $CARGO_TARGET_DIR/debian/.
#
# Environment: QMON_PKG_CACHE (default /var/cache/qmon-release-check),
# QMON_DEB_MIRROR (default: the host's Debian mirror, else deb.debian.org).
set -euo pipefail
# shellcheck source=scripts/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/../scripts/common.sh"

require_root
ensure_build_deps
ensure_packages lintian debootstrap dpkg-dev debian-archive-keyring
ensure_cargo
cd "$QMON_ROOT"

TARGET=$(qmon_target_dir)
CACHE=${QMON_PKG_CACHE:-/var/cache/qmon-release-check}
PRISTINE=$CACHE/bookworm-minbase
mkdir -p "$CACHE"

declare -a TIMES=()
T0=$SECONDS
lap() { # lap NAME — records the time since the previous lap
    TIMES+=("$(printf '%-34s %4ss' "$1" $((SECONDS - T0)))")
    T0=$SECONDS
}

host_mirror() {
    local m
    m=$(grep -hs -E '^URIs:|^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list |
        grep -oE 'https?://[^ ]+/debian/?' | grep -v security | head -n 1 || true)
    echo "${m:-http://deb.debian.org/debian}"
}
MIRROR=${QMON_DEB_MIRROR:-$(host_mirror)}

# --- 1. build ------------------------------------------------------------
if ! cargo deb --version >/dev/null 2>&1; then
    echo "==> cargo install cargo-deb"
    cargo install --locked cargo-deb
fi
if [ "${QMON_PKG_PROFILE:-release}" = debug ]; then
    # CI: package the debug build the test step already made. Same files,
    # same lintian and install checks, an unoptimised binary; a second
    # from-scratch release build would cost CI about ten minutes.
    echo "==> packaging the debug build (QMON_PKG_PROFILE=debug)"
    cargo build --locked -p qmon
    mkdir -p "$TARGET/release"
    cp "$TARGET/debug/qmon" "$TARGET/release/qmon"
else
    echo "==> cargo build --release -p qmon"
    cargo build --release --locked -p qmon
fi
gzip -9n <packaging/qmon.8 >"$TARGET/release/qmon.8.gz"
lap "build (cargo, release)"

echo "==> cargo deb"
rm -f "$TARGET"/debian/qmon_*.deb
cargo deb -p qmon --no-build --strip
DEB=$(ls "$TARGET"/debian/qmon_*.deb)
echo "built $DEB"
dpkg-deb --info "$DEB" | sed -n '/Package:/,$p'
dpkg-deb --contents "$DEB"
lap "cargo deb"

# --- 2. lintian ----------------------------------------------------------
echo "==> lintian"
# Runs as root here; lintian warns about that and works.
lintian --allow-root --fail-on error --display-info --tag-display-limit 0 "$DEB"
lap "lintian"

# --- 3. install into a clean Debian 12 root --------------------------------
if [ ! -x "$PRISTINE/usr/bin/apt-get" ]; then
    echo "==> debootstrap bookworm ($MIRROR) into $PRISTINE (once; cached)"
    rm -rf "$PRISTINE.tmp"
    debootstrap --variant=minbase bookworm "$PRISTINE.tmp" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1 ||
        { tail -n 30 "$CACHE/debootstrap.log"; die "debootstrap failed"; }
    rm -rf "$PRISTINE.tmp/var/cache/apt/archives/"*.deb
    mv "$PRISTINE.tmp" "$PRISTINE"
    lap "debootstrap (first run only)"
fi

ROOT=$(mktemp -d "$CACHE/root.XXXXXX")
cleanup() {
    for m in "$ROOT/sys" "$ROOT/proc" "$ROOT/dev"; do
        mountpoint -q "$m" && umount -R "$m" 2>/dev/null || umount -Rl "$m" 2>/dev/null || true
    done
    rm -rf --one-file-system "$ROOT"
}
trap cleanup EXIT
cp -a "$PRISTINE/." "$ROOT/"
cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
mount -t proc proc "$ROOT/proc"
mount --rbind /sys "$ROOT/sys" && mount --make-rslave "$ROOT/sys"
mount --rbind /dev "$ROOT/dev" && mount --make-rslave "$ROOT/dev"
# No service starts inside the chroot.
printf '#!/bin/sh\nexit 101\n' >"$ROOT/usr/sbin/policy-rc.d"
chmod 755 "$ROOT/usr/sbin/policy-rc.d"
lap "fresh root (copy of cached one)"

echo "==> apt-get install ./$(basename "$DEB") in a clean bookworm root"
cp "$DEB" "$ROOT/tmp/"
chroot "$ROOT" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
chroot "$ROOT" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -q --no-install-recommends "/tmp/$(basename "$DEB")"
chroot "$ROOT" dpkg-query -W -f='conffiles:${Conffiles}\n' qmon
[ -f "$ROOT/lib/systemd/system/qmon.service" ] || [ -f "$ROOT/usr/lib/systemd/system/qmon.service" ] ||
    die "qmon.service not installed"
lap "install .deb (apt, with deps)"

echo "==> qmon --version (chroot)"
chroot "$ROOT" /usr/bin/qmon --version
echo "==> qmon doctor (chroot)"
rc=0
chroot "$ROOT" /usr/bin/qmon doctor || rc=$?
# 0: capture can run; 1: it printed the problems. Anything else (a crash, a
# missing library: 127) is a packaging bug.
[ "$rc" -le 1 ] || die "qmon doctor exited $rc in the clean root"
echo "qmon doctor exit $rc"
echo "==> dpkg --purge qmon (chroot)"
chroot "$ROOT" dpkg --purge qmon
[ ! -e "$ROOT/etc/qmon/qmon.toml" ] || die "purge left /etc/qmon/qmon.toml"
lap "run in chroot, purge"

echo
echo "==================== release check ===================="
printf '  %s\n' "${TIMES[@]}"
echo "  .deb: $DEB"
echo "OK"
