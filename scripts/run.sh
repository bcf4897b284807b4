#!/usr/bin/env bash
# Build qmon and start recording every outbound HTTP(S) call on this host.
#   sudo bash scripts/run.sh [qmon record options...]
# Default database: /var/lib/qmon/qmon.db (read it with `qmon query`).
set -euo pipefail
# shellcheck source=scripts/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

require_root
ensure_build_deps
ensure_cargo
ensure_tracefs

cd "$QMON_ROOT"
cargo build --release -q -p qmon || die "building qmon failed"
exec "$(qmon_target_dir)/release/qmon" record "$@"
