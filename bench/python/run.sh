#!/usr/bin/env bash
# fencelock's Python server vs redis-server under redis-benchmark (issue 4, section 6).
# Not a test: prints a CSV table and writes bench/results/python-server.csv.
#
# fencelock: ACQUIRE lock:<random> 1   (a 1 ms lease on a random name; it expires at once, so
#            the server also does the expiry work that a RELEASE would cause)
# redis:     SET lock:<random> v NX PX 1 (the Redis lock recipe)
# plus PING on both, the cost of the I/O loop alone.
# redis-benchmark cannot send RELEASE with the token an ACQUIRE returned, and it exits on the
# first error reply, so RELEASE (and compare-and-delete) are not driven directly; names come from
# a 2e9 keyspace so that a LOCKED reply is very unlikely.
#
# Each case runs with 1 client, 50 clients, and 50 clients pipelining 16 (-P 16). The server is
# pinned to CPU 0 and redis-benchmark to CPU 1; the server's CPU time per request is
# utime+stime from /proc/PID/stat over the run, since at 50 clients redis-benchmark itself may
# be the limit.
#
#   VENV=path  venv with fencelock installed (default: <repo>/.venv-bench, created with a
#              release build of the package and uvloop)
#   LOOP=auto|asyncio|uvloop  fencelock's event loop (default auto: uvloop when installed)
#   N=requests per run (default 200000; the 1-client runs use N/4)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
venv="${VENV:-$repo/.venv-bench}"
n="${N:-200000}"
loop="${LOOP:-auto}"
server_cpu="${SERVER_CPU:-0}"
bench_cpu="${BENCH_CPU:-1}"
out_dir="$repo/bench/results"
mkdir -p "$out_dir"
csv="$out_dir/python-server.csv"
work="$(mktemp -d)"
server_pid=""
cleanup() {
    if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then kill -TERM "$server_pid"; wait "$server_pid" || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

command -v redis-benchmark >/dev/null || { echo "needs redis-benchmark and redis-server: apt-get install redis-tools redis-server" >&2; exit 1; }
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet "$repo/python[fast]"
fi

free_port() { "$venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)

# run_case LABEL PORT PID REQUESTS redis-benchmark-args...: prints "label,rps,cpu_us_per_request"
run_case() {
    local label="$1" port="$2" pid="$3" requests="$4"; shift 4
    local before after rps
    before=$(cpu_ticks "$pid")
    rps=$(taskset -c "$bench_cpu" redis-benchmark -h 127.0.0.1 -p "$port" --csv -n "$requests" "$@" 2>"$work/bench.err" \
        | tail -n 1 | awk -F'","' '{gsub(/"/,"",$2); print $2}') || true
    after=$(cpu_ticks "$pid")
    if ! [[ "$rps" =~ ^[0-9.]+$ ]]; then
        echo "$label,failed,$(tr '\n' ' ' < "$work/bench.err" | tail -c 200)"
        return
    fi
    awk -v l="$label" -v r="$rps" -v t="$((after - before))" -v hz="$hz" -v n="$requests" \
        'BEGIN { printf "%s,%.0f,%.2f\n", l, r, (t / hz) * 1e6 / n }'
}

cases() {  # cases NAME PORT PID LOCK-COMMAND...
    local name="$1" port="$2" pid="$3"; shift 3
    run_case "$name lock c=1"        "$port" "$pid" $((n / 4)) -c 1  -r 2000000000 "$@"
    run_case "$name lock c=50"       "$port" "$pid" "$n"       -c 50 -r 2000000000 "$@"
    run_case "$name lock c=50 P=16"  "$port" "$pid" $((n * 4)) -c 50 -P 16 -r 2000000000 "$@"
    run_case "$name ping c=50"       "$port" "$pid" "$n"       -c 50 PING
    run_case "$name ping c=50 P=16"  "$port" "$pid" $((n * 4)) -c 50 -P 16 PING
}

echo "case,requests_per_s,server_cpu_us_per_request" | tee "$csv"

# fencelock: the Python host around a release build of the native core, data dir on disk
port=$(free_port)
taskset -c "$server_cpu" "$venv/bin/python" -m fencelock serve --port "$port" --data-dir "$work/data" \
    --loop "$loop" --log-level info --ready-file "$work/ready" >"$work/fencelock.log" 2>&1 &
server_pid=$!
for _ in $(seq 100); do [ -s "$work/ready" ] && break; sleep 0.1; done
grep -o "serving on .*" "$work/fencelock.log" >&2 || true
cases "fencelock($loop)" "$port" "$server_pid" ACQUIRE lock:__rand_int__ 1 | tee -a "$csv"
kill -TERM "$server_pid"; wait "$server_pid" || true

# redis-server: same pinning, no persistence
port=$(free_port)
taskset -c "$server_cpu" redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
    --daemonize no --loglevel warning >"$work/redis.log" 2>&1 &
server_pid=$!
for _ in $(seq 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
cases redis "$port" "$server_pid" SET lock:__rand_int__ v NX PX 1 | tee -a "$csv"
kill -TERM "$server_pid"; wait "$server_pid" || true
server_pid=""

echo "written: $csv" >&2
