// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * qmon's kernel side: outbound TCP connections, their plaintext bytes at the
 * socket syscalls, and TLS plaintext at OpenSSL's SSL_read/SSL_write.
 *
 * Every socket hook exists twice with one body: as a syscall tracepoint and
 * as a kprobe on the syscall (ksyscall). The daemon attaches whichever the
 * running kernel supports; both are loaded, so both always pass the verifier.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "qmon.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

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

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct qmon_ssl_key);
	__type(value, struct qmon_ssl_state);
} ssls SEC(".maps");

/* Arguments of in-flight calls, keyed by pid_tgid, kept from entry to
 * return. */
struct data_args {
	__u64 buf;    /* buffer, or the iovec array for vectored calls */
	__u32 iovcnt; /* 0: buf is a plain buffer */
	__s32 fd;
	__u8 dir;
	__u8 in_ssl;  /* made from inside SSL_read/SSL_write */
	__u8 discard; /* MSG_TRUNC: bytes consumed but not copied to buf */
	__u8 live;    /* a call is in progress (entries are reused, not deleted) */
	__u8 _pad[4];
};

struct ssl_args {
	__u64 ssl;
	__u64 buf;
	__u64 len_ptr; /* size_t* for the _ex variants, else 0 */
	__s32 fd;      /* learnt from the nested syscall; -1 until then */
	__u8 dir;
	__u8 live;     /* an SSL call is in progress on this thread */
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
	__type(value, struct ssl_args);
} ssl_args_map SEC(".maps");

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

/* Make the event types visible in BTF so the Rust bindings are generated
 * from this header rather than copied by hand. */
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

/* Wake the daemon only on the record that takes the unread data past
 * wakeup_bytes; otherwise it drains on its poll timer. Waking on every record
 * above the mark (as long as the daemon is behind) costs an irq_work per
 * record, which in a VM is an interrupt exit each. `size` is the reserved
 * record size; the ring adds an 8-byte header and rounds up to 8. */
static __always_inline __u64 wakeup_flag(__u64 size)
{
	__u64 avail = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA);

	return avail >= wakeup_bytes && avail < wakeup_bytes + size + 16 ? BPF_RB_FORCE_WAKEUP
									    : BPF_RB_NO_WAKEUP;
}

static __always_inline bool is_self(__u64 id)
{
	return (__u32)(id >> 32) == qmon_tgid;
}

/* The struct sock behind a TCP (inet, stream) socket fd of the current task,
 * found through the task's fd table with CO-RE reads. NULL for anything
 * else: files, pipes, unix and UDP sockets never produce events. */
static __always_inline struct sock *tcp_sock_of_fd(int fd)
{
	struct task_struct *task = (void *)bpf_get_current_task();
	struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
	struct file **fds;
	struct file *f = NULL;
	struct socket *sock;
	struct sock *sk;
	__u16 family;

	if (fd < 0 || !fdt || (unsigned int)fd >= BPF_CORE_READ(fdt, max_fds))
		return NULL;
	fds = BPF_CORE_READ(fdt, fd);
	if (bpf_probe_read_kernel(&f, sizeof(f), &fds[fd]) || !f)
		return NULL;
	if ((BPF_CORE_READ(f, f_inode, i_mode) & S_IFMT) != S_IFSOCK)
		return NULL;
	sock = BPF_CORE_READ(f, private_data);
	if (!sock || BPF_CORE_READ(sock, type) != SOCK_STREAM)
		return NULL;
	sk = BPF_CORE_READ(sock, sk);
	if (!sk)
		return NULL;
	family = BPF_CORE_READ(sk, __sk_common.skc_family);
	if (family != AF_INET && family != AF_INET6)
		return NULL;
	return sk;
}

static __always_inline void fill_header(struct qmon_event_header *h, __u8 kind, __u64 id, int fd,
					__u64 conn_id)
{
	h->kind = kind;
	h->tgid = id >> 32;
	h->tid = (__u32)id;
	h->fd = fd;
	h->conn_id = conn_id;
	h->ts_ns = bpf_ktime_get_ns();
}

