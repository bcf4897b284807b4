// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * qmon's kernel side: outbound TCP connections, their plaintext bytes at the
 * socket syscalls, and TLS plaintext at the TLS libraries' read/write calls.
 * One translation unit; each concern has its header, in dependency order:
 *
 *   qmon.h         layouts and constants shared with the daemon
 *   config.h       settings the daemon writes before load, NOOP_GUARD
 *   maps.h         every map, per-thread slots, loss counters
 *   emit.h         ring buffer records, size classes, emit_call
 *   conns.h        socket identity, connection open/get
 *   tls.h          TLS calls of any stack: args, fd discovery, emit
 *   syscalls.h     data/connect/accept/close hooks, tp_ and kp_ wrappers
 *   tls_openssl.h  OpenSSL's probes (one tls_<stack>.h per TLS stack)
 *   proc.h         exec, exit, TLS library opens
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "qmon.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#include "config.h"
#include "maps.h"
#include "emit.h"
#include "conns.h"
#include "tls.h"
#include "syscalls.h"
#include "tls_openssl.h"
#include "proc.h"

/* Make the shared types visible in BTF so the Rust bindings are generated
 * from qmon.h rather than copied by hand. */
struct qmon_conn_event _conn_event = {};
struct qmon_data_event _data_event = {};
struct qmon_proc_event _proc_event = {};
enum qmon_event_kind _kind = 0;
enum qmon_dir _dir = 0;
enum qmon_source _source = 0;
enum qmon_role _role = 0;
enum qmon_conn_flags _conn_flags = 0;
enum qmon_stat _stat = 0;
enum qmon_const _const = 0;
enum qmon_stream _stream = 0;
