# Shared helpers for the bench/*.sh scripts. Sourced, not run.
# Needs root, Debian 12 packages nginx-light, bpftrace, python3, openssl.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(dirname "$BENCH_DIR")
: "${CARGO_TARGET_DIR:=$REPO_DIR/target}"
QMON=${QMON:-$CARGO_TARGET_DIR/release/qmon}
PY=/usr/bin/python3            # Debian's python: its _ssl links the system libssl.so.3
CLIENT="$PY $BENCH_DIR/client.py"
WORK=$(mktemp -d /dev/shm/qmon-bench.XXXXXX)   # tmpfs: databases, nginx state
TLS_PORT=${TLS_PORT:-18443}
HTTP_PORT=${HTTP_PORT:-18080}
TRACER_PID=
# PIN=1: the workload (nginx, client) on CPU 0, the tracer on CPU 1, so the
# tracer's userspace CPU is not taken from the traced loop.
if [ "${PIN:-0}" = 1 ]; then
	ON_APP="taskset -c 0"
	ON_TRACER="taskset -c 1"
else
	ON_APP=
	ON_TRACER=
fi
CLIENT="$ON_APP $CLIENT"

need() {
	for c in "$@"; do
		command -v "$c" >/dev/null || { echo "missing: $c (apt-get install nginx-light bpftrace python3 openssl)" >&2; exit 1; }
	done
	[ -x "$QMON" ] || { echo "no $QMON: cargo build --release -p qmon (CARGO_TARGET_DIR=$CARGO_TARGET_DIR)" >&2; exit 1; }
	[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
}

cleanup() {
	stop_tracer
	[ -f "$WORK/nginx.pid" ] && kill "$(cat "$WORK/nginx.pid")" 2>/dev/null || true
	sleep 0.2
	rm -rf "$WORK"
}
trap cleanup EXIT

# nginx on 127.0.0.1: TLS on $TLS_PORT, plain HTTP on $HTTP_PORT; /small is
# a `return 200` of 2 bytes, /1k and /16k are static files. One worker,
# keep-alive without a request limit, no access log.
start_nginx() {
	openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost \
		-keyout "$WORK/key.pem" -out "$WORK/cert.pem" 2>/dev/null
	mkdir -p "$WORK/www" "$WORK/logs"
	head -c 1024 /dev/zero | tr '\0' a >"$WORK/www/1k"
	head -c 16384 /dev/zero | tr '\0' b >"$WORK/www/16k"
	cat >"$WORK/nginx.conf" <<CONF
worker_processes 1;
pid $WORK/nginx.pid;
error_log $WORK/logs/error.log;
user root;
events { worker_connections 1024; }
http {
	access_log off;
	keepalive_requests 100000000;
	keepalive_timeout 300s;
	client_body_temp_path $WORK/tmp;
	server {
		listen 127.0.0.1:$TLS_PORT ssl;
		listen 127.0.0.1:$HTTP_PORT;
		ssl_certificate $WORK/cert.pem;
		ssl_certificate_key $WORK/key.pem;
		root $WORK/www;
		location = /small { return 200 "ok"; }
		location / { default_type application/octet-stream; }
	}
}
CONF
	$ON_APP nginx -p "$WORK" -c "$WORK/nginx.conf"
	for _ in $(seq 50); do
		curl -sk -o /dev/null "https://127.0.0.1:$TLS_PORT/small" && return 0
		sleep 0.1
	done
	echo "nginx did not start" >&2
	cat "$WORK/logs/error.log" >&2
	exit 1
}

# start_tracer none|record|baseline|noop|bpftrace [extra qmon args...]
start_tracer() {
	local kind=$1
	shift
	TRACER_PID=
	rm -f "$WORK/tracer.err" "$WORK/tracer.out"
	case $kind in
	none) return 0 ;;
	record)
		rm -f "$WORK"/qmon.db*
		$ON_TRACER "$QMON" record --db "$WORK/qmon.db" --metrics-addr none "$@" 2>"$WORK/tracer.err" &
		;;
	baseline)
		# QMON_BASELINE: another qmon build (e.g. the previous commit's), to
		# measure a change before and after in the same run.
		rm -f "$WORK"/qmon.db*
		$ON_TRACER "$QMON_BASELINE" record --db "$WORK/qmon.db" --metrics-addr none "$@" 2>"$WORK/tracer.err" &
		;;
	noop)
		rm -f "$WORK"/qmon.db*
		$ON_TRACER "$QMON" record --bench-noop --db "$WORK/qmon.db" --metrics-addr none "$@" 2>"$WORK/tracer.err" &
		;;
	bpftrace)
		# bpftrace prints "Attaching N probes..." on stdout, with the capture.
		BPFTRACE_STRLEN=200 $ON_TRACER bpftrace "$BENCH_DIR/peer-bpftrace.bt" >"$WORK/tracer.out" 2>"$WORK/tracer.err" &
		;;
	*) echo "unknown tracer $kind" >&2; exit 1 ;;
	esac
	TRACER_PID=$!
	for _ in $(seq 300); do
		if grep -qs "qmon: ready" "$WORK/tracer.err" || grep -qs "Attaching" "$WORK/tracer.out"; then
			sleep 0.5
			return 0
		fi
		kill -0 "$TRACER_PID" 2>/dev/null || { cat "$WORK/tracer.err" >&2; exit 1; }
		sleep 0.1
	done
	echo "$kind did not become ready" >&2
	cat "$WORK/tracer.err" >&2
	exit 1
}

