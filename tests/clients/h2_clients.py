#!/usr/bin/env python3
"""HTTP/2 test clients for the qmon end-to-end tests. Run with the system
python3 (Debian's, linked against the system libssl, which qmon probes).

    h2_clients.py get CA URL...
        httpx (http2=True), one client, one connection: GET each URL; prints
        "HTTP/2 STATUS BODYLEN" per URL.
    h2_clients.py burst CA HOST PORT AUTHORITY N
        h2 over ssl (ALPN h2): sends the HEADERS of N GETs /burst/<i> in one
        write before reading any response, so all N streams are open at once
        on one connection; prints "ok N MAXOPEN" and one "PATH STATUS LEN"
        line per stream.
    h2_clients.py grpc CA HOST PORT PATH PAYLOAD
        hand-framed gRPC over h2 + ssl (system OpenSSL): one request message,
        prints "status=S message=M msgs=K" from the trailers.
    h2_clients.py longlived CA URLBASE GOFILE
        httpx http2: phase-1 GETs, prints "phase1" and waits for GOFILE to
        exist, then phase-2 GETs on the same connection; prints
        "PATH STATUS LEN" per phase-2 request and "conns=1" when the pool
        holds one connection at the end, and the phase-2 stream ids.
"""
import os
import socket
import ssl
import sys
import time
import urllib.parse

import h2.config
import h2.connection
import h2.events


def h2_tls(ca, host, port):
    ctx = ssl.create_default_context(cafile=ca)
    ctx.set_alpn_protocols(["h2"])
    raw = socket.create_connection((host, port), timeout=30)
    s = ctx.wrap_socket(raw, server_hostname=host)
    assert s.selected_alpn_protocol() == "h2", s.selected_alpn_protocol()
    c = h2.connection.H2Connection(
        h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    c.initiate_connection()
    s.sendall(c.data_to_send())
    return s, c


def pump(s, c, streams, on_event):
    """Reads until every stream in `streams` has ended or been reset."""
    while streams:
        data = s.recv(65536)
        if not data:
            raise SystemExit("connection closed with %d streams open" % len(streams))
        for ev in c.receive_data(data):
            if isinstance(ev, h2.events.DataReceived):
                c.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            if isinstance(ev, (h2.events.StreamEnded, h2.events.StreamReset)):
                streams.discard(ev.stream_id)
            on_event(ev)
        out = c.data_to_send()
        if out:
            s.sendall(out)


def cmd_get(ca, urls):
    import httpx
    # httpx drops a connection idle for 5 s by default, and qmon can take
    # longer than that to start in an emulated guest: phase 2 would then run
    # on a fresh connection that qmon sees from the start.
    limits = httpx.Limits(keepalive_expiry=600)
    with httpx.Client(http2=True, verify=ca, timeout=30, limits=limits) as cl:
        for u in urls:
            r = cl.get(u)
            print(r.http_version, r.status_code, len(r.content), flush=True)


def cmd_burst(ca, host, port, authority, n):
    s, c = h2_tls(ca, host, int(port))
    # Wait for the server's SETTINGS so its concurrency limit is known.
    got_settings = False
    while not got_settings:
        for ev in c.receive_data(s.recv(65536)):
            if isinstance(ev, h2.events.RemoteSettingsChanged):
                got_settings = True
        s.sendall(c.data_to_send())
    paths, result = {}, {}
    for i in range(int(n)):
        sid = c.get_next_available_stream_id()
        paths[sid] = "/burst/%d" % i + "/x" * (i % 7)
        c.send_headers(sid, [(":method", "GET"), (":scheme", "https"),
                             (":authority", authority), (":path", paths[sid]),
                             ("user-agent", "qmon-burst/1")], end_stream=True)
    max_open = c.open_outbound_streams
    s.sendall(c.data_to_send())  # every HEADERS frame in one write

    def on(ev):
        if isinstance(ev, h2.events.ResponseReceived):
            result[ev.stream_id] = [dict(ev.headers)[":status"], 0]
        elif isinstance(ev, h2.events.DataReceived):
            result[ev.stream_id][1] += len(ev.data)
    pump(s, c, set(paths), on)
    print("ok", len(result), max_open)
    for sid in sorted(paths):
        print(paths[sid], *result[sid])
    s.close()


def cmd_grpc(ca, host, port, path, payload):
    s, c = h2_tls(ca, host, int(port))
    sid = c.get_next_available_stream_id()
    c.send_headers(sid, [(":method", "POST"), (":scheme", "https"),
                         (":authority", "%s:%s" % (host, port)), (":path", path),
                         ("content-type", "application/grpc"), ("te", "trailers"),
                         ("user-agent", "qmon-grpc-tls/1")])
    msg = payload.encode()
    c.send_data(sid, b"\x00" + len(msg).to_bytes(4, "big") + msg, end_stream=True)
    s.sendall(c.data_to_send())
    out = {"status": None, "message": "", "data": b""}

    def on(ev):
        if isinstance(ev, h2.events.TrailersReceived):
            t = dict(ev.headers)
            out["status"] = t.get("grpc-status")
            out["message"] = urllib.parse.unquote(t.get("grpc-message", ""))
        elif isinstance(ev, h2.events.ResponseReceived):
            h = dict(ev.headers)  # trailers-only responses carry status here
            if "grpc-status" in h:
                out["status"] = h["grpc-status"]
                out["message"] = urllib.parse.unquote(h.get("grpc-message", ""))
        elif isinstance(ev, h2.events.DataReceived):
            out["data"] += ev.data
    pump(s, c, {sid}, on)
    print("status=%s message=%s resp_bytes=%d" % (out["status"], out["message"], len(out["data"])))
    s.close()


def cmd_longlived(ca, base, gofile):
    import httpx
    def get(cl, path):
        return cl.get(base + path)

    # httpx drops a connection idle for 5 s by default, and qmon can take
    # longer than that to start in an emulated guest: phase 2 would then run
    # on a fresh connection that qmon sees from the start.
    limits = httpx.Limits(keepalive_expiry=600)
    with httpx.Client(http2=True, verify=ca, timeout=30, limits=limits) as cl:
        for p in ["/ll/alpha", "/ll/beta", "/ll/alpha", "/ll/gamma?q=1"]:
            r = get(cl, p)
            assert r.http_version == "HTTP/2", r.http_version
        print("phase1", flush=True)
        deadline = time.time() + 60
        while not os.path.exists(gofile):
            if time.time() > deadline:
                raise SystemExit("no go file")
            time.sleep(0.05)
        # Repeats (HPACK dynamic-table references) and new paths (literals).
        streams = []
        for p in ["/ll/alpha", "/ll/delta-1", "/ll/beta", "/ll/epsilon-22", "/ll/gamma?q=1",
                  "/ll/alpha"]:
            r = get(cl, p)
            print(p, r.status_code, len(r.content), flush=True)
            streams.append(r.extensions["stream_id"])
        # Phase 1 used streams 1-7: higher ids prove the same connection.
        print("streams=%s" % ",".join(map(str, streams)), flush=True)
        # httpx keeps one pooled connection per origin for HTTP/2.
        print("conns=%d" % len(cl._transport._pool.connections), flush=True)


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "get":
        cmd_get(args[0], args[1:])
    elif cmd == "burst":
        cmd_burst(*args)
    elif cmd == "grpc":
        cmd_grpc(*args)
    elif cmd == "longlived":
        cmd_longlived(*args)
    else:
        raise SystemExit("unknown command " + cmd)


if __name__ == "__main__":
    main()
