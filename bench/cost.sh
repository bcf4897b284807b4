#!/bin/bash
# qmon record's own cost: CPU seconds (utime+stime from /proc/PID/stat,
# counted from "ready" to one second after the client stops) and peak RSS
# (VmHWM) while an HTTPS keep-alive client (1 KiB responses) runs at about
# 1,000 requests/s, and flat out (PROCS client processes). Interleaved,
# REPS rounds; medians.
#
#   bench/cost.sh                # REPS=3 SECS=20 PROCS=2
. "$(dirname "$0")/lib.sh"
need nginx openssl curl
REPS=${REPS:-3}
SECS=${SECS:-20}
PROCS=${PROCS:-2}
RES=$WORK/cost.tsv
start_nginx
machine
for rep in $(seq "$REPS"); do
	for mode in paced max; do
		if [ "$mode" = paced ]; then r=1000 p=1; else r=0 p=$PROCS; fi
		line=$(run_recorded "$r" "$p" "$SECS")
		echo "round $rep $mode: sent rps cpu_s hwm_mib calls lost qdrop perr = $line" >&2
		echo "$mode $line" >>"$RES"
	done
done
echo
echo "| load | client req/s | calls stored / sent | daemon CPU % of one core | CPU s per 100k calls | peak RSS MiB |"
echo "|---|---|---|---|---|---|"
for mode in paced max; do
	m() { awk -v m="$mode" -v k="$1" '$1 == m { print $k }' "$RES" | median; }
	awk -v m="$mode" -v s="$SECS" -v rps="$(m 3)" -v sent="$(m 2)" -v cpu="$(m 4)" -v hwm="$(m 5)" -v calls="$(m 6)" 'BEGIN {
		printf "| %s | %.0f | %.0f / %.0f | %.1f | %.2f | %.1f |\n", (m == "paced" ? "~1,000/s" : "flat out"), rps, calls, sent, 100 * cpu / (s + 1), 1e5 * cpu / calls, hwm
	}'
done
echo
echo "(REPS=$REPS rounds of ${SECS}s; medians per column; CPU % over the run plus the 1 s drain.)"
machine
