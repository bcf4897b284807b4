#!/usr/bin/env bash
# Runs `qmon record` under an emulation of packaging/qmon.service's
# sandbox, for machines whose PID 1 is not systemd (so `systemd-run -p ...`
# is unavailable), and checks that an HTTPS call made through a libssl copy
# under /root is still recorded:
#   sudo bash packaging/verify-hardening.sh [QMON_BINARY]
#
# Emulated (the same kernel mechanisms systemd uses):
#   CapabilityBoundingSet/AmbientCapabilities  setpriv --bounding-set
#   NoNewPrivileges                            setpriv --no-new-privs
#   ProtectSystem=strict + ReadWritePaths      read-only rbind of /, /usr, /etc, ...
#   ProtectHome=read-only                      read-only /home, /root
#   PrivateTmp                                 tmpfs on /tmp and /var/tmp
#   ProtectControlGroups                       read-only /sys/fs/cgroup
#   MemoryDenyWriteExecute                     prctl(PR_SET_MDWE) (Linux 6.3+)
# Not emulated: the seccomp-based options (SystemCallArchitectures,
# RestrictAddressFamilies, RestrictNamespaces, RestrictRealtime,
# RestrictSUIDSGID, LockPersonality, ProtectKernelModules/Logs' syscall
# filters): none of them covers bpf(), perf_event_open(), ptrace() or mount().
# Makes one HTTPS HEAD request to the Debian mirror (deb.debian.org).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/../scripts/common.sh"
require_root
ensure_tracefs
BIN=$(readlink -f "${1:-$(qmon_target_dir)/release/qmon}")
[ -x "$BIN" ] || die "no qmon binary at $BIN"
WORK=$(mktemp -d /root/qmon-hardening.XXXXXX) # under /root: ProtectHome matters
STATE=/var/lib/qmon-hardening-test
mkdir -p "$STATE" && chmod 700 "$STATE"
rm -f "$STATE"/test.db*
QPID=
cleanup() {
    [ -n "$QPID" ] && kill -INT "$QPID" 2>/dev/null && wait "$QPID" 2>/dev/null
    rm -rf "$WORK" "$STATE"
}
trap cleanup EXIT

for lib in libssl.so.3 libcrypto.so.3; do
    cp "$(readlink -f /usr/lib/x86_64-linux-gnu/$lib)" "$WORK/$lib"
done

CAPS=-all,+bpf,+perfmon,+sys_admin,+sys_ptrace,+dac_read_search
# The sandbox, built in a private mount namespace like systemd's.
cat >"$WORK/sandbox.sh" <<SANDBOX
set -e
mount --make-rprivate /
# ProtectSystem=strict: everything read-only but the API file systems.
mount -o remount,bind,ro /
for m in \$(awk '{print \$5}' /proc/self/mountinfo | sort -u); do
    case "\$m" in /proc|/proc/*|/sys|/sys/*|/dev|/dev/*|/) continue ;; esac
    mount -o remount,bind,ro "\$m" 2>/dev/null || true
done
# ReadWritePaths=$STATE (stands in for /var/lib/qmon)
mount --bind "$STATE" "$STATE" && mount -o remount,bind,rw "$STATE"
# ProtectHome=read-only
for h in /home /root; do mount --bind "\$h" "\$h" && mount -o remount,bind,ro "\$h"; done
# PrivateTmp
mount -t tmpfs tmpfs /tmp && mount -t tmpfs tmpfs /var/tmp
# ProtectControlGroups
mount --bind /sys/fs/cgroup /sys/fs/cgroup && mount -o remount,bind,ro /sys/fs/cgroup
touch /usr/qmon-rw-probe 2>/dev/null && { echo "sandbox: / still writable" >&2; exit 1; }
touch /root/qmon-rw-probe 2>/dev/null && { echo "sandbox: /root still writable" >&2; exit 1; }
exec python3 -c '
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(65, 1, 0, 0, 0) != 0:   # PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN
    sys.exit("PR_SET_MDWE failed: errno %d" % ctypes.get_errno())
os.execv("/usr/bin/setpriv", sys.argv[1:])
' setpriv --bounding-set=$CAPS --inh-caps=$CAPS --ambient-caps=$CAPS --no-new-privs \
    "$BIN" record --db "$STATE/test.db"
SANDBOX

echo "==> qmon record in the emulated sandbox"
unshare -m bash "$WORK/sandbox.sh" 2>"$WORK/qmon.log" &
QPID=$!
for _ in $(seq 1 200); do
    grep -q "qmon: ready" "$WORK/qmon.log" && break
    kill -0 "$QPID" 2>/dev/null || { cat "$WORK/qmon.log"; die "qmon exited in the sandbox"; }
    sleep 0.1
done
grep -q "qmon: ready" "$WORK/qmon.log" || { cat "$WORK/qmon.log"; die "qmon not ready in 20 s"; }
# unshare, bash, python and setpriv all exec: $QPID is qmon itself now.
grep -E '^(CapEff|CapBnd|NoNewPrivs)' "/proc/$QPID/status"
capsh --decode="$(awk '/^CapEff/{print $2}' "/proc/$QPID/status")" 2>/dev/null || true

echo "==> HTTPS through a libssl copy under /root"
LD_LIBRARY_PATH=$WORK curl -sS -o /dev/null -I -w 'curl: HTTP %{http_code}\n' https://deb.debian.org/debian/dists/bookworm/Release
sleep 1
kill -INT "$QPID"; wait "$QPID" || true; QPID=
tail -n 5 "$WORK/qmon.log"
rows=$("$BIN" query --db "$STATE/test.db" --format csv \
    "SELECT count(*) FROM calls WHERE host = 'deb.debian.org' AND path LIKE '/debian/dists/bookworm/Release%'" | tail -n 1 | tr -dc 0-9)
echo "calls recorded to deb.debian.org: $rows"
[ "$rows" -ge 1 ] || die "the HTTPS call was not recorded under the sandbox"
echo "OK: capture works under the unit's capabilities and file-system sandbox"
