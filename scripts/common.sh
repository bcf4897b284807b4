# Shared set-up for scripts/run.sh and scripts/test.sh. Sourced, not run.
# Idempotent and quiet: does nothing visible when everything is in place.

QMON_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
QMON_LOG_DIR="${TMPDIR:-/tmp}/qmon-setup"
mkdir -p "$QMON_LOG_DIR"

die() {
    echo "qmon: $*" >&2
    exit 1
}

require_root() {
    [ "$(id -u)" -eq 0 ] || die "must run as root (it installs packages and loads BPF programs); try: sudo $0"
}

# ensure_packages PKG... — installs whatever is missing, with one
# `apt-get update` first, only when something is missing.
ensure_packages() {
    local missing=() p
    for p in "$@"; do
        if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
            missing+=("$p")
        fi
    done
    [ "${#missing[@]}" -eq 0 ] && return 0
    command -v apt-get >/dev/null || die "missing packages (${missing[*]}) and no apt-get to install them"
    echo "qmon: installing ${missing[*]} (log: $QMON_LOG_DIR/apt.log)" >&2
    # Keep package scripts from starting services (nginx, prometheus) on
    # this machine while installing; the tests run their own instances.
    local added_policy=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        added_policy=1
    fi
    local rc=0
    {
        DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
    } >"$QMON_LOG_DIR/apt.log" 2>&1 || rc=$?
    [ "$added_policy" -eq 1 ] && rm -f /usr/sbin/policy-rc.d
    if [ "$rc" -ne 0 ]; then
        tail -n 30 "$QMON_LOG_DIR/apt.log" >&2
        die "installing ${missing[*]} failed"
    fi
}

ensure_build_deps() {
    ensure_packages clang llvm libelf-dev zlib1g-dev pkg-config make
}

# The Rust toolchain comes from rustup, installed ahead of time; a fresh
# shell (CI) may not have ~/.cargo/bin on PATH yet.
ensure_cargo() {
    if ! command -v cargo >/dev/null 2>&1 && [ -f "$HOME/.cargo/env" ]; then
        # shellcheck disable=SC1091
        . "$HOME/.cargo/env"
    fi
    command -v cargo >/dev/null 2>&1 ||
        die "cargo not found: install the Rust toolchain with rustup (https://rustup.rs) and re-run"
}

# qmon attaches to syscall tracepoints, which live in tracefs.
ensure_tracefs() {
    if [ ! -e /sys/kernel/tracing/events ]; then
        mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null ||
            die "tracefs is not mounted at /sys/kernel/tracing and mounting it failed"
    fi
}

qmon_target_dir() {
    echo "${CARGO_TARGET_DIR:-$QMON_ROOT/target}"
}
