#!/bin/bash
# Userspace pipeline throughput with no kernel involved: `qmon replay`
# decodes bench/data/https-1k.jsonl (a `qmon trace` recording of HTTPS GETs
# with 1 KiB responses; bench/record-events.sh makes it) and pushes it
# ROUNDS times, on fresh connection ids, through reassembly, HTTP parsing
# and the SQLite store (defaults, database on tmpfs). Pinned to one core
# (taskset -c CPU): the pipeline thread and the store's writer share it.
#
#   bench/pipeline.sh            # REPS=5 ROUNDS=100 CPU=1
. "$(dirname "$0")/lib.sh"
REPS=${REPS:-5}
ROUNDS=${ROUNDS:-100}
CPU=${CPU:-1}
EVENTS=${EVENTS:-$BENCH_DIR/data/https-1k.jsonl}
[ -x "$QMON" ] || { echo "no $QMON: cargo build --release -p qmon" >&2; exit 1; }
machine
for rep in $(seq "$REPS"); do
	taskset -c "$CPU" "$QMON" replay --events "$EVENTS" --db "$WORK/replay.db" --rounds "$ROUNDS" | tee -a "$WORK/out.txt" >&2
done
parse=$(awk '/^reassembly/ { print $(NF-1) }' "$WORK/out.txt" | median)
e2e=$(awk '/^end to end/ { for (i = 1; i <= NF; i++) if ($i == "calls/s") print $(i-1) }' "$WORK/out.txt" | median)
echo
echo "| stage | calls/s on one core (median of $REPS) |"
echo "|---|---|"
echo "| reassembly + HTTP parsing | $parse |"
echo "| end to end: + SQLite store | $e2e |"
machine
