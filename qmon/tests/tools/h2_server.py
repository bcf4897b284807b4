#!/usr/bin/env python3
"""Small h2c server (prior knowledge and `Upgrade: h2c`) for fixture capture.

    h2_server.py PORT

Routes: `/` and anything else → 200 text; `/large` → 200 kB body in many
DATA frames; POST → echoes the body size; `/reset` → RST_STREAM
INTERNAL_ERROR; `/slow` → waits 0.3 s before answering. Loopback only.
"""
import socket
import sys
import threading
import time

import h2.config
import h2.connection
import h2.events


class Conn:
    def __init__(self, sock):
        self.sock = sock
        self.lock = threading.Lock()
        self.conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=False, header_encoding="utf-8"))
        self.bodies = {}
        self.pending = {}  # stream -> remaining bytes to send
        self.window_cv = threading.Condition(self.lock)

    def flush(self):
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def run(self):
        first = self.sock.recv(65536)
        if first.startswith(b"PRI * HTTP/2.0"):
            self.conn.initiate_connection()
            self.flush()
            self.handle(first)
        else:
            # HTTP/1.1 request asking for an upgrade.
            head, _, rest = first.partition(b"\r\n\r\n")
            lines = head.split(b"\r\n")
            hdrs = {k.strip().lower(): v.strip() for k, _, v in (l.partition(b":") for l in lines[1:])}
            self.sock.sendall(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n")
            self.conn.initiate_upgrade_connection(hdrs.get(b"http2-settings", b""))
            self.flush()
            path = lines[0].split(b" ")[1].decode()
            self.respond(1, path, b"")
            if rest:
                self.handle(rest)
        while True:
            try:
                data = self.sock.recv(65536)
            except OSError:
                return
            if not data:
                return
            self.handle(data)

    def handle(self, data):
        with self.lock:
            events = self.conn.receive_data(data)
            self.flush()
        for ev in events:
            if isinstance(ev, h2.events.RequestReceived):
                self.bodies[ev.stream_id] = [dict(ev.headers), b""]
            elif isinstance(ev, h2.events.DataReceived):
                with self.lock:
                    self.bodies[ev.stream_id][1] += ev.data
                    self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                    self.flush()
            elif isinstance(ev, h2.events.StreamEnded):
                self.dispatch(ev.stream_id)
            elif isinstance(ev, h2.events.WindowUpdated):
                with self.lock:
                    self.window_cv.notify_all()

    def dispatch(self, sid):
        hdrs, body = self.bodies.pop(sid)
        path = hdrs[":path"]
        if path == "/slow":
            threading.Thread(target=lambda: (time.sleep(0.3), self.respond(sid, path, body))).start()
        else:
            threading.Thread(target=self.respond, args=(sid, path, body)).start()

    def respond(self, sid, path, body):
        with self.lock:
            if path == "/reset":
                self.conn.reset_stream(sid, error_code=2)
                self.flush()
                return
            if path == "/large":
                payload = bytes(range(256)) * 800  # 204800 bytes
            elif body:
                payload = b"got %d bytes\n" % len(body)
            else:
                payload = b"hello from %s\n" % path.encode()
            self.conn.send_headers(sid, [(":status", "200"), ("content-type", "text/plain"),
                                         ("content-length", str(len(payload))), ("x-served-by", "h2_server")])
            self.flush()
            while payload:
                while self.conn.local_flow_control_window(sid) <= 0:
                    self.window_cv.wait(timeout=2)
                n = min(len(payload), self.conn.local_flow_control_window(sid),
                        self.conn.max_outbound_frame_size)
                self.conn.send_data(sid, payload[:n])
                payload = payload[n:]
                self.flush()
            self.conn.end_stream(sid)
            self.flush()


def main():
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", int(sys.argv[1])))
    ls.listen()
    while True:
        s, _ = ls.accept()
        threading.Thread(target=Conn(s).run, daemon=True).start()


if __name__ == "__main__":
    main()
