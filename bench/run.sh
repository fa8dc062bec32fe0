#!/usr/bin/env bash
# make bench: real lock cycles against every fencelock server and redis-server, side by side,
# driven by bench/loadgen (core's own client state machine), then bench/RESULTS.md and plots.
#
# Servers (redis-server, the Python server, the Node server and `loadgen echo-server`, the TCP
# floor) listen on 127.0.0.1 only, pinned to CPU $SERVER_CPU; the load generator is pinned to
# CPU $BENCH_CPU. Each case runs every server once per round, RUNS rounds (interleaved, so drift
# of this shared machine spreads over all of them); the report takes medians. Server CPU per op
# is utime+stime from /proc/PID/stat over the measured window; memory per lease is VmRSS after
# filling N leases minus VmRSS before, on freshly started servers.
#
#   QUICK=1       a short pass (fewer cases, 1 round, short runs) that proves the scripts work
#   RUNS=n        rounds per case (default 3)      DURATION=s  measured seconds per run (default 2)
#   LEASES=n      live leases for the memory case (default 1000000)
#   SERVERS="redis python node"   which servers (the echo floor always runs)
#   OUT=dir       where RESULTS.md and the plots go (default bench/; QUICK=1: bench/results/quick/);
#                 raw data always in bench/results/
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
quick="${QUICK:-0}"
server_cpu="${SERVER_CPU:-0}"
bench_cpu="${BENCH_CPU:-1}"
if [ "$quick" = 1 ]; then
    runs="${RUNS:-1}"; duration="${DURATION:-0.5}"; warmup=0.2; leases="${LEASES:-50000}"
    client_counts=(1 50); engine_pairs=20000; engine_runs=1; engine_seconds=0.5
else
    runs="${RUNS:-3}"; duration="${DURATION:-2}"; warmup=0.5; leases="${LEASES:-1000000}"
    client_counts=(1 10 50 200); engine_pairs=200000; engine_runs=3; engine_seconds=2
fi
read -r -a servers <<< "${SERVERS:-redis python node}"
# A quick pass writes beside the raw data, never over the committed RESULTS.md and plots.
if [ "$quick" = 1 ]; then out="${OUT:-$repo/bench/results/quick}"; else out="${OUT:-$here}"; fi
raw_dir="$repo/bench/results"
mkdir -p "$raw_dir" "$out"
raw="$raw_dir/loadgen.jsonl"
meta="$raw_dir/meta.json"
venv="${VENV:-$repo/.venv-bench}"
loadgen="$repo/target/release/loadgen"
export CLK_TCK; CLK_TCK="$(getconf CLK_TCK)"
work="$(mktemp -d)"
started=$(date +%s)

