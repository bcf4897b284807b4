#!/bin/bash
# The daemon's CPU per request, thread by thread: utime+stime of each thread
# of `qmon record` (from /proc/PID/task/*/stat) around a flat-out keep-alive
# client run, divided by the requests made, with the thread's context
# switches per request. QMON_BASELINE adds a second build, interleaved with
# this one, for before/after pairs.
#
#   bench/threads.sh                                  # REPS=3 SECS=8 PATH_=/16k
#   QMON_BASELINE=/tmp/qmon-old REPS=5 bench/threads.sh
. "$(dirname "$0")/lib.sh"
need nginx openssl curl
REPS=${REPS:-3}
SECS=${SECS:-8}
URL_PATH=${PATH_:-/16k}
conds=record
[ -n "${QMON_BASELINE:-}" ] && conds="baseline record"
start_nginx
machine

# "thread cpu_ticks switches" for every thread of the tracer, summed by name.
snap() {
	for t in /proc/"$TRACER_PID"/task/*; do
		echo "$(cat "$t/comm") $(awk '{ print $14 + $15 }' "$t/stat")" \
			"$(awk '/^(non)?voluntary_ctxt_switches/ { s += $2 } END { print s }' "$t/status")"
	done | awk '{ c[$1] += $2; s[$1] += $3 } END { for (k in c) print k, c[k], s[k] }' | sort
}

for rep in $(seq "$REPS"); do
	for cond in $conds; do
		start_tracer "$cond"
		snap >"$WORK/before"
		out=$($CLIENT --tls --port "$TLS_PORT" --path "$URL_PATH" --seconds "$SECS")
		sleep 0.5 # the last batch
		snap >"$WORK/after"
		stop_tracer
		n=$(jget "$out" requests)
		tck=$(getconf CLK_TCK)
		echo "round $rep $cond ($n requests):"
		# The thread named after the binary is the pipeline (the main thread).
		join "$WORK/before" "$WORK/after" | awk -v n="$n" -v t="$tck" '{
			name = ($1 ~ /^qmon-/) ? $1 : "pipeline"
			us = ($4 - $2) * 1e6 / t / n; tot += us
			printf "  %-14s %6.1f µs/request %5.2f switches/request\n", name, us, ($5 - $3) / n
		} END { printf "  %-14s %6.1f µs/request\n", "total", tot }'
	done
done
