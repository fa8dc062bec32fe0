"""The checks of one round, over the recorded history and the store's accepted writes.

1. store: per lock, the store never accepted a token below one it had already accepted.
2. tokens: a grant that began after another grant returned has a larger token (I2, one global
   sequence), and in particular every grant after a restart exceeds every token seen before it.
3. exclusive: no two grants on a lock whose certainly-live windows overlap. A grant by an
   acquire [inv, ret] of ttl ms is certainly live on the server's clock during
   [ret, inv + ttl - margin], cut short at the invoke of any release of that token.
4. linearizable: per lock, the lease history and the fence-register history are linearizable
   against the models in models.py (Wing-Gong search, linearizability.py).

Every check only reports what must be a violation whatever the unobserved instants were.
"""

from __future__ import annotations

import bisect
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from linearizability import Operation, check, check_partitioned
from models import FENCE_MODEL, LEASE_MODEL, MARGIN_MS, acquire, release, set_linger, write

__all__ = ["Record", "load_history", "run_checks", "Report"]


@dataclass
class Record:
    """One operation as the client logged it; ``ret`` None if it never returned."""

    id: str
    client: str
    op: str
    lock: str
    invoke: float
    ret: Optional[float]
    out: Optional[str]
    fields: Dict[str, Any]

    @property
    def token(self) -> Optional[int]:
        return self.fields.get("token")


@dataclass
class Report:
    """What the checks found: counts for the summary and the failures, each with an excerpt."""

    counts: Dict[str, int] = field(default_factory=dict)
    passed: List[str] = field(default_factory=list)
    failures: List[str] = field(default_factory=list)


def load_history(paths: Iterable[Path]) -> Tuple[List[Record], List[Dict[str, Any]]]:
    """Reads the workers' JSON lines; returns the operations (by invoke time) and the notes."""
    invokes: Dict[str, Dict[str, Any]] = {}
    returns: Dict[str, Dict[str, Any]] = {}
    notes: List[Dict[str, Any]] = []
    for path in paths:
        for line in path.read_text().splitlines():
            if not line.strip():
                continue
            event = json.loads(line)
            if event["ev"] == "inv":
                invokes[event["id"]] = event
            elif event["ev"] == "ret":
                returns[event["id"]] = event
            else:
                notes.append(event)
    records = []
    for op_id, inv in invokes.items():
        ret = returns.get(op_id)
        fields = {k: v for k, v in inv.items() if k not in ("ev", "id", "client", "op", "lock", "t")}
        if ret is not None:
            fields.update({k: v for k, v in ret.items() if k not in ("ev", "id", "t", "out")})
        records.append(Record(op_id, inv["client"], inv["op"], inv["lock"], inv["t"],
                              ret["t"] if ret else None, ret["out"] if ret else None, fields))
    records.sort(key=lambda r: r.invoke)
    return records, notes


def run_checks(records: List[Record], accepted: Sequence[Tuple[int, str, int, str, str]],
               kills: List[float], round_end: float, unknowns_end_at_kills: bool = True,
               linger_ms: float = 0.0) -> Report:
    """Runs every check; ``kills`` are the instants the server was certainly dead (after waitpid).

    ``unknowns_end_at_kills``: a request whose outcome is unknown can take effect only until the
    next kill (one server); a cluster node's kill does not bound it. ``linger_ms``: how much
    longer than its TTL a lease may stay live on the server (a cluster's failover gap).
    """
    report = Report()
    _KILLS[:] = kills
    set_linger(linger_ms)
    grants = [r for r in records if r.op == "acquire" and r.out == "ok"]
    report.counts = {
        "ops": len(records),
        "grants": len(grants),
        "acquire_refused": sum(1 for r in records if r.op == "acquire" and r.out == "fail"),
        "notready": sum(1 for r in records if r.op == "acquire" and r.fields.get("code") == "NOTREADY"),
        "unknown": sum(1 for r in records if r.out in (None, "unknown")),
        "writes_accepted": sum(1 for r in records if r.op == "write" and r.out == "accepted"),
        "writes_refused": sum(1 for r in records if r.op == "write" and r.out == "refused"),
        "store_rows": len(accepted),
    }
    _check_store(accepted, records, report)
    _check_tokens(grants, kills, report)
    _check_exclusive(records, report)
    _check_linearizable(records, kills if unknowns_end_at_kills else [], round_end, report)
    return report


