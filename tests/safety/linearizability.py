"""A Wing-Gong linearizability checker with Lowe's memoisation, partitioned by object.

A history is a list of operations, each with an invoke time and a return time. An operation
whose outcome is unknown (the client gave up: a broken connection, a timeout) carries the latest
time at which it can have taken effect as its return time (or ``math.inf``) and ``output=None``;
the model then decides what such an operation may have done, including nothing.

The search follows Wing & Gong (1993) as improved by Lowe (2017) and used by porcupine: the
calls and returns sorted by time in a doubly linked list; an operation is linearized by lifting
its call and return out of the list; a return met before its call was lifted means the choices
so far fail and the search backtracks. A cache of (linearized set, model state) pairs already
explored keeps the search from revisiting the same configuration, which is what makes histories
of thousands of operations checkable when few are concurrent.

Models may be nondeterministic: ``step`` returns every state the operation can lead to (none
when the operation cannot take effect in that state with that output).

By locality (Herlihy & Wing), a history is linearizable iff each object's sub-history is, so
``check_partitioned`` checks each object on its own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Hashable, Iterable, Iterator, List, Optional, Sequence, Tuple

__all__ = ["Operation", "Model", "Result", "check", "check_partitioned"]


@dataclass(frozen=True)
class Operation:
    """One operation of a history: ``output`` None means the outcome is unknown."""

    client: str
    invoke: float
    ret: float
    input: Any
    output: Any = None
    meta: Dict[str, Any] = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True)
class Model:
    """A sequential specification: an initial state and a nondeterministic step function.

    ``step(state, operation)`` returns the states the operation can lead to from ``state``,
    empty when it cannot be linearized there. States must be hashable.
    """

    init: Callable[[], Hashable]
    step: Callable[[Hashable, Operation], Iterable[Hashable]]
    describe: Callable[[Operation], str] = repr


@dataclass
class Result:
    """The verdict for one object: ``ok`` None means the search ran out of its step budget."""

    ok: Optional[bool]
    operations: int
    steps: int
    # When not linearizable: the longest prefix the search managed, and the operation whose
    # return came before any order could place it (the place to look at).
    longest_prefix: List[Operation] = field(default_factory=list)
    stuck_on: Optional[Operation] = None


def check_partitioned(
    operations: Iterable[Operation],
    key: Callable[[Operation], Hashable],
    model: Model,
    max_steps: int = 5_000_000,
) -> Dict[Hashable, Result]:
    """Checks each object's sub-history (grouped by ``key``) on its own; returns the verdicts."""
    parts: Dict[Hashable, List[Operation]] = {}
    for operation in operations:
        parts.setdefault(key(operation), []).append(operation)
    return {name: check(history, model, max_steps) for name, history in sorted(parts.items(), key=lambda kv: str(kv[0]))}


def check(history: Sequence[Operation], model: Model, max_steps: int = 5_000_000) -> Result:
    """Decides whether ``history`` is linearizable with respect to ``model``."""
    head = _build_list(history)
    cache = set()
    stack: List[Tuple[_Entry, Hashable, Iterator[Hashable], int]] = []
    state = model.init()
    linearized = 0
    steps = 0
    best_depth = -1
    best_stack: List[int] = []
    best_stuck: Optional[int] = None
    entry = head.next

    def advance(entry: "_Entry", successors: Iterator[Hashable]) -> bool:
        nonlocal state, linearized
        bit = 1 << entry.index
        for candidate in successors:
            key = (linearized | bit, candidate)
            if key in cache:
                continue
            cache.add(key)
            stack.append((entry, state, successors, linearized))
            state = candidate
            linearized |= bit
            _lift(entry)
            return True
        return False

    while head.next is not None:
        steps += 1
        if steps > max_steps:
            return Result(None, len(history), steps)
        assert entry is not None
        if entry.is_call:
            if advance(entry, iter(model.step(state, history[entry.index]))):
                entry = head.next
            else:
                entry = entry.next
            continue
        # A return whose call is still in the list: nothing linearized so far can be followed
        # by this operation in time. Remember the deepest such point, then backtrack.
        if len(stack) > best_depth:
            best_depth = len(stack)
            best_stack = [frame[0].index for frame in stack]
            best_stuck = entry.index
        while True:
            if not stack:
                return Result(
                    False, len(history), steps,
                    longest_prefix=[history[i] for i in best_stack],
                    stuck_on=history[best_stuck] if best_stuck is not None else None,
                )
            top, state, successors, linearized = stack.pop()
            _unlift(top)
            if advance(top, successors):
                entry = head.next
                break
            if top.next is not None:
                entry = top.next
                break
    return Result(True, len(history), steps)


class _Entry:
    """A call or return in the doubly linked list of events."""

    __slots__ = ("index", "is_call", "time", "match", "prev", "next")

    def __init__(self, index: int, is_call: bool, time: float) -> None:
        self.index = index
        self.is_call = is_call
        self.time = time
        self.match: Optional[_Entry] = None
        self.prev: Optional[_Entry] = None
        self.next: Optional[_Entry] = None


def _build_list(history: Sequence[Operation]) -> _Entry:
    events: List[_Entry] = []
    for index, operation in enumerate(history):
        if not operation.ret >= operation.invoke:
            raise ValueError(f"operation {index} returns before it is invoked: {operation}")
        call = _Entry(index, True, operation.invoke)
        ret = _Entry(index, False, operation.ret if operation.ret is not None else math.inf)
        call.match = ret
        events.extend((call, ret))
    # At equal times calls come first: two operations that touch at an instant are treated as
    # concurrent, which can only make the checker more permissive, never report a false violation.
    events.sort(key=lambda e: (e.time, 0 if e.is_call else 1, e.index))
    head = _Entry(-1, False, -math.inf)
    previous = head
    for event in events:
        previous.next = event
        event.prev = previous
        previous = event
    return head


def _lift(call: _Entry) -> None:
    for entry in (call, call.match):
        assert entry is not None and entry.prev is not None
        entry.prev.next = entry.next
        if entry.next is not None:
            entry.next.prev = entry.prev


def _unlift(call: _Entry) -> None:
    for entry in (call.match, call):
        assert entry is not None and entry.prev is not None
        entry.prev.next = entry
        if entry.next is not None:
            entry.next.prev = entry
