#!/usr/bin/env bash
# `make test`: runs every part in order (each is also a make target of its own), stops at the
# first failure, and ends with a one-screen summary of what ran, how long it took and how many
# tests passed in each part. Each part's output goes to the terminal and to a log in
# $SUMMARY_DIR (default .test-logs/), which the summary names when a part fails.
set -uo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
logs="${SUMMARY_DIR:-$repo/.test-logs}"
mkdir -p "$logs"
parts=(${PARTS:-setup rust-lint rust-test sim-test rust-targets fuzz python-test node-test web-test matrix safety-short bench-quick})
summary=()
failed=""
started=$SECONDS

count() { # count PART LOG: one phrase saying what passed, from the part's own output
    local part="$1" log="$2" n
    case "$part" in
        rust-test)
            n=$(grep -oE "test result: ok\. [0-9]+ passed" "$log" | awk '{s += $4} END {print s + 0}')
            echo "$n Rust tests passed (unit, vectors, properties, durability, doc examples)" ;;
        sim-test)
            n=$(grep -oE "test result: ok\. [0-9]+ passed" "$log" | awk '{s += $4} END {print s + 0}')
            # Two sweeps, in order: the single-server seeds, then the cluster's.
            sweeps=$(grep -oE "^[0-9]+ seeds passed: [0-9.]+ simulated hours" "$log" | sed 's/ passed:/ clean,/' | paste -sd ';' - | sed 's/;/ and cluster /')
            echo "$n simulator tests passed (fixed seeds, planted bugs found, replay, checker); ${sweeps:-no seed sweep}" ;;
        python-test)
            grep -oE "[0-9]+ passed[^=]*" "$log" | tail -n 1 | sed 's/ in .*//; s/^/pytest: /' ;;
        node-test|web-test)
            n=$(grep -E "^# pass [0-9]+" "$log" | awk '{s += $3} END {print s + 0}')
            f=$(grep -E "^# fail [0-9]+" "$log" | awk '{s += $3} END {print s + 0}')
            echo "node --test: $n passed, $f failed" ;;
        fuzz)
            n=$(grep -oE "stat::number_of_executed_units: [0-9]+" "$log" | awk '{s += $2} END {print s + 0}')
            echo "$n inputs over 3 targets, no crash" ;;
        matrix)
            n=$(grep -cE " ok \([0-9.]+ s\)$" "$log")
            echo "$n scenario runs passed; table in tests/matrix/RESULTS.md" ;;
        safety-short)
            echo "$(grep -oE "[0-9]+ passed" "$log" | head -n 1) checker tests; $(grep -E "^safety: " "$log" | tail -n 1 | sed 's/^safety: //')" ;;
        bench-quick) echo "the benchmark scripts run end to end (QUICK=1; numbers not judged)" ;;
        rust-lint) echo "fmt and clippy -D warnings clean" ;;
        rust-targets) echo "core builds for thumbv6m-none-eabi and wasm32 without std" ;;
        *) grep -E "^(summary|SUMMARY):" "$log" | tail -n 1 | sed -E 's/^(summary|SUMMARY): //' || true ;;
    esac
}

for part in "${parts[@]}"; do
    t0=$SECONDS
    log="$logs/$part.log"
    make --no-print-directory "$part" 2>&1 | tee "$log"
    status=${PIPESTATUS[0]}
    took=$((SECONDS - t0))
    if [ "$status" -ne 0 ]; then
        summary+=("$(printf '%-13s FAILED after %4d s  (log: %s)' "$part" "$took" "$log")")
        failed="$part"
        break
    fi
    summary+=("$(printf '%-13s ok %4d s  %s' "$part" "$took" "$(count "$part" "$log")")")
done

echo
echo "==================== make test: summary ===================="
printf '%s\n' "${summary[@]}"
echo "total $((SECONDS - started)) s"
if [ -n "$failed" ]; then
    echo "FAILED in $failed"
    exit 1
fi
echo "all parts passed"
