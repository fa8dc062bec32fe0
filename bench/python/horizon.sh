#!/usr/bin/env bash
# What the lease horizon (issue 14) costs the Python server under the 50-client cycle load of
# bench/python/run.sh ("lock c=50": ACQUIRE lock:<random>:<random> 1 from 50 redis-benchmark
# clients). Not a test: prints a CSV table and writes bench/results/python-horizon.csv.
#
# Two servers, same build, same flags, each with its own data dir, run interleaved:
#   horizon:     keeps a lease horizon (reads this boot's id), the default;
#   no-horizon:  FENCELOCK_BOOT_ID_PATH points nowhere, so no horizon is kept (as before issue 14).
# Horizon writes are counted by the server itself (INFO stats, horizon_writes): each one is a
# durable atomic write, two fsyncs (the file and its directory). The target is at most one write
# per slack period (--horizon-slack-ms, default 5000) and no drop in throughput. Each run starts
# after the last horizon lapsed (the other server ran meanwhile), so it writes one at once: the
# bound per run is 1 + its seconds / slack, which tends to one per slack period on a long load,
# plus one per token ceiling raised (every 2^20 grants: the horizon names the ceiling it was
# written under, so a raise rewrites it once).
#
#   VENV=path  venv with fencelock installed (default: <repo>/.venv-bench, created with a
#              release build of the package and uvloop)
#   N=requests per run (default 1500000: some 15 s, several slack periods, here), RUNS=interleaved
#   runs per server (default 3)
#   SLACK_MS=horizon slack of both servers (default 5000)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
venv="${VENV:-$repo/.venv-bench}"
n="${N:-1500000}"
runs="${RUNS:-3}"
slack="${SLACK_MS:-5000}"
server_cpu="${SERVER_CPU:-0}"
bench_cpu="${BENCH_CPU:-1}"
out_dir="$repo/bench/results"
mkdir -p "$out_dir"
csv="$out_dir/python-horizon.csv"
work="$(mktemp -d)"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do
        if kill -0 "$pid" 2>/dev/null; then kill -TERM "$pid"; wait "$pid" || true; fi
    done
    rm -rf "$work"
}
trap cleanup EXIT

command -v redis-benchmark >/dev/null || { echo "needs redis-benchmark: apt-get install redis-tools" >&2; exit 1; }
[ -r /proc/sys/kernel/random/boot_id ] || { echo "needs Linux's /proc/sys/kernel/random/boot_id" >&2; exit 1; }
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet "$repo/python[fast]"
fi
free_port() { "$venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
. "$here/../lib/compare.sh"

# start NAME [ENV=VALUE...]: starts a server; sets port_NAME and pid_NAME.
start() {
    local name="$1"; shift
    local port; port=$(free_port)
    env "$@" taskset -c "$server_cpu" "$venv/bin/python" -m fencelock serve --port "$port" \
        --data-dir "$work/data-$name" --horizon-slack-ms "$slack" --log-level info \
        --ready-file "$work/ready-$name" >"$work/$name.log" 2>&1 &
    local pid=$!
    pids+=("$pid")
    for _ in $(seq 100); do [ -s "$work/ready-$name" ] && break; sleep 0.1; done
    printf -v "port_$name" '%s' "$port"
    printf -v "pid_$name" '%s' "$pid"
}
writes() { redis-cli -p "$1" INFO stats | tr -d '\r' | awk -F: '$1 == "horizon_writes" { print $2 }'; }
ceiling() { redis-cli -p "$1" INFO tokens | tr -d '\r' | awk -F: '$1 == "token_ceiling" { print $2 }'; }
now_s() { date +%s.%N; }

start horizon
start plain FENCELOCK_BOOT_ID_PATH="$work/no-such-file"
load=(-c 50 -r 2000000000 ACQUIRE lock:__rand_int__:__rand_int__ 1)

: > "$work/horizon.txt"; : > "$work/plain.txt"
total_writes=0
total_seconds=0
# The first block is reserved with the first horizon, which needs no restamp.
ceiling_before=$(ceiling "$port_horizon"); [ "$ceiling_before" -gt 0 ] || ceiling_before=1048576
for _ in $(seq "$runs"); do
    before=$(writes "$port_horizon"); started=$(now_s)
    measure "$port_horizon" "$pid_horizon" "$n" "${load[@]}" >> "$work/horizon.txt"
    ended=$(now_s); after=$(writes "$port_horizon")
    total_writes=$((total_writes + after - before))
    total_seconds=$(awk -v a="$started" -v b="$ended" -v t="$total_seconds" 'BEGIN { print t + b - a }')
    measure "$port_plain" "$pid_plain" "$n" "${load[@]}" >> "$work/plain.txt"
done
plain_writes=$(writes "$port_plain")
raises=$(( ($(ceiling "$port_horizon") - ceiling_before) / 1048576 ))
if grep -q failed "$work/horizon.txt" "$work/plain.txt"; then
    echo "a run failed" >&2
    cat "$work/horizon.txt" "$work/plain.txt" >&2
    exit 1
fi

h_rps=$(awk '{print $1}' "$work/horizon.txt" | median); p_rps=$(awk '{print $1}' "$work/plain.txt" | median)
h_cpu=$(awk '{print $2}' "$work/horizon.txt" | median); p_cpu=$(awk '{print $2}' "$work/plain.txt" | median)
{
    echo "case (median of $runs interleaved runs),horizon_rps,no_horizon_rps,throughput_ratio,horizon_cpu_us_per_req,no_horizon_cpu_us_per_req,horizon_writes,seconds_under_load,writes_per_s,fsyncs_per_s,one_per_slack_per_s,ceiling_raises,bound_writes,no_horizon_writes"
    awk -v a="$h_rps" -v b="$p_rps" -v c="$h_cpu" -v d="$p_cpu" -v w="$total_writes" -v s="$total_seconds" \
        -v slack="$slack" -v pw="$plain_writes" -v runs="$runs" -v raises="$raises" \
        'BEGIN { printf "lock c=50 slack=%dms,%.0f,%.0f,%.2f,%.2f,%.2f,%d,%.1f,%.3f,%.3f,%.3f,%d,%d,%d\n", slack, a, b, a / b, c, d, w, s, w / s, 2 * w / s, 1000 / slack, raises, runs + int(s * 1000 / slack) + raises, pw }'
} | tee "$csv"
echo "written: $csv" >&2
