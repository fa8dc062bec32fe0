# Shared by bench/python/run.sh and bench/node/run.sh: one fencelock server against redis-server
# under redis-benchmark. Sourced, not run: the caller sets work, bench_cpu, runs, fl_port, fl_pid,
# rd_port and rd_pid before calling compare.

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
