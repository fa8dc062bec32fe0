#!/usr/bin/env bash
# fencelock's Node server vs redis-server under redis-benchmark (issue 8, section 6), pinned as
# bench/python/run.sh pins them, then the in-process engine from JavaScript (engine.js).
# Not a test: prints CSV tables and writes bench/results/node-server.csv and node-engine.csv.
#
# fencelock: ACQUIRE lock:<random>:<random> 1   (a 1 ms lease on a random name; it expires at once, so
#            the server also does the expiry work that a RELEASE would cause)
# redis:     SET lock:<random>:<random> v NX PX 1 (the Redis lock recipe)
# plus PING on both, the cost of the I/O loop alone. See bench/python/run.sh for why RELEASE is
# not driven and why names carry two random numbers.
#
# Each case runs with 1 client, 50 clients, and 50 clients pipelining 16 (-P 16). The server is
# pinned to CPU 0 and redis-benchmark to CPU 1; the server's CPU time per request is
# utime+stime from /proc/PID/stat over the run.
#
#   N=requests per run (default 200000; the 1-client runs use N/4, the -P 16 runs 4N)
#   RUNS=interleaved runs per case and server (default 5); the table shows medians and ratios
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
n="${N:-200000}"
server_cpu="${SERVER_CPU:-0}"
bench_cpu="${BENCH_CPU:-1}"
out_dir="$repo/bench/results"
mkdir -p "$out_dir"
csv="$out_dir/node-server.csv"
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

command -v redis-benchmark >/dev/null && command -v redis-server >/dev/null || { echo "needs redis-benchmark and redis-server: apt-get install redis-tools redis-server" >&2; exit 1; }
if [ ! -f "$repo/node/fencelock.linux-x64-gnu.node" ]; then
    (cd "$repo/node" && npm ci --no-audit --no-fund --ignore-scripts && npm run build)
fi

free_port() { node -e 'const s=require("net").createServer(); s.listen(0,"127.0.0.1",()=>{console.log(s.address().port); s.close()})'; }

. "$here/../lib/compare.sh"

runs="${RUNS:-5}"
echo "case (median of $runs interleaved runs),fencelock_rps,redis_rps,throughput_ratio,fencelock_cpu_us_per_req,redis_cpu_us_per_req,cpu_ratio" | tee "$csv"

# Both servers on the same core, started once; redis-benchmark on the other core.
fl_port=$(free_port)
taskset -c "$server_cpu" node "$repo/node/bin/fencelock.js" serve --port "$fl_port" --data-dir "$work/data" \
    --log-level info --ready-file "$work/ready" >"$work/fencelock.log" 2>&1 &
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

echo "==> the in-process engine from JavaScript (pinned to CPU $server_cpu)" >&2
taskset -c "$server_cpu" node "$here/engine.js" | tee "$out_dir/node-engine.csv"
echo "written: $out_dir/node-engine.csv" >&2
