#!/bin/bash
# Record bench/data/https-1k.jsonl, the event stream bench/pipeline.sh
# replays: `qmon trace` while bench/client.py makes COUNT HTTPS GETs with
# 1 KiB responses, 100 per connection, against the local nginx. Only the
# client's connections are kept (the machine may have other traffic).
#
#   bench/record-events.sh       # COUNT=1500
#   RESP=/16k COUNT=300 OUT=/tmp/https-16k.jsonl bench/record-events.sh
. "$(dirname "$0")/lib.sh"
need nginx openssl curl
COUNT=${COUNT:-1500}
RESP=${RESP:-/1k}   # nginx path: /small, /1k or /16k
OUT=${OUT:-$BENCH_DIR/data/https-1k.jsonl}
start_nginx
"$QMON" trace >"$WORK/raw.jsonl" 2>"$WORK/tracer.err" &
TRACER_PID=$!
until grep -q "qmon: ready" "$WORK/tracer.err"; do sleep 0.1; done
$CLIENT --tls --port "$TLS_PORT" --path "$RESP" --count "$COUNT" --per-conn 100 --seconds 600 >&2
sleep 1
stop_tracer
$PY - "$WORK/raw.jsonl" "$OUT" "$TLS_PORT" <<'PY'
import json, sys
src, dst, port = sys.argv[1], sys.argv[2], sys.argv[3]
evs = [json.loads(l) for l in open(src) if l.strip()]
conns = {(e["pid"], e["conn_id"]) for e in evs
         if e["type"] == "conn" and (e.get("remote") or "").endswith(":" + port)}
pids = {p for p, _ in conns}
keep = [e for e in evs
        if (e["type"] in ("conn", "close", "data") and (e["pid"], e.get("conn_id")) in conns)
        or (e["type"] == "data" and e.get("conn_id") == 0 and e["pid"] in pids)]
with open(dst, "w") as f:
    for e in keep:
        f.write(json.dumps(e, separators=(",", ":")) + "\n")
print(f"{len(keep)} events on {len(conns)} connections -> {dst}", file=sys.stderr)
PY
