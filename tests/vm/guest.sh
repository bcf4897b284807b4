#!/bin/bash
# Runs as PID 1 inside a qmon test VM (see tests/vm/run.sh and init): the
# root is the host's filesystem, read-only, under a tmpfs overlay; /mnt/out
# is the host's writable results directory for this kernel, holding `job`.
# Writes doctor.log, test-<binary>.log and rc there, then powers off.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
OUT=/mnt/out

finish() {
    echo "$1" >"$OUT/rc"
    sync
    echo o >/proc/sysrq-trigger
    sleep 5
    busybox poweroff -f
}

mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
# /tmp stays as the overlay has it (writable, in the tmpfs upper layer): a
# tmpfs mounted over it would hide a checkout under /tmp, and CI may clone
# there.
mount -t tmpfs tmpfs /run
mount -t tracefs tracefs /sys/kernel/tracing
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
mount -t bpf bpf /sys/fs/bpf
mount -t cgroup2 cgroup2 /sys/fs/cgroup 2>/dev/null
ip link set lo up
hostname qmon-vm

# shellcheck disable=SC1091
. "$OUT/job"
[ -n "${QMON_KRETPROBE_MAXACTIVE:-}" ] && export QMON_KRETPROBE_MAXACTIVE
export QMON_BIN TMPDIR=/tmp HOME=/root USER=root RUST_BACKTRACE=1
echo "kernel $(uname -r)" >"$OUT/doctor.log"
"$QMON_BIN" doctor >>"$OUT/doctor.log" 2>&1
echo "doctor exit $?" >>"$OUT/doctor.log"

# The start-up log names the attach mode actually used (doctor says which
# one qmon would pick): start `qmon trace`, wait for ready, stop it.
t0=$(date +%s%N)
"$QMON_BIN" trace >/dev/null 2>"$OUT/startup.log" &
pid=$!
for _ in $(seq 1200); do
    if grep -q 'qmon: ready' "$OUT/startup.log"; then
        # Not into startup.log: qmon writes there at its own file offset.
        echo "$((($(date +%s%N) - t0) / 1000000))" >"$OUT/ready_ms"
        break
    fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
done
kill -INT "$pid" 2>/dev/null
wait "$pid"
echo "trace exit $?" >>"$OUT/startup.log"

rc=0
for bin in $BINARIES; do
    name=$(basename "$bin")
    name=${name%-*}
    t0=$(date +%s)
    # One test at a time: the BPF tests take a flock anyway.
    # shellcheck disable=SC2086
    skips=()
    for t in ${QMON_VM_SKIP_TESTS:-}; do skips+=(--skip "$t"); done
    timeout -k 10 900 "$bin" --test-threads=1 "${skips[@]}" ${QMON_VM_TESTS:-} >"$OUT/test-$name.log" 2>&1 || rc=1
    echo "$name $(($(date +%s) - t0))s" >>"$OUT/timings"
done
finish "$rc"
