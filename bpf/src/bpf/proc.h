/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Processes: exec, exit, and opens of TLS libraries, which tell the daemon
 * where to attach the TLS probes next.
 */
#ifndef QMON_PROC_H
#define QMON_PROC_H

/* File-name prefixes of the TLS stacks' libraries ("libssl", ...), each
 * NUL-terminated, the list ended by an empty one. The daemon fills it from
 * its TLS-stack table (qmon/src/capture/tls/), the one list of them. Read
 * only: the verifier knows every byte, so it walks only the prefixes there
 * are, to their length. */
const volatile char tls_lib_prefixes[QMON_TLS_PREFIXES][QMON_TLS_PREFIX_LEN] = {};

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

/* Does s start with one of the TLS library prefixes? */
static __always_inline bool tls_lib_prefix_at(const char *s)
{
	int i, k;

	for (i = 0; i < QMON_TLS_PREFIXES; i++) {
		if (!tls_lib_prefixes[i][0])
			return false; /* the end of the list */
		for (k = 0; k < QMON_TLS_PREFIX_LEN; k++) {
			char c = tls_lib_prefixes[i][k];

			if (!c)
				return true;
			if (s[k] != c)
				break;
		}
	}
	return false;
}

/* Does a path component start with a TLS library prefix? Checked at every
 * position with no state carried between iterations, which keeps
 * verification linear. */
static __always_inline bool is_tls_lib(const char *path)
{
	int i;

	for (i = 0; i < QMON_PATH_MAX - QMON_TLS_PREFIX_LEN; i++) {
		if (path[i] == 0)
			break;
		if (path[i] == '/' && tls_lib_prefix_at(path + i + 1))
			return true;
	}
	return tls_lib_prefix_at(path);
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
	if (is_tls_lib(p->path))
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

#endif /* QMON_PROC_H */
