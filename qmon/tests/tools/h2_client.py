#!/usr/bin/env python3
"""h2c prior-knowledge client for fixture capture (curl 7.88 cannot multiplex
with prior knowledge).

    h2_client.py PORT concurrent   # 6 streams in flight at once, one POST
    h2_client.py PORT sequential   # 6 requests one after another (HPACK
                                   # dynamic-table references in later ones)
    h2_client.py PORT cancel       # client RST_STREAM(CANCEL) on /slow
Loopback only.
"""
import socket
import sys
import time

import h2.config
import h2.connection
import h2.events


def headers(path, method="GET", extra=()):
    return [(":method", method), (":scheme", "http"), (":authority", "api.example.test"),
            (":path", path), ("user-agent", "qmon-fixture/1.0"),
            ("authorization", "Bearer token-abcdef0123456789"), ("x-tenant", "acme-corp")] + list(extra)


def main():
    port, mode = int(sys.argv[1]), sys.argv[2]
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    c.initiate_connection()
    s.sendall(c.data_to_send())
    open_streams = set()

    def start(path, method="GET", body=None):
        sid = c.get_next_available_stream_id()
        c.send_headers(sid, headers(path, method, [("content-length", str(len(body)))] if body else []),
                       end_stream=body is None)
        if body:
            c.send_data(sid, body, end_stream=True)
        s.sendall(c.data_to_send())
        open_streams.add(sid)
        return sid

    def pump(until_empty=True):
        while open_streams:
            data = s.recv(65536)
            if not data:
                return
            for ev in c.receive_data(data):
                if isinstance(ev, (h2.events.StreamEnded, h2.events.StreamReset)):
                    open_streams.discard(ev.stream_id)
                elif isinstance(ev, h2.events.DataReceived):
                    c.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            out = c.data_to_send()
            if out:
                s.sendall(out)
            if not until_empty:
                return

    if mode == "concurrent":
        for p in ["/v1/items/1", "/slow", "/v1/items/2", "/v1/items/3"]:
            start(p)
        start("/v1/items", "POST", b'{"name":"widget","qty":3}')
        start("/v1/items/4")
        pump()
    elif mode == "sequential":
        for i in range(6):
            start(f"/v1/users/{i}")
            pump()
    elif mode == "cancel":
        sid = start("/slow")
        start("/v1/fast")
        time.sleep(0.05)
        c.reset_stream(sid, error_code=8)
        s.sendall(c.data_to_send())
        open_streams.discard(sid)
        pump()
    c.close_connection()
    s.sendall(c.data_to_send())
    s.close()


if __name__ == "__main__":
    main()
