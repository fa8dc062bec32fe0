"""Writes bench/RESULTS.md and the plots from what bench/run.sh measured (bench/results/*.jsonl).

Medians over the interleaved runs, with the spread (min-max) beside them; ratios to
redis-server and to the TCP echo floor; the issue's targets judged from the same run. The
hand-written analysis in bench/analysis.md (where the time goes) is appended as it is.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
from collections import defaultdict
from typing import Any, Dict, List, Optional

ORDER = ["redis", "python", "node", "echo"]
TITLE = {"redis": "redis-server", "python": "fencelock (Python)", "node": "fencelock (Node)", "echo": "TCP echo (floor)"}
FILL_NAME_BYTES = len("held:00000000")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--raw", required=True)
    parser.add_argument("--engines", required=True)
    parser.add_argument("--meta", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    rows = [json.loads(line) for line in open(args.raw) if line.strip()]
    engines = [json.loads(line) for line in open(args.engines) if line.strip()]
    meta = json.load(open(args.meta))
    runs: Dict[str, Dict[str, List[Dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    fills: Dict[str, Dict[str, Any]] = {}
    for row in rows:
        if row["case"] == "fill":
            fills[row["server"]] = row
        else:
            runs[row["case"]][row["server"]].append(row["data"])
    os.makedirs(args.out, exist_ok=True)
    plots = plot(runs, args.out)
    text = render(runs, fills, engines, meta, plots)
    analysis = os.path.join(os.path.dirname(os.path.abspath(__file__)), "analysis.md")
    if os.path.exists(analysis) and not meta.get("quick"):
        text += "\n" + open(analysis).read()
    with open(os.path.join(args.out, "RESULTS.md"), "w") as out:
        out.write(text)


def median(values: List[float]) -> float:
    return statistics.median(values) if values else float("nan")


def metric(data: List[Dict[str, Any]], path: str) -> List[float]:
    values = []
    for run in data:
        value: Any = run
        for key in path.split("."):
            value = value.get(key) if isinstance(value, dict) else None
        if isinstance(value, (int, float)):
            values.append(float(value))
    return values


def med(data: List[Dict[str, Any]], path: str) -> float:
    return median(metric(data, path))


def cell(data: Optional[List[Dict[str, Any]]], path: str, digits: int = 0) -> str:
    if not data:
        return "-"
    values = metric(data, path)
    if not values:
        return "-"
    middle = median(values)
    if len(values) == 1:
        return f"{middle:,.{digits}f}"
    return f"{middle:,.{digits}f} ({min(values):,.{digits}f}-{max(values):,.{digits}f})"


def ratio(a: float, b: float) -> str:
    if not (a == a and b == b) or b == 0:
        return "-"
    return f"{a / b:.2f}x"


def servers_in(case: Dict[str, List[Dict[str, Any]]]) -> List[str]:
    return [server for server in ORDER if server in case]


def cycle_cases(runs: Dict[str, Any], pipeline: int) -> List[tuple]:
    found = []
    for case in runs:
        match = re.fullmatch(r"cycle c=(\d+) P=(\d+)", case)
        if match and int(match.group(2)) == pipeline:
            found.append((int(match.group(1)), case))
    return sorted(found)


def plot(runs: Dict[str, Any], out: str) -> List[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    for name, path, ylabel, log in (
        ("throughput", "ops_per_s", "operations per second (median)", False),
        ("p99", "op.p99_us", "p99 latency per operation, us (median)", True),
    ):
        figure, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
        for axis, pipeline in zip(axes, (1, 16)):
            cases = cycle_cases(runs, pipeline)
            for server in ORDER:
                points = [(conns, med(runs[case][server], path)) for conns, case in cases if server in runs[case]]
                if points:
                    style = "--" if server == "echo" else "-"
                    axis.plot([p[0] for p in points], [p[1] for p in points], style, marker="o", label=TITLE[server])
            axis.set_xscale("log")
            if log:
                axis.set_yscale("log")
            axis.set_xticks([conns for conns, _ in cases])
            axis.set_xticklabels([str(conns) for conns, _ in cases])
            axis.set_xlabel("clients (connections)")
            axis.set_title("acquire+release cycles, " + ("no pipelining" if pipeline == 1 else f"pipelining {pipeline}"))
            axis.grid(True, which="both", alpha=0.3)
        axes[0].set_ylabel(ylabel)
        axes[0].legend(fontsize=8)
        figure.tight_layout()
        file = f"{name}.png"
        figure.savefig(os.path.join(out, file), dpi=110)
        plt.close(figure)
        written.append(file)
    return written


def render(runs: Dict[str, Any], fills: Dict[str, Any], engines: List[Dict[str, Any]], meta: Dict[str, Any], plots: List[str]) -> str:
    lines: List[str] = []
    add = lines.append
    add("# Benchmark results")
    add("")
    add("Written by `make bench` (`bench/run.sh`, `bench/report.py`); the load generator is `bench/loadgen`, "
        "which speaks fencelock through core's own client state machine and Redis through the same client's "
        "raw commands (`SET name value NX PX ttl`, release by compare-and-delete `EVAL`).")
    if meta.get("quick"):
        add("")
        add("**QUICK=1 run: short runs, one round, fewer cases. These numbers are not judged.**")
    add("")
    add(f"- Date: {meta['date']}; whole run {meta['elapsed_s']} s.")
    add(f"- Machine: {meta['cores']} cores ({meta['cpu']}), Linux {meta['kernel']}; servers pinned to CPU "
        f"{meta['server_cpu']}, the load generator to CPU {meta['bench_cpu']} (taskset), all on 127.0.0.1.")
    add(f"- Load average (/proc/loadavg) before: `{meta['load_before']}`, after: `{meta['load_after']}`. "
        "Other builds may have shared the machine: read the spreads.")
    add(f"- Versions: {meta['redis']}; {meta['python']} with uvloop {meta['uvloop']}; Node {meta['node']}; "
        f"{meta['rustc']}; fencelock {meta['fencelock']}.")
    add(f"- Each cell: the median of {meta['runs']} interleaved runs (every server once per round), "
        f"{meta['duration_s']} s measured after {meta['warmup_s']} s of warm-up, with (min-max) when there are "
        "several. An op is one request (a cycle is acquire + release: 2 ops); latency is from submitting a "
        "request to its typed reply. Server CPU per op is utime+stime (/proc/PID/stat) over the measured window "
        "divided by the ops in it.")
    add("")
    for file in plots:
        add(f"![{file}]({file})")
    add("")

    add("## Targets (ratios from the same run)")
    add("")
    add("| target | server | measured | limit | met |")
    add("|---|---|---|---|---|")
    for row in targets(runs, fills):
        add("| " + " | ".join(row) + " |")
    add("")

    for pipeline in (1, 16):
        cases = cycle_cases(runs, pipeline)
        if not cases:
            continue
        header = "no pipelining" if pipeline == 1 else f"pipelining {pipeline} per connection"
        add(f"## Acquire+release cycles on random names, {header}")
        add("")
        servers = [s for s in ORDER if any(s in runs[c] for _, c in cases)]
        add("Throughput, ops/s:")
        add("")
        add("| clients | " + " | ".join(TITLE[s] for s in servers) + " |")
        add("|---" * (len(servers) + 1) + "|")
        for conns, case in cases:
            add(f"| {conns} | " + " | ".join(cell(runs[case].get(s), "ops_per_s") for s in servers) + " |")
        add("")
        add("Latency per op, p50 / p99 / p99.9 in us (medians):")
        add("")
        add("| clients | " + " | ".join(TITLE[s] for s in servers) + " |")
        add("|---" * (len(servers) + 1) + "|")
        for conns, case in cases:
            cells = []
            for s in servers:
                data = runs[case].get(s)
                cells.append("-" if not data else " / ".join(f"{med(data, 'op.' + q):,.0f}" for q in ("p50_us", "p99_us", "p999_us")))
            add(f"| {conns} | " + " | ".join(cells) + " |")
        add("")
        add("Server CPU per op, us:")
        add("")
        add("| clients | " + " | ".join(TITLE[s] for s in servers) + " |")
        add("|---" * (len(servers) + 1) + "|")
        for conns, case in cases:
            add(f"| {conns} | " + " | ".join(cell(runs[case].get(s), "cpu_us_per_op", 2) for s in servers) + " |")
        add("")
        add("Ratios: fencelock / redis-server (throughput, CPU per op, p99) and fencelock / TCP floor (p50):")
        add("")
        add("| clients | server | throughput vs redis | CPU/op vs redis | p99 vs redis | p50 vs floor | throughput vs floor |")
        add("|---|---|---|---|---|---|---|")
        for conns, case in cases:
            redis = runs[case].get("redis")
            floor = runs[case].get("echo")
            for s in ("python", "node"):
                data = runs[case].get(s)
                if not data:
                    continue
                add(f"| {conns} | {TITLE[s]} | "
                    f"{ratio(med(data, 'ops_per_s'), med(redis, 'ops_per_s')) if redis else '-'} | "
                    f"{ratio(med(data, 'cpu_us_per_op'), med(redis, 'cpu_us_per_op')) if redis else '-'} | "
                    f"{ratio(med(data, 'op.p99_us'), med(redis, 'op.p99_us')) if redis else '-'} | "
                    f"{ratio(med(data, 'op.p50_us'), med(floor, 'op.p50_us')) if floor else '-'} | "
                    f"{ratio(med(data, 'ops_per_s'), med(floor, 'ops_per_s')) if floor else '-'} |")
        add("")

    others = [c for c in runs if not c.startswith("cycle c=") or "beside" in c]
    if others:
        add("## Contention, renewals, and cycles beside live leases")
        add("")
        add("`hot`: 50 clients on 4 names; fencelock clients wait in the server's queue (`ACQUIRE name ttl WAIT 10000`, "
            "each waiting acquire on its own connection, as the clients do), Redis clients retry `SET NX` every 1 ms "
            "(the usual client-side retry; the retries count as ops). `renew`: acquire, renew, release (3 ops per cycle). "
            "`beside N leases`: the cycles of 50 clients while N leases stay held.")
        add("")
        add("| case | server | ops/s | cycles/s | acquire p50 / p99 (us) | op p99 (us) | CPU/op (us) | retries/s |")
        add("|---|---|---|---|---|---|---|---|")
        for case in others:
            for s in servers_in(runs[case]):
                data = runs[case][s]
                add(f"| {case} | {TITLE[s]} | {cell(data, 'ops_per_s')} | {cell(data, 'cycles_per_s')} | "
                    f"{med(data, 'acquire.p50_us'):,.0f} / {med(data, 'acquire.p99_us'):,.0f} | {med(data, 'op.p99_us'):,.0f} | "
                    f"{cell(data, 'cpu_us_per_op', 2)} | {med(data, 'retries') / max(med(data, 'seconds'), 1e-9):,.0f} |")
        add("")

    if fills:
        add("## Memory per live lease")
        add("")
        add("Each server freshly started and warmed by a short cycle run, then N leases taken (names "
            f"`held:NNNNNNNN`, {FILL_NAME_BYTES} bytes; 5-minute TTL) by 8 clients pipelining 64; VmRSS after minus before, per lease.")
        add("")
        add("| server | leases | fill rate (leases/s) | RSS before (MiB) | RSS after (MiB) | bytes per lease | minus the name |")
        add("|---|---|---|---|---|---|---|")
        for s in ORDER:
            row = fills.get(s)
            if not row:
                continue
            data = row["data"]
            per = (data["rss_after"] - data["rss_before"]) / row["leases"]
            add(f"| {TITLE[s]} | {row['leases']:,} | {data['ops_per_s']:,.0f} | {data['rss_before'] / 2**20:,.1f} | "
                f"{data['rss_after'] / 2**20:,.1f} | {per:,.0f} | {per - FILL_NAME_BYTES:,.0f} |")
        add("")

    if engines:
        add("## In-process engines (no network)")
        add("")
        add("Acquire+release pairs on 1,024 names, one thread pinned to the server CPU: Rust calls the engine "
            "directly (`loadgen engine`), Python and Node through their bindings, by the package's wrapper and raw.")
        add("")
        add("| engine | pairs/s | us per pair |")
        add("|---|---|---|")
        for engine in engines:
            add(f"| {engine['engine']} | {float(engine['pairs_per_s']):,.0f} | {float(engine['us_per_pair']):.3f} |")
        add("")
    return "\n".join(lines) + "\n"


def targets(runs: Dict[str, Any], fills: Dict[str, Any]) -> List[List[str]]:
    rows = []

    def judge(name: str, server: str, value: float, limit: float, unit: str = "x") -> None:
        if value != value:
            rows.append([name, TITLE[server], "not measured", f"{limit}{unit}", "-"])
            return
        shown = f"{value:.2f}{unit}" if unit == "x" else f"{value:,.0f}{unit}"
        rows.append([name, TITLE[server], shown, f"<= {limit}{unit}", "yes" if value <= limit else "**no**"])

    def case_ratio(case: str, server: str, path: str, base: str) -> float:
        data = runs.get(case, {})
        if server not in data or base not in data:
            return float("nan")
        return med(data[server], path) / med(data[base], path)

    for s in ("python", "node"):
        judge("CPU per op vs redis, 50 clients", s, case_ratio("cycle c=50 P=1", s, "cpu_us_per_op", "redis"), 1.0)
        judge("CPU per op vs redis, 50 clients pipelining 16", s, case_ratio("cycle c=50 P=16", s, "cpu_us_per_op", "redis"), 0.6)
        judge("1-client p50 vs TCP floor", s, case_ratio("cycle c=1 P=1", s, "op.p50_us", "echo"), 1.3)
        judge("p99 vs redis, 50 clients", s, case_ratio("cycle c=50 P=1", s, "op.p99_us", "redis"), 1.5)
        row = fills.get(s)
        per = float("nan")
        if row:
            data = row["data"]
            per = (data["rss_after"] - data["rss_before"]) / row["leases"] - FILL_NAME_BYTES
        judge("memory per live lease, minus its name", s, per, 300, " B")
    return rows


if __name__ == "__main__":
    main()
