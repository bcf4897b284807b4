#!/usr/bin/env python3
"""Loopback TCP relay that records each relayed connection as a qmon fixture.

    h2_relay.py LISTEN_PORT UPSTREAM_PORT OUT_PREFIX

Every accepted connection is forwarded to 127.0.0.1:UPSTREAM_PORT and written
to OUT_PREFIX-<n>.txt in the fixture format (see
protocols/src/fixture.rs): one segment per recv(), in the order the
bytes crossed the relay, so stream interleaving is preserved. Single-threaded
(selectors) so the order in the file is the order seen. Loopback only.
"""
import selectors
import socket
import sys


def main():
    lport, uport, prefix = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    sel = selectors.DefaultSelector()
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", lport))
    ls.listen()
    sel.register(ls, selectors.EVENT_READ, None)
    count = 0
    while True:
        for key, _ in sel.select():
            if key.data is None:
                client, _ = ls.accept()
                upstream = socket.create_connection(("127.0.0.1", uport))
                for s in (client, upstream):
                    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                count += 1
                out = open(f"{prefix}-{count}.txt", "wb")
                out.write(b"# captured by tests/tools/h2_relay.py on loopback\n")
                conn = {"out": out, "open": True}
                sel.register(client, selectors.EVENT_READ, (conn, client, upstream, b">"))
                sel.register(upstream, selectors.EVENT_READ, (conn, upstream, client, b"<"))
                continue
            conn, src, dst, arrow = key.data
            try:
                data = src.recv(65536)
            except OSError:
                data = b""
            if data:
                conn["out"].write(arrow + b" %d\n" % len(data) + data + b"\n")
                conn["out"].flush()
                dst.sendall(data)
                continue
            if conn["open"]:
                conn["open"] = False
                conn["out"].write(b". close\n")
                conn["out"].close()
                for s in (src, dst):
                    try:
                        sel.unregister(s)
                    except (KeyError, ValueError):
                        pass
                    s.close()


if __name__ == "__main__":
    main()
