/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The ring buffer: record headers, when to wake the daemon, and data events
 * in size classes (emit_chunk, emit_buf, emit_call).
 */
#ifndef QMON_EMIT_H
#define QMON_EMIT_H

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

#endif /* QMON_EMIT_H */