/* Start tracking fd as a connection and announce it. */
static __always_inline struct qmon_conn_state *conn_open(__u64 id, int fd, struct sock *sk, __u8 role)
{
	struct qmon_conn_key key = { .tgid = id >> 32, .fd = fd };
	struct qmon_conn_state st = {};
	struct qmon_conn_event *e;

	st.conn_id = bpf_ktime_get_ns();
	st.role = role;
	if (role == QMON_ROLE_SERVER && !capture_server)
		st.flags = QMON_CONN_MUTE_ALL;
	if (bpf_map_update_elem(&conns, &key, &st, BPF_ANY))
		return NULL;

	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		stat_add(QMON_STAT_LOST_EVENTS, 1);
	} else {
		fill_header(&e->hdr, QMON_EV_CONN_OPEN, id, fd, st.conn_id);
		e->cgroup_id = bpf_get_current_cgroup_id();
		e->family = BPF_CORE_READ(sk, __sk_common.skc_family);
		e->port = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
		e->role = role;
		if (e->family == AF_INET) {
			__u32 d4 = BPF_CORE_READ(sk, __sk_common.skc_daddr);
			__builtin_memcpy(e->addr, &d4, sizeof(d4));
		} else {
			BPF_CORE_READ_INTO((struct in6_addr *)e->addr, sk, __sk_common.skc_v6_daddr);
		}
		bpf_get_current_comm(e->comm, sizeof(e->comm));
		bpf_ringbuf_submit(e, wakeup_flag(sizeof(*e)));
	}
	return bpf_map_lookup_elem(&conns, &key);
}

/* The tracked connection for fd, adopting a TCP socket that predates qmon
 * (or whose connect qmon did not see) at its first data call. */
static __always_inline struct qmon_conn_state *conn_get(__u64 id, int fd)
{
	struct qmon_conn_key key = { .tgid = id >> 32, .fd = fd };
	struct qmon_conn_state *st = bpf_map_lookup_elem(&conns, &key);
	struct sock *sk;

	if (st)
		return st;
	sk = tcp_sock_of_fd(fd);
	if (!sk)
		return NULL;
	return conn_open(id, fd, sk, QMON_ROLE_UNKNOWN);
}

/* ---- data events ---------------------------------------------------- */

/* Template for the data events of the call in progress on this thread.
 * Per thread (not per CPU): a program can be preempted, a thread cannot race
 * itself. */
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

/* Reserve a record of one size class and fill it. One function per class:
 * otherwise clang merges the reads of the classes into one whose size the
 * verifier can no longer bound. */
#define DEFINE_EMIT_CLASS(SIZE)                                                       \
	static __noinline int emit_class_##SIZE(struct emit_ctx *c, __u64 src, __u64 n) \
	{                                                                             \
		struct qmon_data_event *e;                                            \
		if (!c)                                                               \
			return 0;                                                     \
		e = bpf_ringbuf_reserve(&events, sizeof(*e) + (SIZE), 0);             \
		if (!e) {                                                             \
			stat_add(QMON_STAT_LOST_EVENTS, 1);                           \
			stat_add(QMON_STAT_LOST_BYTES, n);                            \
			return 0;                                                     \
		}                                                                     \
		__builtin_memcpy(e, &c->ev, sizeof(*e));                              \
		/* Opaque to clang, which would drop the clamp as redundant. */     \
		asm volatile("" : "+r"(n));                                           \
		if (n > (SIZE))                                                       \
			n = (SIZE);                                                   \
		if (bpf_probe_read_user((void *)(e + 1), n, (void *)src))             \
			n = 0; /* unreadable: the position gap shows it */          \
		e->len = n;                                                           \
		bpf_ringbuf_submit(e, wakeup_flag(sizeof(*e) + (SIZE)));              \
		stat_add(QMON_STAT_DATA_EVENTS, 1);                                   \
		return 0;                                                             \
	}

DEFINE_EMIT_CLASS(512)
DEFINE_EMIT_CLASS(4096)
DEFINE_EMIT_CLASS(16384)

/* Emit one chunk of n bytes at src with the calling thread's template and
 * advance it. A global function, so the verifier checks it once on its own
 * rather than once per loop iteration of every caller: the size-class
 * branches below would otherwise multiply the states of the chunk and iovec
 * loops beyond the verifier's budget. Records come in fixed size classes
 * because a ring buffer reservation must have a constant size, and classes
 * keep small calls from taking 16 KiB of ring each. */