def _check_store(accepted, records: List[Record], report: Report) -> None:
    highest: Dict[str, Tuple[int, Tuple]] = {}
    by_write_id = {r.fields.get("write_id"): r for r in records if r.op == "write"}
    bad = []
    for row in accepted:
        seq, lock, token, client, write_id = row
        if lock in highest and token < highest[lock][0]:
            bad.append((highest[lock][1], row))
        if lock not in highest or token > highest[lock][0]:
            highest[lock] = (token, row)
    if not bad:
        report.passed.append(f"store: {len(accepted)} accepted writes, tokens never went down on any lock")
        return
    lines = [f"store: {len(bad)} writes accepted with a token below one already accepted on that lock"]
    for before, row in bad[:5]:
        lines.append(f"  accepted seq={before[0]} lock={before[1]} token={before[2]} by {before[3]} ({before[4]})")
        lines.append(f"  then     seq={row[0]} lock={row[1]} token={row[2]} by {row[3]} ({row[4]})  <-- older token accepted")
        late = by_write_id.get(row[4])
        if late is not None:
            lines.append(f"    that write was invoked at {late.invoke:.3f} ms; the excerpt of {row[1]} around it:")
            lines.extend("    " + line for line in _excerpt(records, row[1], late.invoke, mark=late.id))
    report.failures.append("\n".join(lines))


def _check_tokens(grants: List[Record], kills: List[float], report: Report) -> None:
    by_return = sorted(grants, key=lambda g: g.ret)
    returns = [g.ret for g in by_return]
    # prefix_max[i]: the grant with the largest token among the first i to return.
    prefix_max: List[Optional[Record]] = [None]
    for g in by_return:
        best = prefix_max[-1]
        prefix_max.append(g if best is None or g.token > best.token else best)
    bad = []
    for g in grants:
        before = prefix_max[bisect.bisect_left(returns, g.invoke)]
        if before is not None and g.token <= before.token:
            bad.append((before, g))
    crossing = 0
    for kill in kills:
        earlier = prefix_max[bisect.bisect_left(returns, kill)]
        later = [g.token for g in grants if g.invoke > kill]
        if earlier is not None and later:
            crossing += 1
    if not bad:
        report.passed.append(f"tokens: {len(grants)} grants in real-time order have increasing tokens, "
                             f"across {crossing} server restarts")
        return
    lines = [f"tokens: {len(bad)} grants got a token not above one granted before them"]
    for before, g in bad[:5]:
        dead = [k for k in kills if before.ret < k < g.invoke]
        lines.append(f"  {before.client} got {before.lock} token {before.token} (returned {before.ret:.3f} ms), "
                     f"then {g.client} got {g.lock} token {g.token} (invoked {g.invoke:.3f} ms)"
                     + (f", across {len(dead)} restart(s)" if dead else ""))
    report.failures.append("\n".join(lines))


def _check_exclusive(records: List[Record], report: Report) -> None:
    release_at: Dict[Tuple[str, int], float] = {}
    for r in records:
        if r.op == "release":
            key = (r.lock, r.token)
            release_at[key] = min(release_at.get(key, math.inf), r.invoke)
    windows: Dict[str, List[Tuple[float, float, Record]]] = {}
    for r in records:
        if r.op == "acquire" and r.out == "ok":
            start = r.ret
            end = min(r.invoke + r.fields["ttl"] - MARGIN_MS, release_at.get((r.lock, r.token), math.inf))
            if end > start:
                windows.setdefault(r.lock, []).append((start, end, r))
    bad = []
    for lock, spans in windows.items():
        spans.sort(key=lambda s: s[0])
        reach: Optional[Tuple[float, float, Record]] = None
        for span in spans:
            if reach is not None and span[0] < reach[1]:
                bad.append((reach, span))
            if reach is None or span[1] > reach[1]:
                reach = span
    total = sum(len(s) for s in windows.values())
    if not bad:
        report.passed.append(f"exclusive: {total} certainly-live lease windows, none overlapping on a lock")
        return
    lines = [f"exclusive: {len(bad)} grants while another lease on the lock was certainly live"]
    for first, second in bad[:5]:
        lines.append(f"  {first[2].lock}: token {first[2].token} ({first[2].client}) live {first[0]:.3f}..{first[1]:.3f} ms, "
                     f"token {second[2].token} ({second[2].client}) live {second[0]:.3f}..{second[1]:.3f} ms")
        lines.extend("    " + line for line in _excerpt(records, first[2].lock, second[2].invoke, mark=second[2].id))
    report.failures.append("\n".join(lines))


