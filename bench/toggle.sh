#!/bin/bash
# qmon's overhead over the floor, measured a second apart instead of a run
# apart. bench/overhead.sh starts one process per condition, so seconds of
# host drift separate `noop` from `record`, and on this VM that drift is
# as large as the difference being measured. Here one `qmon record
# --bench-toggle-ms` process flips a BPF global every PHASE_MS, alternating
# between the floor (every program returns at once) and recording, while
# one client loop runs flat out and logs each request's completion time.
# Each recording phase is compared with the floor phases on either side of
# it (linear drift cancels); the first SETTLE_MS of every phase is left
# out, so the daemon's backlog from the phase before (ring buffer poll,
# commit, checkpoint: about 300 ms at most) is not counted in the wrong phase.
#
# The floor itself (noop over no tracing) still needs two processes: each
# round runs `none` and `noop` for SECONDS_PER_RUN each, then the toggle
# for TOGGLE_SECS. The ratio is (floor + delta) / floor, from the median
# floor over rounds and the median delta over all recording phases, with a
# 90% interval bootstrapped over rounds. The last column checks that the
# recording phases really recorded: calls stored against requests made.
#
#   bench/toggle.sh    # REPS=10 SECONDS_PER_RUN=3 TOGGLE_SECS=30 PHASE_MS=1000 SETTLE_MS=400
#   PIN=1 WORKLOADS="https:/small https:/16k" bench/toggle.sh
. "$(dirname "$0")/lib.sh"
need nginx openssl curl
REPS=${REPS:-10}
SECS=${SECONDS_PER_RUN:-3}
TOGGLE_SECS=${TOGGLE_SECS:-30}
PHASE_MS=${PHASE_MS:-1000}
SETTLE_MS=${SETTLE_MS:-400}
WORKLOADS=${WORKLOADS:-https:/small https:/16k}
RES=$WORK/rounds.tsv
start_nginx
machine

for rep in $(seq "$REPS"); do
	for wl in $WORKLOADS; do
		scheme=${wl%%:*}
		path=${wl#*:}
		args="--port $HTTP_PORT"
		[ "$scheme" = https ] && args="--tls --port $TLS_PORT"
		set -- none noop
		[ $((rep % 2)) = 0 ] && set -- noop none
		declare -A rps=()
		for cond in "$@"; do
			start_tracer "$cond"
			out=$($CLIENT $args --path "$path" --seconds "$SECS")
			stop_tracer
			rps[$cond]=$(jget "$out" rps)
			echo "round $rep $scheme$path $cond: $out" >&2
		done
		start_tracer record --bench-toggle-ms "$PHASE_MS" --bench-phase-log "$WORK/phases"
		out=$($CLIENT $args --path "$path" --seconds "$TOGGLE_SECS" --timestamps "$WORK/done")
		stop_tracer
		echo "round $rep $scheme$path toggle: $out" >&2
		stored=$(db_counts | cut -d' ' -f1)
		# One line per round: workload, round, rps none, rps noop, calls
		# stored, then the analysis of the phases as JSON.
		seg=$($PY - "$WORK/phases" "$WORK/done" "$SETTLE_MS" <<'PYEOF'
import json, sys
phases = [(int(t), k) for t, k in (l.split() for l in open(sys.argv[1]) if l.strip())]
done = [int(l) for l in open(sys.argv[2]) if l.strip()]
settle = int(sys.argv[3]) * 1_000_000
import bisect
segs = []  # (kind, µs per request in the settled window)
for (t0, k), (t1, _) in zip(phases, phases[1:]):
    if t0 < done[0] or t1 > done[-1]:
        continue  # not wholly inside the client's run
    w0 = t0 + settle
    n = bisect.bisect_left(done, t1) - bisect.bisect_left(done, w0)
    if n > 0:
        segs.append((k, (t1 - w0) / 1000 / n))
# Requests completed in any recording phase (the last one runs to the end).
ends = [t for t, _ in phases[1:]] + [float("inf")]
record_reqs = sum(bisect.bisect_left(done, t1) - bisect.bisect_left(done, t0)
                  for (t0, k), t1 in zip(phases, ends) if k == "record")
# Each recording phase against the mean of the floor phases around it.
deltas = [s[1] - (a[1] + b[1]) / 2
          for a, s, b in zip(segs, segs[1:], segs[2:])
          if s[0] == "record" and a[0] == b[0] == "noop"]
print(json.dumps({
    "deltas": deltas,
    "noop_us": [s[1] for s in segs if s[0] == "noop"],
    "record_us": [s[1] for s in segs if s[0] == "record"],
    "record_reqs": record_reqs,
}))
PYEOF
)
		echo "round $rep $scheme$path phases: stored $stored, $seg" >&2
		printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$scheme$path" "$rep" "${rps[none]}" "${rps[noop]}" "$stored" "$seg" >>"$RES"
	done
done

echo
echo "| workload | rounds | µs/request: none | noop (process) | noop (toggle phases) | record (toggle phases) | floor µs | qmon over floor µs | added vs floor | 90% interval | calls stored / requests in recording phases |"
echo "|---|---|---|---|---|---|---|---|---|---|---|"
$PY - "$RES" <<'PYEOF'
import json, random, statistics as st, sys
rows = {}
for line in open(sys.argv[1]):
    w, r, none, noop, stored, seg = line.rstrip("\n").split("\t")
    rows.setdefault(w, []).append((1e6 / float(none), 1e6 / float(noop), int(stored or 0), json.loads(seg)))
for w, rs in rows.items():
    rounds = [(none, noop, seg) for none, noop, _, seg in rs if seg["deltas"]]
    def ratio(sample):
        floor = st.median(noop - none for none, noop, _ in sample)
        delta = st.median(d for _, _, seg in sample for d in seg["deltas"])
        return (floor + delta) / floor if floor > 0 else float("nan"), floor, delta
    est, floor, delta = ratio(rounds)
    rng = random.Random(1)
    boot = sorted(ratio([rng.choice(rounds) for _ in rounds])[0] for _ in range(4000))
    lo, hi = boot[len(boot) * 5 // 100], boot[len(boot) * 95 // 100]
    med = lambda xs: st.median(xs) if xs else float("nan")
    stored = sum(s for *_, s, _ in rs)
    reqs = sum(seg["record_reqs"] for *_, seg in rs)
    print(f"| {w} | {len(rounds)} | {med([r[0] for r in rs]):.1f} | {med([r[1] for r in rs]):.1f} "
          f"| {med([u for *_, s in rs for u in s['noop_us']]):.1f} | {med([u for *_, s in rs for u in s['record_us']]):.1f} "
          f"| {floor:.1f} | {delta:.1f} | {est:.2f}× | {lo:.2f}–{hi:.2f} | {stored} / {reqs} |")
PYEOF
machine