# Every process this script starts is recorded here and stopped by its PID.
pids=()
stop_pid() {
    local pid="$1"
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null || true
}
cleanup() {
    for pid in "${pids[@]}"; do stop_pid "$pid"; done
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { echo "bench: $*" >&2; }

# ---- setup: everything the run needs, installed by the script itself ----
command -v redis-server >/dev/null || { apt-get update -qq && apt-get install -y -qq redis-server >/dev/null; }
command -v taskset >/dev/null || { echo "needs taskset (util-linux)" >&2; exit 1; }
log "building the load generator"
(cd "$repo" && cargo build --release --quiet -p fencelock-loadgen)
if [ ! -f "$repo/node/fencelock.linux-x64-gnu.node" ]; then
    log "building the Node addon"
    (cd "$repo/node" && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error && npm run build) >&2
fi
# The Python server runs from $venv, or from the venv `make python-test` built (the same release
# wheel, with uvloop) when $venv has no fencelock, so `make test` need not build the package twice.
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
py_server="$venv/bin/python"
if ! "$py_server" -c 'import fencelock' 2>/dev/null; then
    if [ -z "${VENV:-}" ] && "$repo/.venv-python-test/bin/python" -c 'import fencelock, uvloop' 2>/dev/null; then
        py_server="$repo/.venv-python-test/bin/python"
    else
        log "installing the Python package (release build, uvloop) into $venv"
        "$venv/bin/pip" install --quiet "$repo/python[fast]"
    fi
fi
"$venv/bin/python" -c 'import matplotlib' 2>/dev/null || "$venv/bin/pip" install --quiet "matplotlib==3.11.2"

# ---- servers ----
declare -A port pid_of
wait_ready() { # FILE
    for _ in $(seq 300); do [ -s "$1" ] && return 0; sleep 0.05; done
    echo "bench: no ready file $1" >&2; return 1
}
start_server() { # NAME: starts it pinned to the server CPU, fills port[NAME] and pid_of[NAME]
    local name="$1" dir="$work/$1.$RANDOM"
    mkdir -p "$dir"
    case "$name" in
        redis)
            local p; p=$("$venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
            taskset -c "$server_cpu" redis-server --port "$p" --bind 127.0.0.1 --save '' --appendonly no \
                --daemonize no --loglevel warning --dir "$dir" >"$dir/log" 2>&1 &
            pid_of[$name]=$!; port[$name]=$p
            for _ in $(seq 100); do redis-cli -p "$p" ping >/dev/null 2>&1 && break; sleep 0.05; done ;;
        python)
            taskset -c "$server_cpu" "$py_server" -m fencelock serve --port 0 --data-dir "$dir/data" \
                --log-level warning --ready-file "$dir/ready" >"$dir/log" 2>&1 &
            pid_of[$name]=$!; wait_ready "$dir/ready"; port[$name]=$(awk '{print $2}' "$dir/ready") ;;
        node)
            taskset -c "$server_cpu" node "$repo/node/bin/fencelock.js" serve --port 0 --data-dir "$dir/data" \
                --log-level warning --ready-file "$dir/ready" >"$dir/log" 2>&1 &
            pid_of[$name]=$!; wait_ready "$dir/ready"; port[$name]=$(awk '{print $2}' "$dir/ready") ;;
        echo)
            taskset -c "$server_cpu" "$loadgen" echo-server --addr 127.0.0.1:0 --ready-file "$dir/ready" >"$dir/log" 2>&1 &
            pid_of[$name]=$!; wait_ready "$dir/ready"; port[$name]=$(awk '{print $2}' "$dir/ready") ;;
    esac
    pids+=("${pid_of[$name]}")
}
stop_server() { stop_pid "${pid_of[$1]}"; }
target_of() { case "$1" in redis) echo redis ;; echo) echo echo ;; *) echo fencelock ;; esac; }

# run_one CASE SERVER loadgen-args...: one measured run, one JSON line appended to $raw
run_one() {
    local case="$1" server="$2"; shift 2
    local line
    if ! line=$(taskset -c "$bench_cpu" "$loadgen" run --target "$(target_of "$server")" \
            --addr "127.0.0.1:${port[$server]}" --server-pid "${pid_of[$server]}" \
            --warmup "$warmup" --duration "$duration" --label "$server" --prefix "$RANDOM:" "$@" 2>"$work/loadgen.err"); then
        echo "bench: $case against $server failed: $(tail -c 300 "$work/loadgen.err")" >&2
        return 1
    fi
    printf '{"case":"%s","server":"%s","data":%s}\n' "$case" "$server" "$line" >> "$raw"
    echo "  $case $server: $(tail -n 1 "$work/loadgen.err")" >&2
}

# compare CASE "SERVERS" loadgen-args...: RUNS rounds, each server once per round, in turn
compare() {
    local case="$1"; shift
    local -a list; read -r -a list <<< "$1"; shift
    log "$case"
    for _ in $(seq "$runs"); do
        for server in "${list[@]}"; do run_one "$case" "$server" "$@"; done
    done
}

: > "$raw"
cat /proc/loadavg > "$work/load.before"

log "starting ${servers[*]} and the echo floor on CPU $server_cpu; load generator on CPU $bench_cpu"
for server in "${servers[@]}" echo; do start_server "$server"; done

# 1. Acquire+release cycles on random names, by client count, without and with pipelining;
#    the echo floor runs the same requests (fencelock-shaped) in every round.
for pipeline in 1 16; do
    for conns in "${client_counts[@]}"; do
        compare "cycle c=$conns P=$pipeline" "${servers[*]} echo" --mix cycle --conns "$conns" --pipeline "$pipeline"
    done