__noinline int emit_chunk(__u64 src, __u64 n)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct emit_ctx *c = bpf_map_lookup_elem(&emit_ctx_map, &id);

	if (!c)
		return 0;
	if (n > QMON_CHUNK_MAX)
		n = QMON_CHUNK_MAX;
	if (n > c->budget)
		n = c->budget;
	if (n == 0)
		return 0;
	if (n <= 512)
		emit_class_512(c, src, n);
	else if (n <= 4096)
		emit_class_4096(c, src, n);
	else
		emit_class_16384(c, src, n);
	c->ev.pos += n;
	c->budget -= n;
	return n;
}

/* Copy len bytes at src as consecutive chunks, within the call's budget;
 * returns the bytes not copied. Global, like emit_chunk, so the iovec loop
 * costs the verifier one call per entry rather than a copy of this loop:
 * that is what lets QMON_IOV_MAX be large enough for gRPC's writes. */
__noinline __u64 emit_buf(__u64 src, __u64 len)
{
	int i;

	for (i = 0; i < QMON_CHUNKS_HARD_MAX && len > 0; i++) {
		__u64 n = len > QMON_CHUNK_MAX ? QMON_CHUNK_MAX : len;
		int done = emit_chunk(src, n);

		if (done <= 0)
			break;
		src += done;
		len -= done;
	}
	return len;
}

/* Emit a call's bytes: buf is a buffer, or an iovec array when iovcnt > 0.
 * Bytes past the per-call budget are counted, and show as a position gap. */
static __always_inline void emit_call(struct emit_ctx *tmpl, __u64 id, __u64 buf, __u32 iovcnt,
				      __u64 len)
{
	struct emit_ctx *c;
	__u64 left = len;
	int i;

	tmpl->ev.call_len = len;
	tmpl->budget = (__u64)max_chunks * QMON_CHUNK_MAX;
	if (SLOT_PUT(&emit_ctx_map, &id, tmpl)) {
		stat_add(QMON_STAT_ARGS_DROPPED, 1);
		return;
	}
	if (!iovcnt) {
		left = emit_buf(buf, len);
	} else {
		for (i = 0; i < QMON_IOV_MAX && i < iovcnt && left > 0; i++) {
			struct iovec iov;
			__u64 n;

			if (bpf_probe_read_user(&iov, sizeof(iov), (void *)(buf + i * sizeof(iov))))
				break;
			n = iov.iov_len < left ? iov.iov_len : left;
			left -= n - emit_buf((__u64)iov.iov_base, n);
			c = bpf_map_lookup_elem(&emit_ctx_map, &id);
			if (!c || c->budget == 0)
				break;
		}
	}
	if (left)
		stat_add(QMON_STAT_TRUNCATED_BYTES, left);
}

/* TLS record header at the start of a stream: content type 20..23, major
 * version 3. HTTP never starts like this. */
static __always_inline bool looks_like_tls(__u64 buf, __u32 iovcnt)
{
	__u8 b[2] = {};
	__u64 p = buf;

	if (iovcnt) {
		struct iovec iov;
		if (bpf_probe_read_user(&iov, sizeof(iov), (void *)buf))
			return false;
		p = (__u64)iov.iov_base;
	}
	if (bpf_probe_read_user(b, sizeof(b), (void *)p))
		return false;
	return b[0] >= 20 && b[0] <= 23 && b[1] == 3;
}

static __always_inline void data_enter(int fd, __u64 buf, __u32 iovcnt, __u8 dir, __u64 flags)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct qmon_conn_key key = { .tgid = id >> 32, .fd = fd };
	struct data_args a = { .buf = buf, .iovcnt = iovcnt, .fd = fd, .dir = dir,
			       .discard = !!(flags & MSG_TRUNC), .live = 1 };
	struct ssl_args *sa;
	struct data_args *sp;
	struct qmon_conn_state *st;

	if (is_self(id))
		return;
	/* A peek leaves the bytes queued: the read that consumes them reports
	 * them (curl peeks one byte to check a connection before reusing it). */
	if (flags & MSG_PEEK)
		goto skip;
	sa = bpf_map_lookup_elem(&ssl_args_map, &id);
	if (sa && sa->live) {
		/* OpenSSL is doing I/O for an SSL_read/SSL_write: this is its fd. */
		sa->fd = fd;
		a.in_ssl = 1;
	}
	st = bpf_map_lookup_elem(&conns, &key);
	if (st) {
		if (!a.in_ssl && (st->flags & (QMON_CONN_TLS | QMON_CONN_MUTE_SYSCALL |
					       QMON_CONN_MUTE_ALL))) {
			stat_add(QMON_STAT_MUTED_CALLS, 1);
			goto skip;
		}
		/* Ciphertext under SSL_read/SSL_write: the exit would only mark
		 * the connection TLS, which it already is (or muted, where it
		 * does not matter). The fd is learnt above; skip the exit. */
		if (a.in_ssl && (st->flags & (QMON_CONN_TLS | QMON_CONN_MUTE_ALL)))
			goto skip;
	} else if (!tcp_sock_of_fd(fd)) {
		goto skip; /* files, pipes, non-TCP sockets: nothing to do */
	}
	if (SLOT_PUT(&data_args_map, &id, &a))
		stat_add(QMON_STAT_ARGS_DROPPED, 1);
	return;
