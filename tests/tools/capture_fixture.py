#!/usr/bin/env python3
"""Capture real HTTP/1 byte streams on loopback as qmon test fixtures.

A single-threaded relay sits between a client and a server on 127.0.0.1 and
logs every segment it forwards, in the order it forwarded them, in the
fixture format of protocols/src/fixture.rs (`> N` egress, `< N`
ingress, `. close`). It relays exactly one connection, then exits.

Usage:
  # 1. a server: the built-in scenario server, or nginx, or python3 -m http.server
  tests/tools/capture_fixture.py serve --port 18081 &
  # 2. the relay, writing one fixture for the next connection
  tests/tools/capture_fixture.py relay --listen 18080 --upstream 18081 \\
      --out protocols/tests/fixtures/http1/keepalive.txt --comment "curl keep-alive" &
  # 3. any client through the relay
  curl -s http://127.0.0.1:18080/hello http://127.0.0.1:18080/hello
  # pipelining (curl no longer pipelines): send raw requests in one write
  tests/tools/capture_fixture.py pipeline --port 18080 /a /b /c

  tests/tools/make_http1_fixtures.sh regenerates every http1 fixture.

Scenario server paths: /hello, /kb/N (N KiB body), /chunked (chunked with
trailers), /gzip, /nocontent (204), /etag (304 when If-None-Match matches),
/close10 (HTTP/1.0, close-delimited), /upload (reads a body, 100-continue
aware), /h2c (101 to h2c, then an HTTP/2 SETTINGS frame and close).
"""

import argparse
import gzip
import select
import socket
import sys


def write_segment(f, kind, data=b""):
    if kind == "close":
        f.write(b". close\n")
    else:
        f.write(("%s %d\n" % (kind, len(data))).encode())
        f.write(data)
        f.write(b"\n")
    f.flush()


def relay(args):
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", args.listen))
    ls.listen(1)
    client, _ = ls.accept()
    server = socket.create_connection(("127.0.0.1", args.upstream))
    with open(args.out, "wb") as f:
        if args.comment:
            f.write(("# %s\n" % args.comment).encode())
        peers = {client: (server, ">"), server: (client, "<")}
        open_ = {client, server}
        while open_:
            ready, _, _ = select.select(list(open_), [], [], args.timeout)
            if not ready:
                break
            for s in ready:
                other, kind = peers[s]
                data = s.recv(65536)
                if not data:
                    open_.discard(s)
                    try:
                        other.shutdown(socket.SHUT_WR)
                    except OSError:
                        pass
                    continue
                write_segment(f, kind, data)
                other.sendall(data)
        write_segment(f, "close")
    client.close()
    server.close()


def pipeline(args):
    s = socket.create_connection(("127.0.0.1", args.port))
    reqs = b"".join(
        b"GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUser-Agent: pipeline\r\n\r\n"
        % (p.encode(), args.port)
        for p in args.paths
    )
    s.sendall(reqs)
    s.shutdown(socket.SHUT_WR)
    while s.recv(65536):
        pass
    s.close()


def read_head(conn, buf):
    while b"\r\n\r\n" not in buf:
        d = conn.recv(65536)
        if not d:
            return None, buf
        buf += d
    head, rest = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    method, path, version = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        k, v = line.split(":", 1)
        headers[k.strip().lower()] = v.strip()
    return (method, path, version, headers), rest


def read_exact(conn, buf, n):
    while len(buf) < n:
        d = conn.recv(65536)
        if not d:
            break
        buf += d
    return buf[:n], buf[n:]


def read_chunked(conn, buf):
    body = b""
    while True:
        while b"\r\n" not in buf:
            buf += conn.recv(65536)
        line, buf = buf.split(b"\r\n", 1)
        n = int(line.split(b";")[0], 16)
        if n == 0:
            while not buf.startswith(b"\r\n") and b"\r\n\r\n" not in buf:
                buf += conn.recv(65536)
            buf = buf[2:] if buf.startswith(b"\r\n") else buf.split(b"\r\n\r\n", 1)[1]
            return body, buf
        data, buf = read_exact(conn, buf, n + 2)
        body += data[:n]


