#!/bin/bash
# Userspace pipeline throughput with no kernel involved: `qmon replay`
# decodes bench/data/https-1k.jsonl (a `qmon trace` recording of HTTPS GETs
# with 1 KiB responses; bench/record-events.sh makes it) and pushes it
# ROUNDS times, on fresh connection ids, through the same Pipeline `qmon
# record` runs: reassembly, HTTP parsing, calls, redaction and the SQLite
# store (defaults, database on tmpfs). Pinned to one core (taskset -c CPU):
# the pipeline thread and the store's writer share it. QMON_BASELINE adds a
# second build, interleaved with this one round by round, for before/after
# figures from the same run.
#
#   bench/pipeline.sh                                  # REPS=5 ROUNDS=100 CPU=1
#   QMON_BASELINE=/tmp/qmon-old REPS=9 bench/pipeline.sh
. "$(dirname "$0")/lib.sh"
REPS=${REPS:-5}
ROUNDS=${ROUNDS:-100}
CPU=${CPU:-1}
EVENTS=${EVENTS:-$BENCH_DIR/data/https-1k.jsonl}
[ -x "$QMON" ] || { echo "no $QMON: cargo build --release -p qmon" >&2; exit 1; }
builds="this=$QMON"
[ -n "${QMON_BASELINE:-}" ] && builds="baseline=$QMON_BASELINE $builds"
machine
for rep in $(seq "$REPS"); do
	for b in $builds; do
		name=${b%%=*}
		taskset -c "$CPU" "${b#*=}" replay --events "$EVENTS" --db "$WORK/replay.db" --rounds "$ROUNDS" |
			sed "s/^/$name: /" | tee -a "$WORK/out.txt" >&2
	done
done
echo
echo "| build | reassembly + HTTP parsing, calls/s | end to end (+ SQLite store), calls/s |"
echo "|---|---|---|"
for b in $builds; do
	name=${b%%=*}
	parse=$(awk -v n="$name:" '$1 == n && $2 == "reassembly+parsing" { print $(NF-1) }' "$WORK/out.txt" | median)
	e2e=$(awk -v n="$name:" '$1 == n && $2 == "end" { for (i = 1; i <= NF; i++) if ($i == "calls/s") print $(i-1) }' "$WORK/out.txt" | median)
	echo "| $name | $parse | $e2e |"
done
echo "(medians of $REPS rounds, each $ROUNDS passes)"
machine
