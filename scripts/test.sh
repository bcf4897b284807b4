#!/usr/bin/env bash
# Everything CI checks, from a fresh Debian 12 machine, as root:
#   sudo bash scripts/test.sh
# Installs build and test dependencies, then: cargo fmt --check, clippy
# (-D warnings), build, unit + end-to-end tests (real BPF; the e2e tests
# run one at a time), the fuzz smoke run when fuzz/smoke.sh exists, and the
# packaging release check (.deb + lintian + install into a cached debootstrap
# root; QMON_SKIP_RELEASE_CHECK=1 skips it).
# Runs every step it can, prints a summary, exits non-zero on any failure.
set -uo pipefail
# shellcheck source=scripts/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

require_root
ensure_build_deps
ensure_packages curl nginx-light python3 openssl tmux sqlite3 prometheus \
    python3-h2 python3-httpx python3-grpcio
# tests/tests/packaging.rs: systemd-analyze verify, kubectl kustomize.
ensure_packages systemd
command -v kubectl >/dev/null 2>&1 || (ensure_packages kubectl) ||
    echo "qmon: kubectl not installable here; the kustomize test in tests/tests/packaging.rs will fail" >&2
ensure_cargo
ensure_tracefs
cd "$QMON_ROOT"

cargo fmt --version >/dev/null 2>&1 || die "rustfmt missing: rustup component add rustfmt"
cargo clippy --version >/dev/null 2>&1 || die "clippy missing: rustup component add clippy"

declare -a STEPS=() RESULTS=()
FAILED=0

# step NAME CMD... — runs CMD, records PASS/FAIL with its duration.
step() {
    local name=$1
    shift
    echo "==> $name"
    local t0=$SECONDS rc=0
    "$@" || rc=$?
    local dt=$((SECONDS - t0))
    STEPS+=("$name")
    if [ "$rc" -eq 0 ]; then
        RESULTS+=("PASS (${dt}s)")
    else
        RESULTS+=("FAIL (exit $rc, ${dt}s)")
        FAILED=$((FAILED + 1))
    fi
    return "$rc"
}

skip() {
    STEPS+=("$1")
    RESULTS+=("SKIPPED: $2")
}

run_tests() {
    if cargo nextest --version >/dev/null 2>&1; then
        # .config/nextest.toml puts qmon-e2e in a one-at-a-time test group.
        cargo nextest run --workspace --no-fail-fast
    else
        local rc=0
        cargo test --workspace --exclude qmon-e2e --no-fail-fast || rc=$?
        cargo test -p qmon-e2e --no-fail-fast -- --test-threads=1 || rc=$?
        return "$rc"
    fi
}

step "cargo fmt --check" cargo fmt --all --check
step "cargo clippy --all-targets -D warnings" cargo clippy --workspace --all-targets -q -- -D warnings
if step "cargo build" cargo build --workspace -q; then
    step "tests (unit + e2e)" run_tests
else
    skip "tests (unit + e2e)" "build failed"
fi
# Kernels with kprobes (Debian 6.1, 6.12) in QEMU guests: docs/compatibility.md.
step "kernel matrix (VMs)" bash tests/vm/run.sh
if [ -f fuzz/smoke.sh ]; then
    step "fuzz smoke" bash fuzz/smoke.sh
else
    skip "fuzz smoke" "no fuzz/smoke.sh"
fi
if [ "${QMON_SKIP_RELEASE_CHECK:-0}" = 1 ]; then
    skip "packaging release check" "QMON_SKIP_RELEASE_CHECK=1"
else
    # ~20 s once cached; the first run on a machine also installs cargo-deb,
    # builds release and debootstraps (see packaging/README.md).
    # Packages the debug build from the test step (see packaging/README.md).
    export QMON_PKG_PROFILE=${QMON_PKG_PROFILE:-debug}
    step "packaging release check" bash packaging/release-check.sh
fi

echo
echo "==================== qmon test summary ===================="
for i in "${!STEPS[@]}"; do
    printf '  %-42s %s\n' "${STEPS[$i]}" "${RESULTS[$i]}"
done
echo "==========================================================="
if [ "$FAILED" -ne 0 ]; then
    echo "FAILED: $FAILED step(s) failed"
    exit 1
fi
echo "OK: all steps passed"