def respond(status, headers, body=b"", version="HTTP/1.1"):
    head = "%s %s\r\n" % (version, status)
    for k, v in headers:
        head += "%s: %s\r\n" % (k, v)
    return head.encode() + b"\r\n" + body


def handle(conn):
    buf = b""
    while True:
        req, buf = read_head(conn, buf)
        if req is None:
            return
        method, path, version, h = req
        body = b""
        if h.get("expect", "").lower() == "100-continue":
            conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        if "content-length" in h:
            body, buf = read_exact(conn, buf, int(h["content-length"]))
        elif h.get("transfer-encoding", "").lower() == "chunked":
            body, buf = read_chunked(conn, buf)
        plain = [("Content-Type", "text/plain")]
        if path == "/hello":
            b = b"hello, world\n"
            out = respond("200 OK", plain + [("Content-Length", len(b))], b if method != "HEAD" else b"")
            if method == "HEAD":
                out = respond("200 OK", plain + [("Content-Length", len(b))])
        elif path.startswith("/kb/"):
            b = (b"0123456789abcdef" * 64) * int(path[4:])
            out = respond("200 OK", plain + [("Content-Length", len(b))], b)
        elif path == "/chunked":
            parts = [b"first chunk\n", b"second, a bit longer chunk\n", b"third\n"]
            chunks = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts)
            chunks += b"0\r\nX-Checksum: abc123\r\nX-Rows: 3\r\n\r\n"
            out = respond("200 OK", plain + [("Transfer-Encoding", "chunked"), ("Trailer", "X-Checksum, X-Rows")], chunks)
        elif path == "/gzip":
            b = gzip.compress(b'{"items": [' + b", ".join(b'"item%d"' % i for i in range(50)) + b"]}", mtime=0)
            out = respond("200 OK", [("Content-Type", "application/json"), ("Content-Encoding", "gzip"), ("Content-Length", len(b))], b)
        elif path == "/nocontent":
            out = respond("204 No Content", [("X-Request", "deleted")])
        elif path == "/etag":
            if h.get("if-none-match") == '"v1"':
                out = respond("304 Not Modified", [("ETag", '"v1"'), ("Content-Length", "42")])
            else:
                b = b"versioned\n"
                out = respond("200 OK", [("ETag", '"v1"'), ("Content-Length", len(b))], b)
        elif path == "/close10":
            conn.sendall(respond("200 OK", plain, version="HTTP/1.0"))
            conn.sendall(b"close-delimited body, part one\n")
            conn.sendall(b"and part two\n")
            return
        elif path == "/upload":
            b = b"got %d bytes\n" % len(body)
            out = respond("201 Created", plain + [("Content-Length", len(b))], b)
        elif path == "/h2c":
            conn.sendall(respond("101 Switching Protocols", [("Connection", "Upgrade"), ("Upgrade", "h2c")]))
            conn.sendall(bytes.fromhex("000000040000000000"))  # empty SETTINGS
            return
        else:
            b = b"not found\n"
            out = respond("404 Not Found", plain + [("Content-Length", len(b))], b)
        conn.sendall(out)
        if h.get("connection", "").lower() == "close" or version == "HTTP/1.0":
            return


def serve(args):
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", args.port))
    ls.listen(8)
    for _ in range(args.connections):
        conn, _ = ls.accept()
        try:
            handle(conn)
        except (OSError, ValueError):
            pass
        finally:
            conn.close()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("relay")
    r.add_argument("--listen", type=int, required=True)
    r.add_argument("--upstream", type=int, required=True)
    r.add_argument("--out", required=True)
    r.add_argument("--comment")
    r.add_argument("--timeout", type=float, default=10.0)
    s = sub.add_parser("serve")
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--connections", type=int, default=1000)
    c = sub.add_parser("pipeline")
    c.add_argument("--port", type=int, required=True)
    c.add_argument("paths", nargs="+")
    args = p.parse_args()
    {"relay": relay, "serve": serve, "pipeline": pipeline}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
