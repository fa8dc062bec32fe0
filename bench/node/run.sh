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

# measure PORT PID REQUESTS redis-benchmark-args...: prints "rps cpu_us_per_request" (or "failed")
measure() {
    local port="$1" pid="$2" requests="$3"; shift 3
    run_case x "$port" "$pid" "$requests" "$@" | awk -F, '{ if ($2 == "failed") print "failed"; else print $2, $3 }'
}

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "nan"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# compare LABEL REQUESTS ARGS-FOR-FENCELOCK -- ARGS-FOR-REDIS: RUNS interleaved runs of each
# server, medians and ratios. Interleaving spreads any drift of this shared machine over both.
compare() {
    local label="$1" requests="$2"; shift 2
    local fl_args=() rd_args=()
    while [ "$1" != "--" ]; do fl_args+=("$1"); shift; done
    shift
    rd_args=("$@")
    : > "$work/fl.txt"; : > "$work/rd.txt"
    for _ in $(seq "$runs"); do
        measure "$fl_port" "$fl_pid" "$requests" "${fl_args[@]}" >> "$work/fl.txt"
        measure "$rd_port" "$rd_pid" "$requests" "${rd_args[@]}" >> "$work/rd.txt"
    done
    if grep -q failed "$work/fl.txt" "$work/rd.txt"; then
        echo "$label,failed,,,,,"
        return
    fi
    local fl_rps rd_rps fl_cpu rd_cpu
    fl_rps=$(awk '{print $1}' "$work/fl.txt" | median); rd_rps=$(awk '{print $1}' "$work/rd.txt" | median)
    fl_cpu=$(awk '{print $2}' "$work/fl.txt" | median); rd_cpu=$(awk '{print $2}' "$work/rd.txt" | median)
    awk -v l="$label" -v a="$fl_rps" -v b="$rd_rps" -v c="$fl_cpu" -v d="$rd_cpu" \
        'BEGIN { printf "%s,%.0f,%.0f,%.2f,%.2f,%.2f,%.2f\n", l, a, b, a / b, c, d, c / d }'
}

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