def _check_linearizable(records: List[Record], kills: List[float], round_end: float, report: Report) -> None:
    leases, fences = [], []
    for r in records:
        if r.op == "write":
            bound = r.ret if r.out not in (None, "unknown") else round_end
            output = r.out if r.out in ("accepted", "refused") else None
            fences.append(write(r.client, r.invoke, bound, r.token, output, lock=r.lock, id=r.id))
            continue
        if r.out in (None, "unknown"):
            # A request to the lock server can take effect only while the server incarnation it
            # reached lives: at the latest at the first kill after the client gave up.
            given_up = r.ret if r.ret is not None else round_end
            after = [k for k in kills if k >= given_up]
            bound, output = (after[0] if after else round_end), None
        else:
            bound = r.ret
            output = ("ok", r.token) if (r.op == "acquire" and r.out == "ok") else ("ok",) if r.out == "ok" else ("fail", r.fields.get("code"))
        if r.op == "acquire":
            leases.append(acquire(r.client, r.invoke, max(bound, r.invoke), r.fields["ttl"], output, lock=r.lock, id=r.id))
        elif r.op == "release":
            leases.append(release(r.client, r.invoke, max(bound, r.invoke), r.token, output, lock=r.lock, id=r.id))
    for what, history, model in (("lease", leases, LEASE_MODEL), ("fence", fences, FENCE_MODEL)):
        verdicts = check_partitioned(history, lambda op: op.meta["lock"], model)
        for lock, result in verdicts.items():
            if result.ok is True:
                report.passed.append(f"linearizable: {what} history of {lock} ({result.operations} ops, {result.steps} search steps)")
            elif result.ok is None:
                report.failures.append(f"linearizable: {what} history of {lock} ({result.operations} ops) "
                                       f"not decided within {result.steps} search steps")
            else:
                history_of_lock = [op for op in history if op.meta["lock"] == lock]
                culprit = _first_failing_prefix(history_of_lock, model)
                lines = [f"linearizable: the {what} history of {lock} is NOT linearizable ({result.operations} ops)"]
                if culprit is not None:
                    lines.append("  the shortest prefix (by invoke time) that no order explains ends with:")
                    lines.append(f"    {model.describe(culprit)}")
                    lines.append("  the history around it:")
                    lines.extend("    " + line for line in _excerpt(records, lock, culprit.invoke, mark=culprit.meta.get("id")))
                report.failures.append("\n".join(lines))


def _first_failing_prefix(history: List[Operation], model) -> Optional[Operation]:
    """The operation that ends the shortest non-linearizable prefix of ``history`` by invoke time.

    The search's own stopping point says little (memoisation and backtracking leave it wherever
    the last branch ran out), so the place to look at is found by bisecting prefixes instead.
    """
    ordered = sorted(history, key=lambda op: op.invoke)

    def fails(count: int) -> bool:
        return check(ordered[:count], model, max_steps=200_000).ok is False

    if not ordered or not fails(len(ordered)):
        return None
    low, high = 1, len(ordered)  # fails(high) holds; find the smallest such count
    while low < high:
        middle = (low + high) // 2
        if fails(middle):
            high = middle
        else:
            low = middle + 1
    return ordered[high - 1]


def _excerpt(records: List[Record], lock: str, at: float, mark: Optional[str] = None,
             before_ms: float = 1500, after_ms: float = 300, limit: int = 30) -> List[str]:
    """The operations on ``lock`` invoked near ``at``, one per line, ``mark`` flagged.

    NOTREADY answers (the restart grace) are counted, not listed; the grant of every token
    shown is listed even when it came earlier; server kills in the span are shown in place.
    """
    near = [r for r in records if r.lock == lock and at - before_ms <= r.invoke <= at + after_ms]
    grace = sum(1 for r in near if r.fields.get("code") == "NOTREADY")
    near = [r for r in near if r.fields.get("code") != "NOTREADY"]
    if len(near) > limit:
        index = next((i for i, r in enumerate(near) if r.id == mark), len(near) // 2)
        near = near[max(0, index - limit + 8): index + 8]
    tokens = {r.token for r in near if r.token is not None}
    shown = {r.id for r in near}
    grants = [r for r in records if r.lock == lock and r.op == "acquire" and r.out == "ok"
              and r.token in tokens and r.id not in shown]
    events = [(r.invoke, _describe_record(r, mark)) for r in sorted(grants + near, key=lambda r: r.invoke)]
    events += [(k, f"{'server':>6} [{k:12.3f}] killed with SIGKILL (restarted on the same data dir)") for k in _KILLS
               if (near and near[0].invoke <= k <= near[-1].invoke)]
    lines = [line for _, line in sorted(events, key=lambda e: e[0])]
    if grace:
        lines.append(f"(and {grace} acquires answered NOTREADY in this span, not listed)")
    return lines


_KILLS: List[float] = []


def _describe_record(r: Record, mark: Optional[str]) -> str:
    ret = f"{r.ret:12.3f}" if r.ret is not None else "      (none)"
    detail = {k: v for k, v in r.fields.items() if k in ("token", "ttl", "wait", "code", "write_id") and v is not None}
    flag = "  <--" if r.id == mark else ""
    return f"{r.client:>6} [{r.invoke:12.3f} .. {ret}] {r.op:<7} {r.out or 'unknown':<8} {detail}{flag}"
