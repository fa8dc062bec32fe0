#!/usr/bin/env bash
# The Node `net` floor (floor.js) beside the fencelock Node server and redis-server, under
# redis-benchmark at 50 clients: server CPU per request (utime+stime) and throughput, RUNS
# interleaved rounds. Servers on CPU 0, redis-benchmark on CPU 1. Not a test.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
runs="${RUNS:-3}"
n="${N:-100000}"
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done' EXIT
free_port() { node -e 'const s=require("net").createServer(); s.listen(0,"127.0.0.1",()=>{console.log(s.address().port); s.close()})'; }
fp=$(free_port); taskset -c 0 node "$here/floor.js" "$fp" >/dev/null & pids+=($!); fpid=$!
np=$(free_port); taskset -c 0 node "$repo/node/bin/fencelock.js" serve --port "$np" --in-memory 2>/dev/null & pids+=($!); npid=$!
rp=$(free_port); taskset -c 0 redis-server --port "$rp" --bind 127.0.0.1 --save '' --appendonly no --loglevel warning >/dev/null & pids+=($!); rpid=$!
sleep 1.5
one() { # PORT PID ARGS...: "rps cpu_us_per_request"
    local port=$1 pid=$2; shift 2
    local b a r
    b=$(awk '{print $14+$15}' "/proc/$pid/stat")
    r=$(taskset -c 1 redis-benchmark -p "$port" -c 50 -n "$n" -r 2000000000 --csv "$@" 2>/dev/null | tail -n 1 | cut -d, -f2 | tr -d '"')
    a=$(awk '{print $14+$15}' "/proc/$pid/stat")
    awk -v r="$r" -v t="$((a - b))" -v hz="$(getconf CLK_TCK)" -v n="$n" 'BEGIN { printf "%.0f req/s %.2f us/req", r, (t / hz) * 1e6 / n }'
}
for round in $(seq "$runs"); do
    echo "round $round: net floor $(one "$fp" "$fpid" ACQUIRE lock:__rand_int__ 1) | fencelock node $(one "$np" "$npid" ACQUIRE lock:__rand_int__:__rand_int__ 1) | redis $(one "$rp" "$rpid" SET lock:__rand_int__:__rand_int__ v NX PX 1)"
done
