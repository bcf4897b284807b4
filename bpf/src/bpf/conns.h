/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Socket identity and the tracked connections: which fds are TCP sockets,
 * opening (and announcing) a connection, finding or adopting one.
 */
#ifndef QMON_CONNS_H
#define QMON_CONNS_H

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

#endif /* QMON_CONNS_H */
