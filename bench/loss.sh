#!/bin/bash
# Loss under load at default settings: HTTPS keep-alive clients (1 KiB
# responses) at rising rates under `qmon record`; lost_events from
# recorder_status, calls stored vs requests sent, peak RSS. Then flat out
# with small ring buffers (RINGS), to show what happens past the
# zero-loss rate: losses counted, memory bounded.
#
#   bench/loss.sh                # REPS=2 SECS=10 RATES="1000 2000 3000 5000"
. "$(dirname "$0")/lib.sh"
need nginx openssl curl
REPS=${REPS:-2}
SECS=${SECS:-10}
RATES=${RATES:-1000 2000 3000 5000}
RINGS=${RINGS:-65536 16384}
RES=$WORK/loss.tsv
start_nginx
machine
for rep in $(seq "$REPS"); do
	for r in $RATES max; do
		if [ "$r" = max ]; then rate=0 p=4; else rate=$r p=$(((r + 1499) / 1500)); fi
		line=$(run_recorded "$rate" "$p" "$SECS")
		echo "round $rep rate $r: $line" >&2
		echo "default $r $line" >>"$RES"
	done
	for ring in $RINGS; do
		line=$(run_recorded 0 4 "$SECS" --ring-size "$ring")
		echo "round $rep ring $ring: $line" >&2
		echo "ring=$ring max $line" >>"$RES"
	done
done
echo
echo "| ring | target req/s | client req/s | sent | calls stored | lost_events | queue_dropped | peak RSS MiB |"
echo "|---|---|---|---|---|---|---|---|"
for key in $(awk '{ print $1 "/" $2 }' "$RES" | awk '!seen[$0]++'); do
	ring=${key%%/*} r=${key#*/}
	m() { awk -v a="$ring" -v b="$r" -v k="$1" '$1 == a && $2 == b { print $k }' "$RES" | median; }
	awk -v ring="${ring#ring=}" -v r="$r" -v rps="$(m 4)" -v sent="$(m 3)" -v calls="$(m 7)" -v lost="$(m 8)" -v qd="$(m 9)" -v hwm="$(m 6)" 'BEGIN {
		printf "| %s | %s | %.0f | %.0f | %.0f | %s | %s | %.1f |\n", (ring == "default" ? "16 MiB (default)" : ring), (r == "max" ? "flat out" : r), rps, sent, calls, lost, qd, hwm
	}'
done
echo
echo "(REPS=$REPS rounds of ${SECS}s; medians. Flat out = 4 client processes.)"
machine
