#!/usr/bin/env python3
"""grpcio test server (raw bytes, no generated code), h2c or TLS.

    grpc_server.py [--cert CERT --key KEY]

Binds 127.0.0.1 on a kernel-chosen port and prints the port on stdout.
Service `demo.v1.Greeter`: SayHello (unary, replies b"hello, " + request),
Fail (unary, NOT_FOUND with a non-ASCII message), Stream (server streaming,
5 messages). Debian's python3-grpcio links the system OpenSSL.
"""
import argparse
import sys
from concurrent import futures

import grpc

FAIL_MESSAGE = "user 42 not found: caf\u00e9 100%"


def say_hello(req, ctx):
    return b"hello, " + req


def fail(req, ctx):
    ctx.abort(grpc.StatusCode.NOT_FOUND, FAIL_MESSAGE)


def stream(req, ctx):
    for i in range(5):
        yield b"item-%d-" % i + b"x" * (10 * i)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cert")
    ap.add_argument("--key")
    a = ap.parse_args()
    handlers = {
        "SayHello": grpc.unary_unary_rpc_method_handler(say_hello),
        "Fail": grpc.unary_unary_rpc_method_handler(fail),
        "Stream": grpc.unary_stream_rpc_method_handler(stream),
    }
    s = grpc.server(futures.ThreadPoolExecutor(4))
    s.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("demo.v1.Greeter", handlers)])
    if a.cert:
        creds = grpc.ssl_server_credentials(
            [(open(a.key, "rb").read(), open(a.cert, "rb").read())])
        port = s.add_secure_port("127.0.0.1:0", creds)
    else:
        port = s.add_insecure_port("127.0.0.1:0")
    s.start()
    print(port, flush=True)
    s.wait_for_termination()


if __name__ == "__main__":
    sys.exit(main())
