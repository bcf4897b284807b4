/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Every map, the per-thread slots kept between a call's entry and its
 * return, and the loss counters.
 */
#ifndef QMON_MAPS_H
#define QMON_MAPS_H

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 16 * 1024 * 1024); /* resized by the daemon */
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, QMON_STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");

/* LRU: entries of processes that exit without close() age out. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct qmon_conn_key);
	__type(value, struct qmon_conn_state);
} conns SEC(".maps");

/* TLS session -> fd (tls.h). LRU: sessions a library never frees (or frees
 * where qmon has no probe) age out. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct qmon_tls_key);
	__type(value, struct qmon_tls_fd);
} tls_fds SEC(".maps");

/* Arguments of in-flight calls, keyed by pid_tgid, kept from entry to
 * return. */
struct data_args {
	__u64 buf;    /* buffer, or the iovec array for vectored calls */
	__u32 iovcnt; /* 0: buf is a plain buffer */
	__s32 fd;
	__u8 dir;
	__u8 in_tls;  /* made from inside a TLS library's read/write call */
	__u8 discard; /* MSG_TRUNC: bytes consumed but not copied to buf */
	__u8 live;    /* a call is in progress (entries are reused, not deleted) */
	__u8 _pad[4];
};

/* A TLS library read/write call in progress (tls.h). */
struct tls_args {
	__u64 session; /* the stack's session pointer (SSL*, ...) */
	__u64 buf;
	__u64 len_ptr; /* where the call stores its byte count, or 0 */
	__s32 fd;      /* learnt from the nested syscall; -1 until then */
	__u8 dir;
	__u8 live;     /* a TLS call is in progress on this thread */
	__u8 _pad[2];
};

struct connect_args {
	__s32 fd;
	__u32 _pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct data_args);
} data_args_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct tls_args);
} tls_args_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct connect_args);
} connect_args_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, __u64);
} open_args_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct qmon_proc_event);
} proc_scratch SEC(".maps");

/* Template for the data events of the call in progress on this thread
 * (emit.h). Per thread (not per CPU): a program can be preempted, a thread
 * cannot race itself. */
struct emit_ctx {
	struct qmon_data_event ev; /* header, dir, source; pos advances */
	__u64 budget;              /* bytes still allowed to be copied */
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct emit_ctx);
} emit_ctx_map SEC(".maps");

/* Per-thread slots (args between enter and exit, the emit template) are
 * written in place and marked free rather than deleted: a hash update or
 * delete takes a lock and allocates or frees an element on every call, a
 * lookup does neither. Evaluates to 0, or non-zero when the slot could not
 * be created. */
#define SLOT_PUT(map, idp, valp)                                            \
	({                                                                  \
		typeof(*(valp)) *__p = bpf_map_lookup_elem(map, idp);       \
		long __r = 0;                                               \
		if (__p)                                                    \
			*__p = *(valp);                                     \
		else                                                        \
			__r = bpf_map_update_elem(map, idp, valp, BPF_ANY); \
		__r;                                                        \
	})

static __always_inline void stat_add(__u32 idx, __u64 n)
{
	__u64 *v = bpf_map_lookup_elem(&stats, &idx);
	if (v)
		*v += n;
}

#endif /* QMON_MAPS_H */
