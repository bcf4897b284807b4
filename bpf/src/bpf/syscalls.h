/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The socket syscalls: data calls (read/write and their vectored and msg
 * forms), connect, accept, close. Every hook has one body here and two
 * wrappers: a syscall tracepoint (tp_*) and a kprobe on the syscall (kp_*).
 * The daemon attaches one set by name prefix; both are loaded, so both must
 * pass the verifier.
 */
#ifndef QMON_SYSCALLS_H
#define QMON_SYSCALLS_H

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
	struct data_args *sp;
	struct qmon_conn_state *st;

	if (is_self(id))
		return;
	/* A peek leaves the bytes queued: the read that consumes them reports
	 * them (curl peeks one byte to check a connection before reusing it). */
	if (flags & MSG_PEEK)
		goto skip;
	tls_nested_syscall(&id, fd, &a.in_tls);
	st = bpf_map_lookup_elem(&conns, &key);
	if (st) {
		if (!a.in_tls && (st->flags & (QMON_CONN_TLS | QMON_CONN_MUTE_SYSCALL |
					       QMON_CONN_MUTE_ALL))) {
			stat_add(QMON_STAT_MUTED_CALLS, 1);
			goto skip;
		}
		/* Ciphertext under a TLS call: the exit would only mark the
		 * connection TLS, which it already is (or muted, where it does
		 * not matter). The fd is learnt above; skip the exit. */
		if (a.in_tls && (st->flags & (QMON_CONN_TLS | QMON_CONN_MUTE_ALL)))
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
	if (a.in_tls) {
		/* Ciphertext: the plaintext comes from the TLS probes. */
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
		/* A handshake outside a probed TLS call, or TLS from a library
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

static __always_inline void msg_enter(int fd, struct user_msghdr *msg, __u8 dir, __u64 flags)
{
	struct user_msghdr m = {};

	if (bpf_probe_read_user(&m, sizeof(m), msg))
		return;
	data_enter(fd, (__u64)m.msg_iov, m.msg_iovlen ? m.msg_iovlen : 1, dir, flags);
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

/* ---- the two wrappers ------------------------------------------------- */

/* Which data syscalls take flags (the bytes-discarding and peeking ones),
 * given the argument that holds them; the others pass 0. */
#define DATA_FLAGS_write(f) 0
#define DATA_FLAGS_sendto(f) 0
#define DATA_FLAGS_writev(f) 0
#define DATA_FLAGS_read(f) 0
#define DATA_FLAGS_recvfrom(f) (f)
#define DATA_FLAGS_readv(f) 0
#define DATA_FLAGS_sendmsg(f) 0
#define DATA_FLAGS_recvmsg(f) (f)

#define TP_ENTER(name) SEC("tracepoint/syscalls/sys_enter_" #name)
#define TP_EXIT(name) SEC("tracepoint/syscalls/sys_exit_" #name)
#define tp_enter_t struct trace_event_raw_sys_enter
#define tp_exit_t struct trace_event_raw_sys_exit

/* A data syscall (fd, buf, count or iovcnt, flags) as tracepoints:
 * tp_<name>_enter and tp_<name>_exit. `vec`: the buffer is an iovec array. */
#define TP_DATA(name, dir, vec)                                                           \
	TP_ENTER(name) int tp_##name##_enter(tp_enter_t *ctx)                             \
	{                                                                                 \
		NOOP_GUARD                                                                \
		data_enter(ctx->args[0], ctx->args[1], (vec) ? ctx->args[2] : 0, dir,     \
			   DATA_FLAGS_##name(ctx->args[3]));                              \
		return 0;                                                                 \
	}                                                                                 \
	TP_EXIT(name) int tp_##name##_exit(tp_exit_t *ctx)                                \
	{                                                                                 \
		NOOP_GUARD                                                                \
		data_exit(ctx->ret);                                                      \
		return 0;                                                                 \
	}

/* sendmsg/recvmsg (fd, msghdr, flags) as tracepoints. */
#define TP_MSG(name, dir)                                                                 \
	TP_ENTER(name) int tp_##name##_enter(tp_enter_t *ctx)                             \
	{                                                                                 \
		NOOP_GUARD                                                                \
		msg_enter(ctx->args[0], (void *)ctx->args[1], dir,                        \
			  DATA_FLAGS_##name(ctx->args[2]));                               \
		return 0;                                                                 \
	}                                                                                 \
	TP_EXIT(name) int tp_##name##_exit(tp_exit_t *ctx)                                \
	{                                                                                 \
		NOOP_GUARD                                                                \
		data_exit(ctx->ret);                                                      \
		return 0;                                                                 \
	}

/* The same, as a kprobe on the syscall and its return: kp_<name>_enter and
 * kp_<name>_exit. */
#define KP_DATA(name, dir, vec)                                                              \
	SEC("ksyscall/" #name)                                                               \
	int BPF_KSYSCALL(kp_##name##_enter, int fd, __u64 buf, __u64 cnt, __u64 flags)      \
	{                                                                                    \
		NOOP_GUARD                                                                   \
		data_enter(fd, buf, (vec) ? cnt : 0, dir, DATA_FLAGS_##name(flags));        \
		return 0;                                                                    \
	}                                                                                    \
	SEC("kretsyscall/" #name) int BPF_KRETPROBE(kp_##name##_exit, long ret)              \
	{                                                                                    \
		NOOP_GUARD                                                                   \
		data_exit(ret);                                                              \
		return 0;                                                                    \
	}

#define KP_MSG(name, dir)                                                                    \
	SEC("ksyscall/" #name)                                                               \
	int BPF_KSYSCALL(kp_##name##_enter, int fd, struct user_msghdr *msg, __u64 flags)   \
	{                                                                                    \
		NOOP_GUARD                                                                   \
		msg_enter(fd, msg, dir, DATA_FLAGS_##name(flags));                          \
		return 0;                                                                    \
	}                                                                                    \
	SEC("kretsyscall/" #name) int BPF_KRETPROBE(kp_##name##_exit, long ret)              \
	{                                                                                    \
		NOOP_GUARD                                                                   \
		data_exit(ret);                                                              \
		return 0;                                                                    \
	}

TP_DATA(write, QMON_DIR_EGRESS, 0)
TP_DATA(sendto, QMON_DIR_EGRESS, 0)
TP_DATA(writev, QMON_DIR_EGRESS, 1)
TP_DATA(read, QMON_DIR_INGRESS, 0)
TP_DATA(recvfrom, QMON_DIR_INGRESS, 0)
TP_DATA(readv, QMON_DIR_INGRESS, 1)
TP_MSG(sendmsg, QMON_DIR_EGRESS)
TP_MSG(recvmsg, QMON_DIR_INGRESS)

KP_DATA(write, QMON_DIR_EGRESS, 0)
KP_DATA(sendto, QMON_DIR_EGRESS, 0)
KP_DATA(writev, QMON_DIR_EGRESS, 1)
KP_DATA(read, QMON_DIR_INGRESS, 0)
KP_DATA(recvfrom, QMON_DIR_INGRESS, 0)
KP_DATA(readv, QMON_DIR_INGRESS, 1)
KP_MSG(sendmsg, QMON_DIR_EGRESS)
KP_MSG(recvmsg, QMON_DIR_INGRESS)

TP_ENTER(connect) int tp_connect_enter(tp_enter_t *ctx) { NOOP_GUARD connect_enter(ctx->args[0]); return 0; }
TP_EXIT(connect) int tp_connect_exit(tp_exit_t *ctx) { NOOP_GUARD connect_exit(ctx->ret); return 0; }
TP_EXIT(accept) int tp_accept_exit(tp_exit_t *ctx) { NOOP_GUARD accept_exit(ctx->ret); return 0; }
TP_EXIT(accept4) int tp_accept4_exit(tp_exit_t *ctx) { NOOP_GUARD accept_exit(ctx->ret); return 0; }
TP_ENTER(close) int tp_close_enter(tp_enter_t *ctx) { NOOP_GUARD close_enter(ctx->args[0]); return 0; }

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

#endif /* QMON_SYSCALLS_H */
