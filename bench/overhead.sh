#!/bin/bash
# Overhead of tracing on a keep-alive HTTP(S) client loop (bench/client.py,
# system OpenSSL) against a local nginx, side by side:
#   none      no tracing
#   noop      qmon record --bench-noop: the same BPF programs at the same
#             attach points, each returning at once (the floor)
#   record    qmon record, default settings, database on tmpfs
#   bpftrace  bench/peer-bpftrace.bt (HTTPS rows only)
#   baseline  qmon record from $QMON_BASELINE, when set: another build, for
#             before/after figures from the same run
# Conditions are interleaved (order rotated every round), REPS rounds of
# SECONDS each; the table shows medians and ratios.
#
#   bench/overhead.sh            # REPS=3 SECONDS_PER_RUN=4 by default
#   PIN=1 WORKLOADS="https:/small http:/16k" bench/overhead.sh
#                                # workload on CPU 0, tracer on CPU 1
#   SKIP=bpftrace REPS=30 SECONDS_PER_RUN=3 bench/overhead.sh
#                                # more, shorter rounds: tighter ratios
. "$(dirname "$0")/lib.sh"
need nginx bpftrace openssl curl
REPS=${REPS:-3}
SECS=${SECONDS_PER_RUN:-4}
RES=$WORK/overhead.tsv
start_nginx
machine

WORKLOADS=${WORKLOADS:-https:/small https:/16k http:/small http:/16k}
for rep in $(seq "$REPS"); do
	for wl in $WORKLOADS; do
		scheme=${wl%%:*}
		path=${wl#*:}
		if [ "$scheme" = https ]; then
			conds="none noop record bpftrace"
			args="--tls --port $TLS_PORT"
		else
			conds="none noop record"
			args="--port $HTTP_PORT"
		fi
		[ -n "${QMON_BASELINE:-}" ] && conds="$conds baseline"
		# SKIP="bpftrace": leave conditions out (none and noop always run).
		for skip in ${SKIP:-}; do conds=$(echo " $conds " | sed "s/ $skip / /; s/^ //; s/ $//"); done
		# Rotate the order each round so no condition always runs first.
		set -- $conds
		for _ in $(seq $(((rep - 1) % $#))); do set -- "${@:2}" "$1"; done
		for cond in "$@"; do
			start_tracer "$cond"
			out=$($CLIENT $args --path "$path" --seconds "$SECS")
			stop_tracer
			printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$scheme$path" "$cond" \
				"$(jget "$out" rps)" "$(jget "$out" p50_us)" "$(jget "$out" p99_us)" "$rep" >>"$RES"
			echo "round $rep $scheme$path $cond: $out" >&2
		done
	done
done

med() { awk -F'\t' -v w="$1" -v c="$2" -v k="$3" '$1 == w && $2 == c { print $k }' "$RES" | median; }
# paired W COND: each round's added time of COND over that round's floor,
# both against that round's `none` (so drift between rounds cancels), as
# "median (min–max)" over the rounds.
paired() {
	awk -F'\t' -v w="$1" -v c="$2" '$1 == w { rps[$6, $2] = $3; rounds[$6] = 1 }
	END {
		for (r in rounds) {
			if (!((r, c) in rps) || !((r, "none") in rps) || !((r, "noop") in rps)) continue
			f = 1 / rps[r, "noop"] - 1 / rps[r, "none"]
			if (f > 0) print (1 / rps[r, c] - 1 / rps[r, "none"]) / f
		}
	}' "$RES" | sort -g | awk '{ a[NR] = $1 } END {
		if (NR == 0) { print ""; exit }
		m = NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2
		printf "%.2f× (%.2f–%.2f)", m, a[1], a[NR]
	}'
}
# ci W COND: a 90% interval for "added vs floor" from the medians,
# bootstrapped over rounds (rounds resampled with replacement, each keeping
# its own none/noop/COND), so a table says how far noise alone moves it.
ci() {
	$PY - "$RES" "$1" "$2" <<'PYEOF'
import random, statistics, sys
res, w, c = sys.argv[1:4]
rounds = {}
for line in open(res):
    f = line.rstrip("\n").split("\t")
    if f[0] == w:
        rounds.setdefault(f[5], {})[f[1]] = float(f[2])
rs = [r for r in rounds.values() if all(k in r for k in ("none", "noop", c))]
if len(rs) < 3:
    sys.exit()
rng = random.Random(1)
out = []
for _ in range(4000):
    s = [rng.choice(rs) for _ in rs]
    m = {k: statistics.median(r[k] for r in s) for k in ("none", "noop", c)}
    floor = 1 / m["noop"] - 1 / m["none"]
    if floor > 0:
        out.append((1 / m[c] - 1 / m["none"]) / floor)
out.sort()
if out:
    print(f"{out[len(out) * 5 // 100]:.2f}–{out[len(out) * 95 // 100]:.2f}")
PYEOF
}
echo
echo "| workload | condition | req/s (median) | p50 µs | p99 µs | req/s vs none | added µs/request | added vs floor | 90% interval | paired vs floor, median (range) |"
echo "|---|---|---|---|---|---|---|---|---|---|"
for wl in $WORKLOADS; do
	w=${wl%%:*}${wl#*:}
	base=$(med "$w" none 3)
	floor=$(awk -v b="$base" -v n="$(med "$w" noop 3)" 'BEGIN { print 1e6 / n - 1e6 / b }')
	for cond in none noop baseline record bpftrace; do
		rps=$(med "$w" "$cond" 3)
		[ "$rps" = nan ] && continue
		pv=
		iv=
		case $cond in none | noop) ;; *) pv=$(paired "$w" "$cond") iv=$(ci "$w" "$cond") ;; esac
		awk -v w="$w" -v c="$cond" -v r="$rps" -v b="$base" -v f="$floor" -v pv="$pv" -v iv="$iv" \
			-v p50="$(med "$w" "$cond" 4)" -v p99="$(med "$w" "$cond" 5)" 'BEGIN {
			add = 1e6 / r - 1e6 / b
			vs = (c == "none" || c == "noop") ? "" : (f > 0 ? sprintf("%.2f×", add / f) : "floor ≤ 0")
			printf "| %s | %s | %.0f | %.0f | %.0f | %.3f | %.1f | %s | %s | %s |\n", w, c, r, p50, p99, r / b, add, vs, iv, pv
		}'
	done
done
echo
echo "(PIN=${PIN:-0}; REPS=$REPS rounds of ${SECS}s per condition; 'added vs floor' = qmon's added time per request / the noop floor's, from the medians; '90% interval' = that ratio's bootstrap interval over rounds; 'paired' = the same ratio within each round, median and range over rounds.)"
machine
