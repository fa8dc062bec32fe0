#!/usr/bin/env bash
# fencelock's Python server vs redis-server under redis-benchmark (issue 4, section 6).
# Not a test: prints a table (and writes bench/results/python-server.csv).
#
# fencelock: ACQUIRE lock:<random> 100 (ms TTL) and RELEASE lock:<random> <random token>.
# redis:     SET lock:<random> v NX PX 100 and a compare-and-delete script (the Redis recipe).
# Each with 1 client, 50 clients, and 50 clients pipelining 16 (-P 16). The server is pinned to
# CPU 0 and redis-benchmark to CPU 1; server CPU time per request is utime+stime from
# /proc/PID/stat over the run, since at 50 clients redis-benchmark itself may be the limit.
#
#   VENV=path  venv with fencelock installed (default: <repo>/.venv-bench, created with a
#              release build of the package and uvloop)
#   LOOP=asyncio|uvloop  event loop for fencelock (default: uvloop if installed)
#   N=requests per run (default 200000)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
venv="${VENV:-$repo/.venv-bench}"
n="${N:-200000}"
server_cpu="${SERVER_CPU:-0}"
bench_cpu="${BENCH_CPU:-1}"
out_dir="$repo/bench/results"
mkdir -p "$out_dir"
csv="$out_dir/python-server.csv"

command -v redis-benchmark >/dev/null || { echo "needs redis-benchmark: apt-get install redis-tools redis-server" >&2; exit 1; }
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet "$repo/python[fast]"
fi
if [ "${LOOP:-}" = "asyncio" ]; then
    "$venv/bin/pip" uninstall --quiet --yes uvloop >/dev/null 2>&1 || true
fi

free_port() { "$venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)

# run_case LABEL PORT PID -- redis-benchmark args...: prints "label,rps,cpu_us_per_request"
run_case() {
    local label="$1" port="$2" pid="$3"; shift 3
    local before after rps
    before=$(cpu_ticks "$pid")
    rps=$(taskset -c "$bench_cpu" redis-benchmark -h 127.0.0.1 -p "$port" --csv "$@" 2>/dev/null \
        | tail -n 1 | awk -F'","' '{gsub(/"/,"",$2); print $2}')
    after=$(cpu_ticks "$pid")
    local requests=$n
    awk -v l="$label" -v r="$rps" -v t="$((after - before))" -v hz="$hz" -v n="$requests" \
        'BEGIN { printf "%s,%.0f,%.2f\n", l, r, (t / hz) * 1e6 / n }'
}

cases() {  # cases NAME PORT PID ACQUIRE-COMMAND... --- RELEASE-COMMAND...
    local name="$1" port="$2" pid="$3"; shift 3
    local acquire=() release=() seen=0
    for word in "$@"; do
        if [ "$word" = "---" ]; then seen=1; continue; fi
        if [ $seen = 0 ]; then acquire+=("$word"); else release+=("$word"); fi
    done
    run_case "$name acquire c=1"        "$port" "$pid" -n $((n / 4)) -c 1  -r 1000000 "${acquire[@]}"
    run_case "$name acquire c=50"       "$port" "$pid" -n "$n"       -c 50 -r 1000000 "${acquire[@]}"
    run_case "$name acquire c=50 P=16"  "$port" "$pid" -n "$n"       -c 50 -P 16 -r 1000000 "${acquire[@]}"
    run_case "$name release c=50"       "$port" "$pid" -n "$n"       -c 50 -r 1000000 "${release[@]}"
    run_case "$name release c=50 P=16"  "$port" "$pid" -n "$n"       -c 50 -P 16 -r 1000000 "${release[@]}"
}

echo "case,requests_per_s,server_cpu_us_per_request" | tee "$csv"

# fencelock (Python host, release build of the native core)
port=$(free_port)
data=$(mktemp -d)
taskset -c "$server_cpu" "$venv/bin/python" -m fencelock serve --port "$port" --data-dir "$data" \
    --log-level warning --ready-file "$data/ready" &
fl_pid=$!
for _ in $(seq 100); do [ -s "$data/ready" ] && break; sleep 0.1; done
cases fencelock "$port" "$fl_pid" ACQUIRE lock:__rand_int__ 100 --- RELEASE lock:__rand_int__ __rand_int__ | tee -a "$csv"
kill -TERM "$fl_pid"; wait "$fl_pid" || true
rm -rf "$data"

# redis-server, same machine, same pinning, no persistence
port=$(free_port)
taskset -c "$server_cpu" redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
    --daemonize no --loglevel warning &
redis_pid=$!
for _ in $(seq 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
cad='if redis.call("get", KEYS[1]) == ARGV[1] then return redis.call("del", KEYS[1]) else return 0 end'
cases redis "$port" "$redis_pid" SET lock:__rand_int__ v NX PX 100 --- EVAL "$cad" 1 lock:__rand_int__ v | tee -a "$csv"
kill -TERM "$redis_pid"; wait "$redis_pid" || true

echo "written: $csv"
