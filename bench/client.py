#!/usr/bin/python3
"""Keep-alive HTTP(S) client loop for the qmon benchmarks.

Uses the system Python's http.client over the system OpenSSL (libssl.so.3),
so qmon's uprobes see every request. Prints one JSON line:
{"requests", "seconds", "rps", "p50_us", "p99_us", "errors"}.

    client.py --port 18443 --tls --path /small --seconds 5 [--rate 1000]
              [--procs N] [--per-conn N] [--timestamps FILE]

--rate paces each process's loop to RATE/procs requests per second (sleep to
the next deadline); without it the loop runs flat out. --per-conn closes and
reopens the connection after that many requests (0: keep it for the run).
--timestamps writes each request's completion time (time.monotonic_ns(),
CLOCK_MONOTONIC, one per line) for bench/toggle.sh.
"""
import argparse
import http.client
import json
import multiprocessing as mp
import ssl
import time


def worker(a, rate, q):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE

    def connect():
        if a.tls:
            return http.client.HTTPSConnection("127.0.0.1", a.port, context=ctx)
        return http.client.HTTPConnection("127.0.0.1", a.port)

    conn = connect()
    lat = []
    done_at = []
    errors = 0
    done = 0
    start = time.perf_counter()
    end = start + a.seconds
    interval = 1.0 / rate if rate else 0.0
    nxt = start
    while True:
        now = time.perf_counter()
        if now >= end or (a.count and done >= a.count):
            break
        if interval:
            if now < nxt:
                time.sleep(nxt - now)
            nxt += interval
        t0 = time.perf_counter()
        try:
            conn.request("GET", a.path)
            r = conn.getresponse()
            r.read()
            if r.status != 200:
                errors += 1
        except Exception:  # noqa: BLE001 - count and reconnect
            errors += 1
            conn.close()
            conn = connect()
            continue
        lat.append(time.perf_counter() - t0)
        if a.timestamps:
            done_at.append(time.monotonic_ns())
        done += 1
        if a.per_conn and done % a.per_conn == 0:
            conn.close()
            conn = connect()
    conn.close()
    q.put((lat, errors, time.perf_counter() - start, done_at))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--tls", action="store_true")
    p.add_argument("--path", default="/small")
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--count", type=int, default=0, help="stop after N requests per process")
    p.add_argument("--rate", type=float, default=0.0, help="total requests/s (0: flat out)")
    p.add_argument("--procs", type=int, default=1)
    p.add_argument("--per-conn", type=int, default=0)
    p.add_argument("--timestamps", help="write completion times (monotonic ns) here")
    a = p.parse_args()
    q = mp.Queue()
    rate = a.rate / a.procs if a.rate else 0.0
    ps = [mp.Process(target=worker, args=(a, rate, q)) for _ in range(a.procs)]
    for x in ps:
        x.start()
    res = [q.get() for _ in ps]
    for x in ps:
        x.join()
    if a.timestamps:
        with open(a.timestamps, "w") as f:
            f.writelines(f"{t}\n" for t in sorted(t for r in res for t in r[3]))
    lat = sorted(v for r in res for v in r[0])
    secs = max(r[2] for r in res)
    n = len(lat)

    def pct(f):
        return round(lat[min(n - 1, int(f * n))] * 1e6, 1) if n else None

    print(json.dumps({
        "requests": n,
        "seconds": round(secs, 3),
        "rps": round(n / secs, 1) if secs else 0,
        "p50_us": pct(0.50),
        "p99_us": pct(0.99),
        "errors": sum(r[1] for r in res),
    }))


if __name__ == "__main__":
    main()
