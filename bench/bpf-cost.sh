#!/bin/bash
# Where qmon's overhead goes: per-program BPF run time (the kernel's own
# bpf_stats) and the daemon's CPU, per request of the keep-alive client
# loop, for the floor (--bench-noop) and qmon record side by side.
#
#   bench/bpf-cost.sh                         # https:/small http:/small
#   WORKLOADS="https:/16k" SECONDS_PER_RUN=8 bench/bpf-cost.sh
#
# Turns kernel.bpf_stats_enabled on for the run and restores it after.
. "$(dirname "$0")/lib.sh"
need nginx bpftool openssl curl
SECS=${SECONDS_PER_RUN:-5}
WORKLOADS=${WORKLOADS:-https:/small http:/small}
old_stats=$(sysctl -n kernel.bpf_stats_enabled)
trap 'sysctl -qw kernel.bpf_stats_enabled="$old_stats"; cleanup' EXIT
start_nginx
machine

# prog_stats: "name run_cnt run_time_ns" for qmon's programs (by name:
# Debian's bpftool does not list owning pids; run nothing else BPF-heavy).
prog_stats() {
	bpftool prog show -j | $PY -c '
import json, sys
for p in json.load(sys.stdin):
    if p.get("name", "").startswith(("tp_", "kp_", "ssl_", "proc_", "lib_")):
        print(p["name"], p.get("run_cnt", 0), p.get("run_time_ns", 0))' | sort | awk '
	{ c[$1] += $2; t[$1] += $3 } END { for (n in c) print n, c[n], t[n] }'
}

for wl in $WORKLOADS; do
	scheme=${wl%%:*}
	path=${wl#*:}
	args="--port $HTTP_PORT"
	[ "$scheme" = https ] && args="--tls --port $TLS_PORT"
	for cond in noop record; do
		start_tracer "$cond"
		sysctl -qw kernel.bpf_stats_enabled=1
		before=$(prog_stats)
		cpu0=$(cpu_s "$TRACER_PID")
		out=$($CLIENT $args --path "$path" --seconds "$SECS")
		cpu1=$(cpu_s "$TRACER_PID")
		after=$(prog_stats)
		sysctl -qw kernel.bpf_stats_enabled=0
		stop_tracer
		reqs=$($PY -c 'import json,sys; print(json.loads(sys.argv[1])["requests"])' "$out")
		echo
		echo "## $scheme$path, $cond: $reqs requests, $(jget "$out" rps) req/s"
		echo "daemon CPU per request: $(awk -v a="$cpu0" -v b="$cpu1" -v n="$reqs" 'BEGIN { printf "%.1f µs", (b - a) * 1e6 / n }')"
		echo
		echo "| program | runs per request | ns per run | ns per request |"
		echo "|---|---|---|---|"
		join <(sort <<<"$before") <(sort <<<"$after") | awk -v n="$reqs" '
			{ runs = $4 - $2; ns = $5 - $3; if (runs <= 0) next
			  tot += ns / n
			  printf "| %s | %.2f | %.0f | %.0f |\n", $1, runs / n, ns / runs, ns / n }
			END { printf "| **all** | | | **%.0f** |\n", tot }'
	done
done
