/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * TLS plaintext, whatever the library: what every TLS stack shares.
 *
 * A stack's probe bodies (tls_<stack>.h) only unpack its functions'
 * arguments and return values:
 *   - tls_enter(session, buf, len_ptr, dir) at the entry of a read or write
 *     function: `session` is the stack's per-connection pointer (SSL*,
 *     gnutls_session_t, ...), `len_ptr` where the function stores its byte
 *     count (NULL when the return value is the byte count);
 *   - tls_exit(source, ret) at its return: `source` is the stack's enum
 *     qmon_source value (a constant, so the data event gets it for free),
 *     `ret` the return value sign-extended. Without len_ptr, <= 0 is an
 *     error or no data and otherwise the byte count; with it, 1 is success
 *     and the count is at *len_ptr;
 *   - tls_forget(session) where the stack frees a session.
 * The daemon's table (qmon/src/capture/tls/) says which function gets which
 * program.
 *
 * Mapping a session to its socket uses no struct offsets: the read/write
 * syscall the library makes inside the call, on the same thread, names the
 * fd (data_enter calls tls_nested_syscall), and a session -> fd cache covers
 * calls served from the library's own buffers.
 */
#ifndef QMON_TLS_H
#define QMON_TLS_H

static __always_inline void tls_enter(void *session, void *buf, void *len_ptr, __u8 dir)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct tls_args a = {
		.session = (__u64)session, .buf = (__u64)buf, .len_ptr = (__u64)len_ptr, .fd = -1,
		.dir = dir, .live = 1
	};

	if (is_self(id))
		return;
	if (SLOT_PUT(&tls_args_map, &id, &a))
		stat_add(QMON_STAT_ARGS_DROPPED, 1);
}

/* Called by data_enter for every data syscall on a socket (idp: the
 * caller's pid_tgid, which is the map key): inside a TLS call on this
 * thread, the library is doing its I/O and fd is its socket. Sets *in_tls
 * if so (the syscall's bytes are then ciphertext). */
static __always_inline void tls_nested_syscall(__u64 *idp, int fd, __u8 *in_tls)
{
	struct tls_args *ta = bpf_map_lookup_elem(&tls_args_map, idp);

	if (ta && ta->live) {
		ta->fd = fd;
		*in_tls = 1;
	}
}

static __always_inline void tls_exit(__u8 source, long ret)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct tls_args *ap = bpf_map_lookup_elem(&tls_args_map, &id);
	struct qmon_tls_key key = {};
	struct qmon_tls_fd *cached;
	struct qmon_conn_state *st = NULL;
	struct tls_args a;
	struct emit_ctx c = {};
	__u64 n = 0;
	int fd;

	if (!ap || !ap->live)
		return;
	a = *ap;
	ap->live = 0;
	if (a.len_ptr) {
		/* 1 is success, and the count is stored (SSL_read_ex). */
		if (ret != 1 || bpf_probe_read_user(&n, sizeof(n), (void *)a.len_ptr))
			return;
	} else {
		if (ret <= 0)
			return; /* an error, or no data */
		n = ret;
	}
	if (n == 0)
		return;

	key.session = a.session;
	key.tgid = id >> 32;
	fd = a.fd;
	if (fd >= 0) {
		struct qmon_tls_fd s = { .fd = fd };
		cached = bpf_map_lookup_elem(&tls_fds, &key);
		if (!cached || cached->fd != fd)
			bpf_map_update_elem(&tls_fds, &key, &s, BPF_ANY);
	} else {
		/* Served from the library's own buffer: no syscall revealed the fd. */
		cached = bpf_map_lookup_elem(&tls_fds, &key);
		fd = cached ? cached->fd : -1;
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
		/* fd unknown: the daemon keys this stream by its session (see
		 * QMON_UNKNOWN_FD_KEY_BIT) and cannot check positions. */
		fill_header(&c.ev.hdr, QMON_EV_DATA, id, -1, 0);
		c.ev.pos = QMON_POS_UNKNOWN;
	}
	c.ev.dir = a.dir & 1;
	c.ev.source = source;
	c.ev.session = a.session;
	emit_call(&c, id, a.buf, 0, n);
}

static __always_inline void tls_forget(void *session)
{
	struct qmon_tls_key key = { .session = (__u64)session,
				    .tgid = bpf_get_current_pid_tgid() >> 32 };

	bpf_map_delete_elem(&tls_fds, &key);
}

#endif /* QMON_TLS_H */