skip:
	/* If an earlier call's return was skipped (kprobe pool empty), its slot
	 * is still live: free it so this call's return cannot use its args. */
	sp = bpf_map_lookup_elem(&data_args_map, &id);
	if (sp)
		sp->live = 0;
}

static __always_inline void data_exit(long ret)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct data_args *ap = bpf_map_lookup_elem(&data_args_map, &id);
	struct data_args a;
	struct qmon_conn_state *st;
	struct emit_ctx c = {};

	if (!ap || !ap->live)
		return;
	a = *ap;
	ap->live = 0;
	if (ret <= 0)
		return;
	st = conn_get(id, a.fd);
	if (!st)
		return;
	if (a.in_ssl) {
		/* Ciphertext: the plaintext comes from the OpenSSL probes. */
		st->flags |= QMON_CONN_TLS;
		return;
	}
	if (st->flags & (QMON_CONN_TLS | QMON_CONN_MUTE_SYSCALL | QMON_CONN_MUTE_ALL))
		return;
	if (a.discard) {
		/* Consumed unseen: the position jump shows the daemon a gap. */
		st->pos[a.dir & 1] += ret;
		return;
	}
	if (st->pos[0] == 0 && st->pos[1] == 0 && looks_like_tls(a.buf, a.iovcnt)) {
		/* A handshake outside SSL_read/SSL_write, or TLS from a library
		 * qmon does not probe: never emit it as plaintext. */
		st->flags |= QMON_CONN_TLS;
		return;
	}
	fill_header(&c.ev.hdr, QMON_EV_DATA, id, a.fd, st->conn_id);
	c.ev.dir = a.dir & 1;
	c.ev.source = QMON_SRC_SYSCALL;
	c.ev.pos = st->pos[a.dir & 1];
	/* Not atomic: concurrent calls on one fd from two threads are rare and
	 * at worst show as a gap. Fetch-add would need kernel 5.12. */
	st->pos[a.dir & 1] = c.ev.pos + ret;
	emit_call(&c, id, a.buf, a.iovcnt, ret);
}

/* ---- connect / accept / close --------------------------------------- */

static __always_inline void connect_enter(int fd)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct connect_args a = { .fd = fd };

	if (is_self(id))
		return;
	bpf_map_update_elem(&connect_args_map, &id, &a, BPF_ANY);
}

static __always_inline void connect_exit(long ret)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct connect_args *a = bpf_map_lookup_elem(&connect_args_map, &id);
	struct sock *sk;
	int fd;

	if (!a)
		return;
	fd = a->fd;
	bpf_map_delete_elem(&connect_args_map, &id);
	if (ret != 0 && ret != -EINPROGRESS)
		return;
	sk = tcp_sock_of_fd(fd);
	if (sk)
		conn_open(id, fd, sk, QMON_ROLE_CLIENT);
}

static __always_inline void accept_exit(long ret)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct sock *sk;

	if (ret < 0 || is_self(id))
		return;
	sk = tcp_sock_of_fd(ret);
	if (sk)
		conn_open(id, ret, sk, QMON_ROLE_SERVER);
}

static __always_inline void close_enter(int fd)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct qmon_conn_key key = { .tgid = id >> 32, .fd = fd };
	struct qmon_conn_state *st = bpf_map_lookup_elem(&conns, &key);
	struct qmon_event_header *e;

	if (!st)
		return;
	if (!(st->flags & QMON_CONN_MUTE_ALL)) {
		e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
		if (e) {
			fill_header(e, QMON_EV_CONN_CLOSE, id, fd, st->conn_id);
			bpf_ringbuf_submit(e, wakeup_flag(sizeof(*e)));
		} else {
			stat_add(QMON_STAT_LOST_EVENTS, 1);
		}
	}
	bpf_map_delete_elem(&conns, &key);
}

