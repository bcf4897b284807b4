#!/usr/bin/env python3
"""Local HTTP/HTTPS test server for qmon's end-to-end tests.

Usage: https_server.py [--bind ADDR] [--port N] [--cert FILE --key FILE]

Port 0 picks a free port. Once listening, the chosen port is printed alone on
one line of stdout (and stdout is flushed), so the harness can read it.

It uses Python's ssl module, which drives OpenSSL through SSL_read_ex and
SSL_write_ex: this is server-side traffic that qmon must not record as an
outbound call.

Endpoints:
  GET  /hello[?tag=T]   small body "hello T\n" (T defaults to "world")
  GET  /chunked         Transfer-Encoding: chunked body, several chunks
  GET  /status/NNN      responds with status NNN (no body for 1xx/204/304)
  POST /echo            echoes the request body back
  GET  /big?n=BYTES     body of exactly n bytes
  GET  /slow?ms=N       waits N ms before responding
  HEAD on any GET path  same headers, no body
"""

import argparse
import socket
import ssl
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

CHUNKS = [b"chunk-one;", b"chunk-two;", b"chunk-three\n"]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "qmon-test-server/1"

    def log_message(self, fmt, *args):  # keep test output quiet
        pass

    def _query(self):
        parts = urlsplit(self.path)
        return parts.path, parse_qs(parts.query)

    def _send(self, status, body, ctype="text/plain", head=False):
        self.send_response(status)
        no_body = status < 200 or status in (204, 304)
        if not no_body:
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head and not no_body:
            self.wfile.write(body)

    def _get(self, head):
        path, q = self._query()
        if path == "/hello":
            tag = q.get("tag", ["world"])[0]
            self._send(200, ("hello %s\n" % tag).encode(), head=head)
        elif path == "/chunked":
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            if not head:
                for c in CHUNKS:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(c), c))
                    self.wfile.flush()
                self.wfile.write(b"0\r\n\r\n")
        elif path.startswith("/status/"):
            try:
                code = int(path[len("/status/"):])
            except ValueError:
                code = 400
            self._send(code, ("status %d\n" % code).encode(), head=head)
        elif path == "/big":
            n = int(q.get("n", ["1024"])[0])
            body = (b"0123456789abcdef" * (n // 16 + 1))[:n]
            self._send(200, body, ctype="application/octet-stream", head=head)
        elif path == "/slow":
            ms = int(q.get("ms", ["100"])[0])
            time.sleep(ms / 1000.0)
            self._send(200, b"slow\n", head=head)
        else:
            self._send(404, b"not found\n", head=head)

    def do_GET(self):
        self._get(head=False)

    def do_HEAD(self):
        self._get(head=True)

    def do_POST(self):
        path, _ = self._query()
        n = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(n) if n else b""
        if path == "/echo":
            self._send(200, body, ctype="application/octet-stream")
        else:
            self._send(404, b"not found\n")


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 512


class Server6(Server):
    address_family = socket.AF_INET6


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bind", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--cert")
    ap.add_argument("--key")
    a = ap.parse_args()

    cls = Server6 if ":" in a.bind else Server
    httpd = cls((a.bind, a.port), Handler)
    if a.cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(a.cert, a.key)
        ctx.set_alpn_protocols(["http/1.1"])
        httpd.socket = ctx.wrap_socket(
            httpd.socket, server_side=True, do_handshake_on_connect=False
        )
    print(httpd.server_address[1], flush=True)
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
