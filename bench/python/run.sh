#!/usr/bin/env bash
# fencelock's Python server vs redis-server under redis-benchmark (issue 4, section 6).
# Not a test: prints a CSV table and writes bench/results/python-server.csv.
#
# fencelock: ACQUIRE lock:<random>:<random> 1   (a 1 ms lease on a random name; it expires at once, so
#            the server also does the expiry work that a RELEASE would cause)
# redis:     SET lock:<random>:<random> v NX PX 1 (the Redis lock recipe)
# plus PING on both, the cost of the I/O loop alone.
# redis-benchmark cannot send RELEASE with the token an ACQUIRE returned, and it exits on the
# first error reply, so RELEASE (and compare-and-delete) are not driven directly. Names carry two
# independent random numbers (a 4e18 keyspace): with one (2e9), two of the ~1000 leases alive in
# any millisecond at 1M requests/s collide every few million requests, and the LOCKED reply
# would end the run.
#
# Each case runs with 1 client, 50 clients, and 50 clients pipelining 16 (-P 16). The server is
# pinned to CPU 0 and redis-benchmark to CPU 1; the server's CPU time per request is
# utime+stime from /proc/PID/stat over the run, since at 50 clients redis-benchmark itself may
# be the limit.
#
#   VENV=path  venv with fencelock installed (default: <repo>/.venv-bench, created with a
#              release build of the package and uvloop)
#   LOOP=auto|asyncio|uvloop  fencelock's event loop (default auto: uvloop when installed)
#   N=requests per run (default 200000; the 1-client runs use N/4, the -P 16 runs 4N)
#   RUNS=interleaved runs per case and server (default 5); the table shows medians and ratios
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
rd_pid=""
cleanup() {
    for pid in "$server_pid" "$rd_pid"; do
        if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill -TERM "$pid"; wait "$pid" || true; fi
    done
    rm -rf "$work"
}
trap cleanup EXIT

command -v redis-benchmark >/dev/null || { echo "needs redis-benchmark and redis-server: apt-get install redis-tools redis-server" >&2; exit 1; }
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet "$repo/python[fast]"
fi

free_port() { "$venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
. "$here/../lib/compare.sh"

runs="${RUNS:-5}"
echo "case (median of $runs interleaved runs),fencelock_rps,redis_rps,throughput_ratio,fencelock_cpu_us_per_req,redis_cpu_us_per_req,cpu_ratio" | tee "$csv"

# Both servers on the same core, started once; redis-benchmark on the other core.
fl_port=$(free_port)
taskset -c "$server_cpu" "$venv/bin/python" -m fencelock serve --port "$fl_port" --data-dir "$work/data" \
    --loop "$loop" --log-level info --ready-file "$work/ready" >"$work/fencelock.log" 2>&1 &
fl_pid=$!
server_pid=$fl_pid
for _ in $(seq 100); do [ -s "$work/ready" ] && break; sleep 0.1; done
grep -o "serving on .*" "$work/fencelock.log" >&2 || true
rd_port=$(free_port)
taskset -c "$server_cpu" redis-server --port "$rd_port" --bind 127.0.0.1 --save '' --appendonly no \
    --daemonize no --loglevel warning >"$work/redis.log" 2>&1 &
rd_pid=$!
for _ in $(seq 100); do redis-cli -p "$rd_port" ping >/dev/null 2>&1 && break; sleep 0.1; done

lock_fl=(ACQUIRE lock:__rand_int__:__rand_int__ 1)
lock_rd=(SET lock:__rand_int__:__rand_int__ v NX PX 1)
compare "lock c=1"         $((n / 4)) -c 1  -r 2000000000 "${lock_fl[@]}" -- -c 1  -r 2000000000 "${lock_rd[@]}" | tee -a "$csv"
compare "lock c=50"        "$n"       -c 50 -r 2000000000 "${lock_fl[@]}" -- -c 50 -r 2000000000 "${lock_rd[@]}" | tee -a "$csv"
compare "lock c=50 P=16"   $((n * 4)) -c 50 -P 16 -r 2000000000 "${lock_fl[@]}" -- -c 50 -P 16 -r 2000000000 "${lock_rd[@]}" | tee -a "$csv"
compare "ping c=50"        "$n"       -c 50 PING -- -c 50 PING | tee -a "$csv"
compare "ping c=50 P=16"   $((n * 4)) -c 50 -P 16 PING -- -c 50 -P 16 PING | tee -a "$csv"

echo "written: $csv" >&2