done
# 2. Hot-lock contention: 50 clients on 4 names (fencelock WAITs in the queue, Redis retries every 1 ms).
compare "hot c=50 K=4" "${servers[*]}" --mix hot --conns 50 --hot-names 4 --wait-ms 10000
# 3. Acquire+renew+release.
compare "renew c=50" "${servers[*]}" --mix renew --conns 50

# 4. LEASES live leases on freshly started servers: RSS before and after the fill, then cycles
#    beside them (the held leases live 5 minutes, the longest TTL a fencelock server grants).
for server in "${servers[@]}"; do stop_server "$server"; done
for server in "${servers[@]}"; do
    start_server "$server"
    # Warm the server (connections, first allocations) so RSS-before is not a cold start.
    taskset -c "$bench_cpu" "$loadgen" run --target "$(target_of "$server")" --addr "127.0.0.1:${port[$server]}" \
        --conns 50 --duration 0.3 --warmup 0.1 --prefix warm: >/dev/null 2>&1
    log "filling $leases leases on $server"
    line=$(taskset -c "$bench_cpu" "$loadgen" run --target "$(target_of "$server")" --addr "127.0.0.1:${port[$server]}" \
        --server-pid "${pid_of[$server]}" --mix fill --count "$leases" --conns 8 --pipeline 64 --ttl-ms 300000 \
        --prefix "" --label "$server" 2>"$work/loadgen.err")
    printf '{"case":"fill","server":"%s","leases":%s,"data":%s}\n' "$server" "$leases" "$line" >> "$raw"
    echo "  fill $server: $(tail -n 1 "$work/loadgen.err")" >&2
done
compare "cycle c=50 beside $leases leases" "${servers[*]}" --mix cycle --conns 50
for server in "${servers[@]}" echo; do stop_server "$server"; done

# 5. The in-process engines, pinned to the server CPU.
log "in-process engines"
taskset -c "$server_cpu" "$loadgen" engine --duration "$engine_seconds" > "$raw_dir/engines.jsonl"
PAIRS=$engine_pairs RUNS=$engine_runs taskset -c "$server_cpu" "$py_server" "$here/python/engine.py" >> "$raw_dir/engines.jsonl"
PAIRS=$engine_pairs RUNS=$engine_runs taskset -c "$server_cpu" node "$here/node/engine.js" \
    | tail -n +2 | awk -F, '{ printf "{\"engine\":\"node %s\",\"pairs_per_s\":%s,\"us_per_pair\":%s}\n", $1, $2, $3 }' >> "$raw_dir/engines.jsonl"

# 6. What was measured, on what, then the report and plots.
cat /proc/loadavg > "$work/load.after"
"$venv/bin/python" - "$meta" <<EOF
import json, os, platform, subprocess, sys, datetime
def cmd(*args):
    try:
        return subprocess.run(args, capture_output=True, text=True, check=False).stdout.strip().splitlines()[0]
    except (OSError, IndexError):
        return "unknown"
cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "unknown")
json.dump({
    "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    "quick": "$quick" == "1", "runs": $runs, "duration_s": $duration, "warmup_s": $warmup, "leases": $leases,
    "cores": os.cpu_count(), "cpu": cpu, "kernel": platform.release(),
    "server_cpu": $server_cpu, "bench_cpu": $bench_cpu,
    "load_before": open("$work/load.before").read().strip(), "load_after": open("$work/load.after").read().strip(),
    "redis": cmd("redis-server", "--version"), "python": cmd("$py_server", "--version"),
    "uvloop": cmd("$py_server", "-c", "import uvloop; print(uvloop.__version__)"),
    "node": cmd("node", "--version"), "rustc": cmd("rustc", "--version"),
    "fencelock": cmd("git", "-C", "$repo", "describe", "--always", "--dirty"),
    "elapsed_s": $(date +%s) - $started,
}, open(sys.argv[1], "w"), indent=1)
EOF
"$venv/bin/python" "$here/report.py" --raw "$raw" --engines "$raw_dir/engines.jsonl" --meta "$meta" --out "$out"
log "done in $(( $(date +%s) - started )) s: $out/RESULTS.md"
