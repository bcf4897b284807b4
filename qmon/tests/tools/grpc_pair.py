#!/usr/bin/env python3
"""grpcio server and client (raw bytes, no generated code) for fixture capture.

    grpc_pair.py server PORT
    grpc_pair.py client PORT CALL    # CALL: unary | fail | stream | stream_fail
Each client call uses its own connection. Loopback only.
"""
import sys
import time
from concurrent import futures

import grpc


def say_hello(req, ctx):
    return b"hello, " + req


def fail(req, ctx):
    ctx.abort(grpc.StatusCode.NOT_FOUND, "user 42 not found: caf\u00e9 100%")


def stream(req, ctx):
    for i in range(5):
        yield b"item-%d-" % i + b"x" * (10 * i)


def stream_fail(req, ctx):
    yield b"first"
    ctx.abort(grpc.StatusCode.UNAVAILABLE, "backend went away")


def server(port):
    handlers = {
        "SayHello": grpc.unary_unary_rpc_method_handler(say_hello),
        "Fail": grpc.unary_unary_rpc_method_handler(fail),
        "Stream": grpc.unary_stream_rpc_method_handler(stream),
        "StreamFail": grpc.unary_stream_rpc_method_handler(stream_fail),
    }
    s = grpc.server(futures.ThreadPoolExecutor(4))
    s.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("demo.v1.Greeter", handlers)])
    s.add_insecure_port(f"127.0.0.1:{port}")
    s.start()
    s.wait_for_termination()


def client(port, call):
    ch = grpc.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.use_local_subchannel_pool", 1)])
    try:
        if call == "unary":
            print(ch.unary_unary("/demo.v1.Greeter/SayHello")(b"qmon"))
        elif call == "fail":
            ch.unary_unary("/demo.v1.Greeter/Fail")(b"42")
        elif call == "stream":
            print(list(ch.unary_stream("/demo.v1.Greeter/Stream")(b"go")))
        elif call == "stream_fail":
            print(list(ch.unary_stream("/demo.v1.Greeter/StreamFail")(b"go")))
    except grpc.RpcError as e:
        print("rpc error", e.code(), e.details())
    time.sleep(0.2)
    ch.close()


if __name__ == "__main__":
    if sys.argv[1] == "server":
        server(int(sys.argv[2]))
    else:
        client(int(sys.argv[2]), sys.argv[3])
