#!/usr/bin/env bash
# Run every fuzz target for a bounded time; non-zero exit on any crash.
# Usage: fuzz/smoke.sh            (FUZZ_SECONDS=30 per target by default)
set -euo pipefail
cd "$(dirname "$0")"
SECS=${FUZZ_SECONDS:-30}
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz
fi
# cargo-fuzz needs nightly-only flags (-Zsanitizer). Use a nightly toolchain
# when one is installed; otherwise let the stable compiler accept them.
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  TC=(+nightly)
else
  TC=()
  export RUSTC_BOOTSTRAP=1
fi
status=0
for t in $(cargo "${TC[@]}" fuzz list); do
  mkdir -p "corpus/$t"
  echo "== fuzz $t for ${SECS}s"
  # -s none: the targets are safe Rust; AddressSanitizer would only slow the
  # build without finding more.
  if ! cargo "${TC[@]}" fuzz run -s none "$t" "corpus/$t" -- -max_total_time="$SECS" -rss_limit_mb=2048; then
    echo "fuzz target $t FAILED (see fuzz/artifacts/$t)" >&2
    status=1
  fi
done
exit $status