stop_tracer() {
	if [ -n "${TRACER_PID:-}" ] && kill -0 "$TRACER_PID" 2>/dev/null; then
		kill -INT "$TRACER_PID"
		wait "$TRACER_PID" 2>/dev/null || true
	fi
	rm -f "$WORK/tracer.out"
	TRACER_PID=
}

# CPU seconds (utime+stime) of a pid, from /proc/PID/stat.
cpu_s() {
	awk -v hz="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); print ($12 + $13) / hz }' "/proc/$1/stat"
}

# Peak RSS (VmHWM) of a pid, in MiB.
hwm_mib() {
	awk '/VmHWM/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"
}

median() { sort -g | awk '{ a[NR] = $1 } END { if (NR == 0) print "nan"; else if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

# jget JSON KEY
jget() { $PY -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }

machine() {
	echo "# $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores, kernel $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)"
}

# After `qmon record` stopped: "<calls to the bench ports> <lost_events>
# <queue_dropped> <parse_errors>" from its database.
db_counts() {
	local c s
	c=$("$QMON" query --db "$WORK/qmon.db" --format csv \
		"SELECT count(*) FROM calls WHERE port IN ($TLS_PORT, $HTTP_PORT)" | tail -1 | tr -d '\r')
	s=$("$QMON" query --db "$WORK/qmon.db" --format csv \
		"SELECT lost_events, queue_dropped, parse_errors FROM recorder_status" | tail -1 | tr ',\r' ' ')
	echo "$c ${s:-nan nan nan}"
}

# run_recorded KIND RATE PROCS SECS [qmon args...]: one client run under
# `qmon record`; prints "sent rps cpu_s hwm_mib calls lost queue_dropped parse_errors".
run_recorded() {
	local rate=$1 procs=$2 secs=$3
	shift 3
	start_tracer record "$@"
	local c0 out c1 hwm
	c0=$(cpu_s "$TRACER_PID")
	out=$($CLIENT --tls --port "$TLS_PORT" --path /1k --seconds "$secs" --rate "$rate" --procs "$procs")
	sleep 1 # let the recorder drain and commit
	c1=$(cpu_s "$TRACER_PID")
	hwm=$(hwm_mib "$TRACER_PID")
	stop_tracer
	echo "$(jget "$out" requests) $(jget "$out" rps) $(awk -v a="$c0" -v b="$c1" 'BEGIN { print b - a }') $hwm $(db_counts)"
}
