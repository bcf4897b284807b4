#!/usr/bin/env bash
# Kernel matrix: runs qmon's end-to-end test binaries (tests/, crate
# qmon-e2e) inside QEMU guests booted with Debian's stock kernels, so the
# kprobe attach path is exercised on kernels that have kprobes (6.1, 6.12)
# while the host (6.18 without kprobes) covers the tracepoint path.
#
#   sudo bash tests/vm/run.sh                 # every kernel in the matrix
#   sudo bash tests/vm/run.sh 6.12            # one kernel
#   QMON_VM_TESTS='capture::' sudo bash tests/vm/run.sh   # a libtest filter
#
# How: the kernel packages are found with apt-cache, fetched with
# `apt-get download`, unpacked with `dpkg -x` and cached under
# $QMON_VM_CACHE (default /var/cache/qmon-vm) with the extracted vmlinux and
# a small busybox initramfs holding the 9p/virtio/overlay modules. Each guest
# boots under TCG (no usable KVM here), mounts the host's root filesystem
# read-only over virtio-9p with a tmpfs overlay on top, runs
# tests/vm/guest.sh, which runs `qmon doctor` and every e2e test binary, and
# writes results to a second, writable 9p share. One line per kernel at the
# end; exit status non-zero when any kernel failed or a 6.1/6.12 guest
# attached with tracepoints. See docs/compatibility.md.
#
# Environment:
#   QMON_VM_CACHE     cache directory (default /var/cache/qmon-vm)
#   QMON_VM_KERNELS   space-separated matrix entries (default "6.1 6.12")
#   QMON_VM_MEM       guest memory (default 1536M)
#   QMON_VM_SMP       guest CPUs (default 2)
#   QMON_VM_TIMEOUT   seconds per guest before it is killed (default 1200)
#   QMON_VM_TCG_THREAD  QEMU's TCG threading, "single" (default) or "multi".
#                     Multi-threaded TCG now and then lets a vCPU run code
#                     the kernel is patching (static keys, kprobes) and the
#                     guest oopses on an int3; see docs/compatibility.md.
#   QMON_VM_TESTS     optional libtest filter passed to every test binary
#   QMON_VM_SKIP_TESTS  test names skipped in guests (default: none)
#   QMON_VM_SKIP      test binaries not run in guests. Default: "harness"
#                     (self-tests of the test servers) and the suites that
#                     exercise userspace only, above the capture layer (top,
#                     metrics, config, diskfull, packaging, dashboards,
#                     pipeline); they
#                     run on the host. The guests run capture, record, http2
#                     and cli: everything the kernel can change. See
#                     docs/compatibility.md. Set empty to run everything.
#   QMON_VM_PARALLEL  1: boot the kernels' guests side by side (default when
#                     TCG runs single-threaded and the host has 2+ cores:
#                     each guest then takes one core); 0: one after another
#   QMON_VM_KEEP      keep the guests' logs even when every kernel passed
#   CARGO_TARGET_DIR  as for cargo; the test binaries are built here first
set -uo pipefail
# shellcheck source=scripts/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/../../scripts/common.sh"

VM_DIR="$QMON_ROOT/tests/vm"
CACHE="${QMON_VM_CACHE:-/var/cache/qmon-vm}"
KERNELS="${QMON_VM_KERNELS:-6.1 6.12}"
[ "$#" -gt 0 ] && KERNELS="$*"
MEM="${QMON_VM_MEM:-1536M}"
SMP="${QMON_VM_SMP:-2}"
TIMEOUT="${QMON_VM_TIMEOUT:-1200}"
TCG_THREAD="${QMON_VM_TCG_THREAD:-single}"
SKIP="${QMON_VM_SKIP-harness top metrics config diskfull packaging dashboards pipeline}"

log() { echo "vm: $*" >&2; }

# Matrix entry -> the metapackage whose candidate depends on the real image.
# 6.1 is bookworm's default (linux-image-amd64); 6.12 comes from
# bookworm-security (or bookworm-backports, where it is linux-image-amd64).
meta_for() {
    case "$1" in
    6.1) echo linux-image-amd64 ;;
    *) echo "linux-image-$1-amd64" ;;
    esac
}

