/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Kernel constants vmlinux.h lacks, the settings the daemon writes before
 * load, and the guard every program starts with.
 */
#ifndef QMON_CONFIG_H
#define QMON_CONFIG_H

#define AF_INET 2
#define AF_INET6 10
#define SOCK_STREAM 1
#define S_IFMT 00170000
#define S_IFSOCK 0140000
#define EINPROGRESS 115
#define MSG_PEEK 2
#define MSG_TRUNC 0x20
#define O_ACCMODE 00000003
#define O_CREAT 00000100
#define O_TRUNC 00001000
#define O_CLOEXEC 02000000

/* Set by the daemon before load. */
const volatile __u32 qmon_tgid = 0;
/* Chunks copied per call at most (the rest is counted, not copied). */
const volatile __u32 max_chunks = 4;
/* Wake the daemon only once this many bytes wait; it also polls. */
const volatile __u64 wakeup_bytes = 256 * 1024;
/* Emit data for accepted (server-side) sockets too. Off: they are labelled
 * at accept and muted. */
const volatile bool capture_server = false;
/* Benchmarks only (`--bench-noop`): every program returns at once, so the
 * same programs attach at the same points and do nothing. That is the floor
 * against which the cost of the real programs is measured. */
const volatile bool qmon_bench_noop = false;
/* Benchmarks only (`--bench-toggle-ms`, which also sets qmon_bench_noop):
 * the daemon flips qmon_bench_off at run time, so one process alternates
 * between recording and the floor every second or two. Nested under
 * qmon_bench_noop so that outside benchmarks the verifier drops both loads
 * below as dead code and the programs are the same as without it. */
const volatile bool qmon_bench_toggle = false;
volatile __u32 qmon_bench_off = 0;
#define NOOP_GUARD                                                     \
	if (qmon_bench_noop && (!qmon_bench_toggle || qmon_bench_off)) \
		return 0;

static __always_inline bool is_self(__u64 id)
{
	return (__u32)(id >> 32) == qmon_tgid;
}

#endif /* QMON_CONFIG_H */
