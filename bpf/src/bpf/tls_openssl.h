/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * OpenSSL (and copies linked into executables): SSL_write/SSL_read return
 * the byte count, SSL_write_ex/SSL_read_ex return 1 and store the count; all
 * four return int. SSL_free forgets the session.
 */
#ifndef QMON_TLS_OPENSSL_H
#define QMON_TLS_OPENSSL_H

SEC("uprobe") int BPF_UPROBE(ssl_write_enter, void *ssl, void *buf, int num)
{
	NOOP_GUARD
	tls_enter(ssl, buf, NULL, QMON_DIR_EGRESS);
	return 0;
}
SEC("uprobe") int BPF_UPROBE(ssl_read_enter, void *ssl, void *buf, int num)
{
	NOOP_GUARD
	tls_enter(ssl, buf, NULL, QMON_DIR_INGRESS);
	return 0;
}
SEC("uprobe") int BPF_UPROBE(ssl_write_ex_enter, void *ssl, void *buf, size_t num, size_t *written)
{
	NOOP_GUARD
	tls_enter(ssl, buf, written, QMON_DIR_EGRESS);
	return 0;
}
SEC("uprobe") int BPF_UPROBE(ssl_read_ex_enter, void *ssl, void *buf, size_t num, size_t *readbytes)
{
	NOOP_GUARD
	tls_enter(ssl, buf, readbytes, QMON_DIR_INGRESS);
	return 0;
}
SEC("uretprobe") int BPF_URETPROBE(ssl_rw_exit, int ret)
{
	NOOP_GUARD
	tls_exit(QMON_SRC_OPENSSL, ret);
	return 0;
}
SEC("uprobe") int BPF_UPROBE(ssl_free_enter, void *ssl)
{
	NOOP_GUARD
	tls_forget(ssl);
	return 0;
}

#endif /* QMON_TLS_OPENSSL_H */