/* ---- syscall tracepoints -------------------------------------------- */

#define TP_ENTER(name) SEC("tracepoint/syscalls/sys_enter_" #name)
#define TP_EXIT(name) SEC("tracepoint/syscalls/sys_exit_" #name)
#define tp_enter_t struct trace_event_raw_sys_enter
#define tp_exit_t struct trace_event_raw_sys_exit

TP_ENTER(connect) int tp_connect_enter(tp_enter_t *ctx) { NOOP_GUARD connect_enter(ctx->args[0]); return 0; }
TP_EXIT(connect) int tp_connect_exit(tp_exit_t *ctx) { NOOP_GUARD connect_exit(ctx->ret); return 0; }
TP_EXIT(accept) int tp_accept_exit(tp_exit_t *ctx) { NOOP_GUARD accept_exit(ctx->ret); return 0; }
TP_EXIT(accept4) int tp_accept4_exit(tp_exit_t *ctx) { NOOP_GUARD accept_exit(ctx->ret); return 0; }
TP_ENTER(close) int tp_close_enter(tp_enter_t *ctx) { NOOP_GUARD close_enter(ctx->args[0]); return 0; }

TP_ENTER(write) int tp_write_enter(tp_enter_t *ctx)
{
	NOOP_GUARD
	data_enter(ctx->args[0], ctx->args[1], 0, QMON_DIR_EGRESS, 0);
	return 0;
}
TP_ENTER(sendto) int tp_sendto_enter(tp_enter_t *ctx)
{
	NOOP_GUARD
	data_enter(ctx->args[0], ctx->args[1], 0, QMON_DIR_EGRESS, 0);
	return 0;
}
TP_ENTER(writev) int tp_writev_enter(tp_enter_t *ctx)
{
	NOOP_GUARD
	data_enter(ctx->args[0], ctx->args[1], ctx->args[2], QMON_DIR_EGRESS, 0);
	return 0;
}
TP_ENTER(read) int tp_read_enter(tp_enter_t *ctx)
{
	NOOP_GUARD
	data_enter(ctx->args[0], ctx->args[1], 0, QMON_DIR_INGRESS, 0);
	return 0;
}
TP_ENTER(recvfrom) int tp_recvfrom_enter(tp_enter_t *ctx)
{
	NOOP_GUARD
	data_enter(ctx->args[0], ctx->args[1], 0, QMON_DIR_INGRESS, ctx->args[3]);
	return 0;
}
TP_ENTER(readv) int tp_readv_enter(tp_enter_t *ctx)
{
	NOOP_GUARD
	data_enter(ctx->args[0], ctx->args[1], ctx->args[2], QMON_DIR_INGRESS, 0);
	return 0;
}

static __always_inline void msg_enter(int fd, struct user_msghdr *msg, __u8 dir, __u64 flags)
{
	struct user_msghdr m = {};

	if (bpf_probe_read_user(&m, sizeof(m), msg))
		return;
	data_enter(fd, (__u64)m.msg_iov, m.msg_iovlen ? m.msg_iovlen : 1, dir, flags);
}

TP_ENTER(sendmsg) int tp_sendmsg_enter(tp_enter_t *ctx)
{
	NOOP_GUARD
	msg_enter(ctx->args[0], (void *)ctx->args[1], QMON_DIR_EGRESS, 0);
	return 0;
}
TP_ENTER(recvmsg) int tp_recvmsg_enter(tp_enter_t *ctx)
{
	NOOP_GUARD
	msg_enter(ctx->args[0], (void *)ctx->args[1], QMON_DIR_INGRESS, ctx->args[2]);
	return 0;
}

TP_EXIT(write) int tp_write_exit(tp_exit_t *ctx) { NOOP_GUARD data_exit(ctx->ret); return 0; }
TP_EXIT(sendto) int tp_sendto_exit(tp_exit_t *ctx) { NOOP_GUARD data_exit(ctx->ret); return 0; }
TP_EXIT(writev) int tp_writev_exit(tp_exit_t *ctx) { NOOP_GUARD data_exit(ctx->ret); return 0; }
TP_EXIT(sendmsg) int tp_sendmsg_exit(tp_exit_t *ctx) { NOOP_GUARD data_exit(ctx->ret); return 0; }
TP_EXIT(read) int tp_read_exit(tp_exit_t *ctx) { NOOP_GUARD data_exit(ctx->ret); return 0; }
TP_EXIT(recvfrom) int tp_recvfrom_exit(tp_exit_t *ctx) { NOOP_GUARD data_exit(ctx->ret); return 0; }
TP_EXIT(readv) int tp_readv_exit(tp_exit_t *ctx) { NOOP_GUARD data_exit(ctx->ret); return 0; }
TP_EXIT(recvmsg) int tp_recvmsg_exit(tp_exit_t *ctx) { NOOP_GUARD data_exit(ctx->ret); return 0; }