# resolve_image ENTRY — prints the versioned image package (e.g.
# linux-image-6.1.0-56-amd64) for a matrix entry, from apt-cache.
resolve_image() {
    local entry=$1 meta pkg
    meta=$(meta_for "$entry")
    pkg=$(apt-cache show --no-all-versions "$meta" 2>/dev/null |
        sed -n 's/^Depends:.*\(linux-image-[0-9][^ ,]*\).*/\1/p' | head -n1)
    if [ -z "$pkg" ]; then
        # No metapackage: newest versioned image of that series.
        pkg=$(apt-cache search --names-only "^linux-image-${entry//./\\.}[.0-9]*[-+][^ ]*amd64\$" |
            awk '{print $1}' | grep -v -e -dbg -e -unsigned -e cloud -e rt- | sort -V | tail -n1)
    fi
    [ -n "$pkg" ] || return 1
    case "$pkg" in
    "linux-image-$entry".*) ;;
    *)
        log "$meta resolves to $pkg, which is not a $entry kernel"
        return 1
        ;;
    esac
    echo "$pkg"
}

# extract_vmlinux BZIMAGE OUT — the uncompressed ELF kernel inside a
# bzImage (what the kernel tree's scripts/extract-vmlinux does): find each
# compression magic, decompress from there, keep the first valid ELF.
extract_vmlinux() {
    local img=$1 out=$2 magic cmd off
    for magic in "fd377a585a00:xz -dc" "28b52ffd:zstd -dcq" "1f8b0800:gzip -dc" "02214c18:lz4 -dc"; do
        cmd=${magic#*:}
        magic=${magic%%:*}
        for off in $(od -An -v -tx1 -w1 "$img" | tr -d ' \n' |
            grep -bo "$magic" | cut -d: -f1 | awk '$1 % 2 == 0 {print $1 / 2}' | head -n 5); do
            tail -c +"$((off + 1))" "$img" | $cmd >"$out.tmp" 2>/dev/null
            if [ "$(head -c4 "$out.tmp" | od -An -tx1 | tr -d ' ')" = 7f454c46 ]; then
                mv "$out.tmp" "$out"
                return 0
            fi
        done
    done
    rm -f "$out.tmp"
    return 1
}

# Modules the initramfs loads, in dependency order, before the root mount.
INITRD_MODULES="virtio_pci 9pnet_virtio 9p overlay"

# prepare_kernel PKG — fills $CACHE/PKG/{deb/,version,config,bzImage,vmlinux,modules/};
# idempotent (a finished directory has .ready).
prepare_kernel() {
    local pkg=$1 dir="$CACHE/$1" tree deb kver m
    [ -f "$dir/.ready" ] && return 0
    rm -rf "$dir"
    mkdir -p "$dir/deb"
    chown _apt "$dir/deb" 2>/dev/null || true
    log "downloading $pkg"
    (cd "$dir/deb" && apt-get download -q "$pkg" >/dev/null) || {
        log "apt-get download $pkg failed"
        return 1
    }
    deb=$(ls "$dir"/deb/*.deb)
    tree="$dir/tree"
    dpkg -x "$deb" "$tree" || return 1
    kver=$(ls "$tree/lib/modules")
    echo "$kver" >"$dir/version"
    cp "$tree/boot/vmlinuz-$kver" "$dir/bzImage"
    cp "$tree/boot/config-$kver" "$dir/config"
    if extract_vmlinux "$dir/bzImage" "$dir/vmlinux"; then
        log "$pkg: extracted vmlinux"
    else
        log "$pkg: could not extract vmlinux; will boot the bzImage"
    fi
    depmod -b "$tree" "$kver" || return 1

    # The modules the initramfs loads, decompressed so busybox insmod can
    # load them, and their load order. The initramfs itself is packed per
    # run (make_initrd), so edits to tests/vm/init never meet a stale cache.
    local mods="$dir/modules" ko name
    mkdir -p "$mods"
    : >"$mods/load"
    # shellcheck disable=SC2086
    for m in $INITRD_MODULES; do
        modprobe -d "$tree" -S "$kver" --show-depends "$m" 2>/dev/null |
            awk '$1 == "insmod" {print $2}'
    done | awk '!seen[$0]++' >"$dir/modlist"
    while read -r ko; do
        name=$(basename "$ko")
        case "$name" in
        *.xz) name=${name%.xz} && xz -dc "$ko" >"$mods/$name" ;;
        *.zst) name=${name%.zst} && zstd -dcq "$ko" >"$mods/$name" ;;
        *) cp "$ko" "$mods/$name" ;;
        esac || return 1
        echo "$name" >>"$mods/load"
    done <"$dir/modlist"
    rm -f "$dir/modlist"
    log "$pkg: initramfs modules: $(tr '\n' ' ' <"$mods/load")"
    rm -rf "$tree"
    touch "$dir/.ready"
}

# make_initrd KERNEL_DIR OUT — packs the initramfs: static busybox, the
# kernel's modules, tests/vm/init.
make_initrd() {
    local kdir=$1 out=$2 ir
    ir=$(mktemp -d)
    mkdir -p "$ir"/{bin,dev,proc,sys,mnt,lib}
    cp /bin/busybox "$ir/bin/busybox"
    cp "$VM_DIR/init" "$ir/init"
    chmod 755 "$ir/init"
    cp -r "$kdir/modules" "$ir/lib/modules"
    (cd "$ir" && find . | cpio -o -H newc --quiet) | gzip -1 >"$out"
    local rc=$?
    rm -rf "$ir"
    return "$rc"
}

# Builds the qmon binary and the e2e test binaries; writes their paths to
# $RUN/binaries (one per line, test binaries only).
build_tests() {
    local target
    target=$(qmon_target_dir)
    (cd "$QMON_ROOT" && cargo build -q -p qmon) || return 1
    QMON_BIN_PATH="$target/debug/qmon"
    (cd "$QMON_ROOT" && cargo test -q -p qmon-e2e --no-run --message-format=json) |
        sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | grep -v '/build/' >"$RUN/all-binaries"
    local bin name s
    while read -r bin; do
        name=$(basename "$bin")
        name=${name%-*}
        for s in $SKIP; do
            [ "$name" = "$s" ] && continue 2
        done
        echo "$bin"
    done <"$RUN/all-binaries" >"$RUN/binaries"
    [ -s "$RUN/binaries" ] || return 1
}

# boot KERNEL_DIR OUT_DIR — boots one guest and waits for it to power off.
boot() {
    local kdir=$1 out=$2 kernel
    # PVH boot of the uncompressed ELF is about twice as fast under TCG as
    # decompressing the bzImage in the guest.
    if [ -f "$kdir/vmlinux" ] && [ -z "${QMON_VM_BZIMAGE:-}" ]; then
        kernel="$kdir/vmlinux"
    else
        kernel="$kdir/bzImage"
    fi
    timeout -k 10 "$TIMEOUT" qemu-system-x86_64 \
        -accel tcg,thread="$TCG_THREAD" -cpu max -smp "$SMP" -m "$MEM" \
        -nographic -no-reboot -nodefaults -serial stdio \
        -kernel "$kernel" -initrd "$out/initrd.gz" \
        -append "console=ttyS0 panic=-1 quiet loglevel=4 mitigations=off qmon.guest=$VM_DIR/guest.sh" \
        -virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap \
        -virtfs local,path="$out",mount_tag=out,security_model=none \
        -device virtio-rng-pci \
        </dev/null >"$out/console.log" 2>&1
}

# `qmon doctor` prints "socket hooks      kprobe (…)"; the start-up log
# "capturing: socket hooks attached with kprobes|syscall tracepoints".
doctor_mode() { awk '$1 == "socket" && $2 == "hooks" && m == "" {m = $3} END {print m}'; }
startup_mode() {
    sed -n 's/.*socket hooks attached with \(kprobes\|syscall tracepoints\).*/\1/p' |
        head -n1 | sed 's/kprobes/kprobe/; s/syscall tracepoints/tracepoint/'
}

# run_guest ENTRY PKG — boots one kernel's guest, runs the job, and writes
# a one-line result to $RUN/ENTRY.summary.
run_guest() {
    local entry=$1 pkg=$2 kdir out t0 dt rc boots retried mode started grc failures passed ready
    local summary=()
    t0=$SECONDS
    kdir="$CACHE/$pkg"
    out="$RUN/$entry"
    mkdir -p "$out"
    # Sourced by guest.sh: quote every value.
    {
        printf 'QMON_BIN=%q\n' "$QMON_BIN_PATH"
        printf 'QMON_VM_TESTS=%q\n' "${QMON_VM_TESTS:-}"
        printf 'QMON_VM_SKIP_TESTS=%q\n' "${QMON_VM_SKIP_TESTS:-}"
        printf 'QMON_KRETPROBE_MAXACTIVE=%q\n' "${QMON_KRETPROBE_MAXACTIVE:-}"
        printf 'BINARIES=%q\n' "$(tr '\n' ' ' <"$RUN/binaries")"
    } >"$out/job"
    make_initrd "$kdir" "$out/initrd.gz" || die "packing the initramfs failed"
    log "$entry: booting $pkg ($(cat "$kdir/version"))"
    boots=0
    while :; do
        boots=$((boots + 1))
        boot "$kdir" "$out"
        rc=$?
        # TCG's multi-threaded mode now and then breaks the kernel's
        # own code patching (an int3 oops in early boot, before qmon or
        # any test runs). Boot again; a crash after the guest started
        # its job is never retried.
        if [ ! -f "$out/doctor.log" ] && [ "$boots" -lt 3 ] &&
            grep -q 'Kernel panic\|Oops' "$out/console.log"; then
            log "$entry: guest kernel crashed while booting (attempt $boots): $(grep -m1 'RIP:' "$out/console.log")"
            mv "$out/console.log" "$out/console-boot$boots.log"
            continue
        fi
        break
    done
    retried=""
    [ "$boots" -gt 1 ] && retried=", booted at attempt $boots"
    ready=$(cat "$out/ready_ms" 2>/dev/null)
    [ -n "$ready" ] && retried+=", qmon ready in $((ready / 1000)).$(((ready % 1000) / 100)) s"
    dt=$((SECONDS - t0))
    mode=$(doctor_mode <"$out/doctor.log" 2>/dev/null)
    started=$(startup_mode <"$out/startup.log" 2>/dev/null)
    if [ ! -f "$out/rc" ]; then
        log "$entry: guest did not finish (qemu exit $rc); console:"
        tail -n 40 "$out/console.log" >&2
        summary+=("$(printf '%-6s FAILED: guest did not finish (qemu exit %s, %ss); log %s' "$entry" "$rc" "$dt" "$out")")
        printf '%s\n' "${summary[@]}" >"$RUN/$entry.summary"
        return 1
    fi

    grc=$(cat "$out/rc")
    # libtest's own summary: per-test "ok" lines can be split by the
    # output of the processes a test runs.
    passed=$(cat "$out"/test-*.log 2>/dev/null |
        sed -n 's/^test result: [a-zA-Z]*\. \([0-9]*\) passed.*/\1/p' |
        awk '{n += $1} END {print n + 0}')
    failures=$(grep -h '^test .* \.\.\. FAILED$' "$out"/test-*.log 2>/dev/null |
        awk '{print $2}' | tr '\n' ' ')
    # 6.1 and 6.12 have kprobes: anything else there is a qmon bug.
    if [ "$mode" != kprobe ] || [ "$started" != kprobe ]; then
        failures+="(doctor says '${mode:-?}', start-up log says '${started:-?}'; expected kprobe) "
        grc=1
    fi
    if [ "$grc" = 0 ]; then
        summary+=("$(printf '%-6s passed: %s, hooks %s (doctor) / %s (start-up log), %s tests, %ss%s' "$entry" "$(cat "$kdir/version")" "$mode" "$started" "$passed" "$dt" "$retried")")
    else
        summary+=("$(printf '%-6s FAILED: %s, hooks %s (doctor) / %s (start-up log), %s passed; failed: %s(%ss; logs %s)' "$entry" "$(cat "$kdir/version")" "${mode:-?}" "${started:-?}" "${passed:-0}" "${failures:-see logs }" "$dt" "$out")")
        for f in "$out"/test-*.log; do
            grep -q 'FAILED\|panicked\|error' "$f" && { echo "---- $f" >&2; tail -n 60 "$f" >&2; }
        done
    fi
    printf '%s\n' "${summary[@]}" >"$RUN/$entry.summary"
}

main() {
    require_root
    ensure_packages qemu-system-x86 busybox-static cpio xz-utils zstd kmod
    ensure_cargo
    mkdir -p "$CACHE"
    RUN=$(mktemp -d "${TMPDIR:-/tmp}/qmon-vm.XXXXXX")
    log "building qmon and the e2e test binaries"
    build_tests || die "building the e2e test binaries failed"
    log "test binaries: $(xargs -n1 basename <"$RUN/binaries" | tr '\n' ' ')"

    local entry pkg failed=0 summary=() pids=()
    # Kernel packages first, one at a time (apt); then the guests.
    for entry in $KERNELS; do
        if ! pkg=$(resolve_image "$entry"); then
            printf '%-6s FAILED: no Debian kernel package found for %s (apt-cache)\n' "$entry" "$entry" >"$RUN/$entry.summary"
            continue
        fi
        if ! prepare_kernel "$pkg"; then
            printf '%-6s FAILED: could not prepare %s\n' "$entry" "$pkg" >"$RUN/$entry.summary"
            continue
        fi
        echo "$pkg" >"$RUN/$entry.pkg"
    done
    # Each guest runs TCG on one host thread, so with two cores the guests
    # can run side by side and the step takes about as long as one kernel.
    local parallel=${QMON_VM_PARALLEL:-}
    if [ -z "$parallel" ]; then
        parallel=0
        [ "$TCG_THREAD" = single ] && [ "$(nproc)" -ge 2 ] && parallel=1
    fi
    for entry in $KERNELS; do
        [ -f "$RUN/$entry.pkg" ] || continue
        if [ "$parallel" = 1 ]; then
            run_guest "$entry" "$(cat "$RUN/$entry.pkg")" &
            pids+=($!)
        else
            run_guest "$entry" "$(cat "$RUN/$entry.pkg")"
        fi
    done
    [ "${#pids[@]}" -gt 0 ] && wait "${pids[@]}"
    for entry in $KERNELS; do
        summary+=("$(cat "$RUN/$entry.summary" 2>/dev/null || printf '%-6s FAILED: no result' "$entry")")
        grep -q FAILED "$RUN/$entry.summary" 2>/dev/null && failed=1
        [ -f "$RUN/$entry.summary" ] || failed=1
    done

    # The host kernel: only the attach mode here; the e2e suite itself runs
    # on the host in the normal test step.
    mode=$("$QMON_BIN_PATH" doctor 2>/dev/null | doctor_mode)
    summary+=("$(printf '%-6s host:   %s, hooks %s (e2e suite runs in the normal test step)' "$(uname -r | cut -d. -f1-2)" "$(uname -r)" "${mode:-?}")")

    echo
    echo "==================== qmon kernel matrix ===================="
    printf '  %s\n' "${summary[@]}"
    echo "============================================================"
    [ "$failed" -eq 0 ] && [ -z "${QMON_VM_KEEP:-}" ] && rm -rf "$RUN"
    [ -n "${QMON_VM_KEEP:-}" ] && log "logs kept in $RUN"
    return "$failed"
}

main