/* ---- the same hooks as kprobes on the syscalls ---------------------- */

SEC("ksyscall/connect") int BPF_KSYSCALL(kp_connect_enter, int fd)
{
	NOOP_GUARD
	connect_enter(fd);
	return 0;
}
SEC("kretsyscall/connect") int BPF_KRETPROBE(kp_connect_exit, long ret)
{
	NOOP_GUARD
	connect_exit(ret);
	return 0;
}
SEC("kretsyscall/accept") int BPF_KRETPROBE(kp_accept_exit, long ret)
{
	NOOP_GUARD
	accept_exit(ret);
	return 0;
}
SEC("kretsyscall/accept4") int BPF_KRETPROBE(kp_accept4_exit, long ret)
{
	NOOP_GUARD
	accept_exit(ret);
	return 0;
}
SEC("ksyscall/close") int BPF_KSYSCALL(kp_close_enter, int fd)
{
	NOOP_GUARD
	close_enter(fd);
	return 0;
}

#define KP_DATA(name, dir, vec)                                                              \
	SEC("ksyscall/" #name)                                                               \
	int BPF_KSYSCALL(kp_##name##_enter, int fd, __u64 buf, __u64 cnt, __u64 flags)      \
	{                                                                                    \
		NOOP_GUARD                                                                   \
		/* Only recvfrom's 4th argument is flags. */                                 \
		data_enter(fd, buf, vec ? cnt : 0, dir, KP_FLAGS_##name(flags));            \
		return 0;                                                                    \
	}                                                                                    \
	SEC("kretsyscall/" #name) int BPF_KRETPROBE(kp_##name##_exit, long ret)              \
	{                                                                                    \
		NOOP_GUARD                                                                   \
		data_exit(ret);                                                              \
		return 0;                                                                    \
	}

#define KP_FLAGS_write(f) 0
#define KP_FLAGS_sendto(f) 0
#define KP_FLAGS_writev(f) 0
#define KP_FLAGS_read(f) 0
#define KP_FLAGS_recvfrom(f) (f)
#define KP_FLAGS_readv(f) 0
KP_DATA(write, QMON_DIR_EGRESS, 0)
KP_DATA(sendto, QMON_DIR_EGRESS, 0)
KP_DATA(writev, QMON_DIR_EGRESS, 1)
KP_DATA(read, QMON_DIR_INGRESS, 0)
KP_DATA(recvfrom, QMON_DIR_INGRESS, 0)
KP_DATA(readv, QMON_DIR_INGRESS, 1)

SEC("ksyscall/sendmsg") int BPF_KSYSCALL(kp_sendmsg_enter, int fd, struct user_msghdr *msg)
{
	NOOP_GUARD
	msg_enter(fd, msg, QMON_DIR_EGRESS, 0);
	return 0;
}
SEC("kretsyscall/sendmsg") int BPF_KRETPROBE(kp_sendmsg_exit, long ret)
{
	NOOP_GUARD
	data_exit(ret);
	return 0;
}
SEC("ksyscall/recvmsg")
int BPF_KSYSCALL(kp_recvmsg_enter, int fd, struct user_msghdr *msg, __u64 flags)
{
	NOOP_GUARD
	msg_enter(fd, msg, QMON_DIR_INGRESS, flags);
	return 0;
}
SEC("kretsyscall/recvmsg") int BPF_KRETPROBE(kp_recvmsg_exit, long ret)
{
	NOOP_GUARD
	data_exit(ret);
	return 0;
}

/* ---- OpenSSL ---------------------------------------------------------- */

static __always_inline void ssl_enter(void *ssl, void *buf, void *len_ptr, __u8 dir)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct ssl_args a = {
		.ssl = (__u64)ssl, .buf = (__u64)buf, .len_ptr = (__u64)len_ptr, .fd = -1, .dir = dir,
		.live = 1
	};

	if (is_self(id))
		return;
	if (SLOT_PUT(&ssl_args_map, &id, &a))
		stat_add(QMON_STAT_ARGS_DROPPED, 1);
}

static __always_inline void ssl_exit(long ret)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct ssl_args *ap = bpf_map_lookup_elem(&ssl_args_map, &id);
	struct qmon_ssl_key skey = {};
	struct qmon_ssl_state *ss;
	struct qmon_conn_state *st = NULL;
	struct ssl_args a;
	struct emit_ctx c = {};
	__u64 n = 0;
	int fd;

	if (!ap || !ap->live)
		return;
	a = *ap;
	ap->live = 0;
	if (a.len_ptr) {
		/* SSL_read_ex/SSL_write_ex: 1 on success, bytes in *len_ptr. */
		if (ret != 1 || bpf_probe_read_user(&n, sizeof(n), (void *)a.len_ptr))
			return;
	} else {
		if (ret <= 0)
			return; /* no data */
		n = ret;
	}
	if (n == 0)
		return;

	skey.ssl = a.ssl;
	skey.tgid = id >> 32;
	fd = a.fd;
	if (fd >= 0) {
		struct qmon_ssl_state s = { .fd = fd };
		ss = bpf_map_lookup_elem(&ssls, &skey);
		if (!ss || ss->fd != fd)
			bpf_map_update_elem(&ssls, &skey, &s, BPF_ANY);
	} else {
		/* Served from OpenSSL's own buffer: no syscall revealed the fd. */
		ss = bpf_map_lookup_elem(&ssls, &skey);
		fd = ss ? ss->fd : -1;
	}
	if (fd >= 0)
		st = conn_get(id, fd);
	if (st) {
		if (st->flags & QMON_CONN_MUTE_ALL) {
			stat_add(QMON_STAT_MUTED_CALLS, 1);
			return;
		}
		st->flags |= QMON_CONN_TLS;
		fill_header(&c.ev.hdr, QMON_EV_DATA, id, fd, st->conn_id);
		c.ev.pos = st->tls_pos[a.dir & 1];
		st->tls_pos[a.dir & 1] = c.ev.pos + n;
	} else {
		/* fd unknown: the daemon keys this stream by SSL* (see
		 * QMON_UNKNOWN_FD_KEY_BIT) and cannot check positions. */
		fill_header(&c.ev.hdr, QMON_EV_DATA, id, -1, 0);
		c.ev.pos = QMON_POS_UNKNOWN;
	}
	c.ev.dir = a.dir & 1;
	c.ev.source = QMON_SRC_OPENSSL;
	c.ev.ssl = a.ssl;
	emit_call(&c, id, a.buf, 0, n);
}

SEC("uprobe") int BPF_UPROBE(ssl_write_enter, void *ssl, void *buf, int num)
{
	NOOP_GUARD
	ssl_enter(ssl, buf, NULL, QMON_DIR_EGRESS);
	return 0;
}
SEC("uprobe") int BPF_UPROBE(ssl_read_enter, void *ssl, void *buf, int num)
{
	NOOP_GUARD
	ssl_enter(ssl, buf, NULL, QMON_DIR_INGRESS);
	return 0;
}
SEC("uprobe") int BPF_UPROBE(ssl_write_ex_enter, void *ssl, void *buf, size_t num, size_t *written)
{
	NOOP_GUARD
	ssl_enter(ssl, buf, written, QMON_DIR_EGRESS);
	return 0;
}
SEC("uprobe") int BPF_UPROBE(ssl_read_ex_enter, void *ssl, void *buf, size_t num, size_t *readbytes)
{
	NOOP_GUARD
	ssl_enter(ssl, buf, readbytes, QMON_DIR_INGRESS);
	return 0;
}
/* All four return int: bytes (plain) or 1/0 (_ex). */
SEC("uretprobe") int BPF_URETPROBE(ssl_rw_exit, int ret)
{
	NOOP_GUARD
	ssl_exit(ret);
	return 0;
}
SEC("uprobe") int BPF_UPROBE(ssl_free_enter, void *ssl)
{
	NOOP_GUARD
	struct qmon_ssl_key key = { .ssl = (__u64)ssl, .tgid = bpf_get_current_pid_tgid() >> 32 };

	bpf_map_delete_elem(&ssls, &key);
	return 0;
}

/* ---- processes: exec, libssl opens, exit ------------------------------ */

static __always_inline struct qmon_proc_event *proc_scratch_get(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&proc_scratch, &zero);
}

static __always_inline void proc_emit(struct qmon_proc_event *p, __u8 kind, __u64 id, int fd)
{
	fill_header(&p->hdr, kind, id, fd, 0);
	p->cgroup_id = bpf_get_current_cgroup_id();
	bpf_get_current_comm(p->comm, sizeof(p->comm));
	/* Attaching to a new library is urgent: the process may call SSL_write
	 * within milliseconds, so always wake the daemon. */
	if (bpf_ringbuf_output(&events, p, sizeof(*p), BPF_RB_FORCE_WAKEUP))
		stat_add(QMON_STAT_LOST_EVENTS, 1);
}

SEC("tracepoint/sched/sched_process_exec")
int proc_exec(struct trace_event_raw_sched_process_exec *ctx)
{
	NOOP_GUARD
	__u64 id = bpf_get_current_pid_tgid();
	struct qmon_proc_event *p = proc_scratch_get();
	unsigned int off = ctx->__data_loc_filename & 0xFFFF;

	if (!p || is_self(id))
		return 0;
	bpf_probe_read_kernel_str(p->path, sizeof(p->path), (void *)ctx + off);
	proc_emit(p, QMON_EV_EXEC, id, -1);
	return 0;
}

SEC("tracepoint/sched/sched_process_exit")
int proc_exit(void *ctx)
{
	NOOP_GUARD
	__u64 id = bpf_get_current_pid_tgid();
	struct qmon_proc_event *p;

	/* Only the thread-group leader: the daemon drops the process's state. */
	if ((__u32)id != (__u32)(id >> 32) || is_self(id))
		return 0;
	p = proc_scratch_get();
	if (!p)
		return 0;
	p->path[0] = 0;
	proc_emit(p, QMON_EV_PROC_EXIT, id, -1);
	return 0;
}

/* Does a path component start with "libssl"? Checked at every position with
 * no state carried between iterations, which keeps verification linear. */
static __always_inline bool is_libssl(const char *path)
{
	int i;

	for (i = 0; i < QMON_PATH_MAX - 8; i++) {
		if (path[i] == 0)
			break;
		if (path[i] == '/' && path[i + 1] == 'l' && path[i + 2] == 'i' &&
		    path[i + 3] == 'b' && path[i + 4] == 's' && path[i + 5] == 's' &&
		    path[i + 6] == 'l')
			return true;
	}
	return path[0] == 'l' && path[1] == 'i' && path[2] == 'b' && path[3] == 's' &&
	       path[4] == 's' && path[5] == 'l';
}

SEC("tracepoint/syscalls/sys_enter_openat")
int lib_openat_enter(tp_enter_t *ctx)
{
	NOOP_GUARD
	__u64 id = bpf_get_current_pid_tgid();
	__u64 name = ctx->args[1];
	struct qmon_proc_event *p;

	if (is_self(id))
		return 0;
	/* Loaders (glibc's and musl's, for DT_NEEDED and dlopen alike) open
	 * libraries read-only with O_CLOEXEC; a copy being written (cp, package
	 * managers) is not a library yet. Checking the flags first spares the
	 * path copy on most other opens (a web server's static files). */
	if ((ctx->args[2] & (O_ACCMODE | O_CREAT | O_TRUNC | O_CLOEXEC)) != O_CLOEXEC)
		return 0;
	p = proc_scratch_get();
	if (!p)
		return 0;
	if (bpf_probe_read_user_str(p->path, sizeof(p->path), (void *)name) <= 0)
		return 0;
	if (is_libssl(p->path))
		bpf_map_update_elem(&open_args_map, &id, &name, BPF_ANY);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_openat")
int lib_openat_exit(tp_exit_t *ctx)
{
	NOOP_GUARD
	__u64 id = bpf_get_current_pid_tgid();
	__u64 *name = bpf_map_lookup_elem(&open_args_map, &id);
	struct qmon_proc_event *p;
	__u64 n;

	if (!name)
		return 0;
	n = *name;
	bpf_map_delete_elem(&open_args_map, &id);
	if (ctx->ret < 0)
		return 0;
	p = proc_scratch_get();
	if (!p)
		return 0;
	if (bpf_probe_read_user_str(p->path, sizeof(p->path), (void *)n) <= 0)
		return 0;
	proc_emit(p, QMON_EV_LIB_OPEN, id, ctx->ret);
	return 0;
}
