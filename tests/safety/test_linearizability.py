"""The checker accepts linearizable histories and rejects non-linearizable ones, hand-made."""

from __future__ import annotations

import math
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from linearizability import Model, Operation, check, check_partitioned  # noqa: E402
from models import FENCE_MODEL, LEASE_MODEL, acquire, release, write  # noqa: E402

INF = math.inf


# -- a plain read/write register: the textbook cases ------------------------------------------

def _register_step(state, operation):
    kind, value = operation.input
    if kind == "write":
        return [value]
    if operation.output is None:
        return [state]
    return [state] if operation.output == state else []


REGISTER = Model(init=lambda: 0, step=_register_step)


def reg(client, invoke, ret, kind, value=None, output=None):
    return Operation(client, invoke, ret, (kind, value), output)


def test_register_sequential_history_is_linearizable():
    history = [reg("a", 0, 1, "write", 1), reg("b", 2, 3, "read", output=1), reg("a", 4, 5, "write", 2), reg("b", 6, 7, "read", output=2)]
    assert check(history, REGISTER).ok is True


def test_register_stale_read_after_a_completed_write_is_rejected():
    history = [reg("a", 0, 1, "write", 1), reg("b", 2, 3, "read", output=0)]
    result = check(history, REGISTER)
    assert result.ok is False
    assert result.stuck_on is not None and result.stuck_on.client == "b"


def test_register_reads_concurrent_with_a_write_may_see_either_value():
    history = [reg("a", 0, 10, "write", 1), reg("b", 1, 2, "read", output=0), reg("c", 3, 4, "read", output=1)]
    assert check(history, REGISTER).ok is True


def test_register_new_then_old_value_during_one_write_is_rejected():
    # Both reads overlap the write, but the read of 1 finished before the read of 0 began.
    history = [reg("a", 0, 10, "write", 1), reg("b", 1, 2, "read", output=1), reg("c", 3, 4, "read", output=0)]
    assert check(history, REGISTER).ok is False


def test_register_write_with_unknown_outcome_may_or_may_not_take_effect():
    took_effect = [reg("a", 0, INF, "write", 7), reg("b", 5, 6, "read", output=7)]
    did_not = [reg("a", 0, INF, "write", 7), reg("b", 5, 6, "read", output=0)]
    assert check(took_effect, REGISTER).ok is True
    assert check(did_not, REGISTER).ok is True


def test_register_unknown_write_cannot_explain_a_value_nobody_wrote():
    history = [reg("a", 0, INF, "write", 7), reg("b", 5, 6, "read", output=8)]
    assert check(history, REGISTER).ok is False


def test_register_unknown_write_bounded_in_time_cannot_take_effect_later():
    # The write's connection died at 20: it took effect by then or never. A read of 0 after a
    # read of 7 is impossible either way.
    history = [reg("a", 0, 20, "write", 7), reg("b", 5, 6, "read", output=7), reg("c", 30, 31, "read", output=0)]
    assert check(history, REGISTER).ok is False


# -- the fence register --------------------------------------------------------------------

def test_fence_increasing_tokens_and_repeated_writes_of_one_token_are_accepted():
    history = [write("a", 0, 1, 1, "accepted"), write("a", 2, 3, 1, "accepted"), write("b", 4, 5, 3, "accepted"), write("a", 6, 7, 1, "refused")]
    assert check(history, FENCE_MODEL).ok is True


def test_fence_older_token_accepted_after_a_newer_one_is_rejected():
    # The paused holder's late write, accepted by a store that forgot the fence.
    history = [write("new", 0, 1, 5, "accepted"), write("old", 2, 3, 3, "accepted")]
    assert check(history, FENCE_MODEL).ok is False


def test_fence_concurrent_writes_may_land_in_either_order():
    both_accepted = [write("a", 0, 10, 5, "accepted"), write("b", 1, 9, 3, "accepted")]
    newer_first = [write("a", 0, 10, 5, "accepted"), write("b", 1, 9, 3, "refused")]
    assert check(both_accepted, FENCE_MODEL).ok is True
    assert check(newer_first, FENCE_MODEL).ok is True


def test_fence_refusal_with_nothing_newer_is_rejected():
    assert check([write("a", 0, 1, 3, "refused")], FENCE_MODEL).ok is False


def test_fence_unknown_write_may_explain_a_later_refusal():
    history = [write("a", 0, 1, 5, "accepted"), write("b", 2, INF, 7, None), write("c", 10, 11, 6, "refused")]
    assert check(history, FENCE_MODEL).ok is True


def test_fence_unknown_write_cannot_excuse_an_older_token():
    history = [write("a", 0, 1, 5, "accepted"), write("b", 2, INF, 9, None), write("c", 5, 6, 3, "accepted")]
    assert check(history, FENCE_MODEL).ok is False


# -- the lease -------------------------------------------------------------------------------

def test_lease_acquire_release_acquire_is_linearizable():
    history = [
        acquire("a", 0, 1, 100, ("ok", 1)), release("a", 10, 11, 1, ("ok",)),
        acquire("b", 20, 21, 100, ("ok", 2)), acquire("c", 22, 23, 100, ("fail", "LOCKED")),
    ]
    assert check(history, LEASE_MODEL).ok is True


def test_lease_second_grant_while_the_first_is_live_is_rejected():
    history = [acquire("a", 0, 1, 100, ("ok", 1)), acquire("b", 10, 11, 100, ("ok", 2))]
    assert check(history, LEASE_MODEL).ok is False


def test_lease_grant_after_the_first_lease_lapsed_is_accepted():
    history = [acquire("a", 0, 1, 100, ("ok", 1)), acquire("b", 150, 151, 100, ("ok", 2))]
    assert check(history, LEASE_MODEL).ok is True


def test_lease_two_overlapping_acquires_both_granted_is_rejected():
    history = [acquire("a", 0, 10, 100, ("ok", 1)), acquire("b", 2, 12, 100, ("ok", 2))]
    assert check(history, LEASE_MODEL).ok is False


def test_lease_tokens_going_backwards_are_rejected():
    history = [acquire("a", 0, 1, 100, ("ok", 5)), release("a", 2, 3, 5, ("ok",)), acquire("b", 10, 11, 100, ("ok", 3))]
    assert check(history, LEASE_MODEL).ok is False


def test_lease_locked_answer_concurrent_with_a_grant_orders_after_it():
    history = [acquire("a", 0, 10, 100, ("ok", 1)), acquire("b", 1, 9, 100, ("fail", "LOCKED"))]
    assert check(history, LEASE_MODEL).ok is True


def test_lease_locked_answer_on_a_free_lock_is_rejected():
    history = [acquire("b", 0, 5, 100, ("fail", "LOCKED")), acquire("a", 6, 7, 100, ("ok", 1))]
    assert check(history, LEASE_MODEL).ok is False


def test_lease_unknown_acquire_may_or_may_not_have_been_granted():
    held = [acquire("a", 0, 50, 100, None), acquire("b", 60, 61, 100, ("fail", "LOCKED"))]
    free = [acquire("a", 0, 50, 100, None), acquire("b", 60, 61, 100, ("ok", 7))]
    assert check(held, LEASE_MODEL).ok is True
    assert check(free, LEASE_MODEL).ok is True


def test_lease_unknown_acquire_cannot_keep_the_lock_past_its_ttl():
    history = [acquire("a", 0, 50, 100, None), acquire("b", 500, 501, 100, ("fail", "LOCKED"))]
    assert check(history, LEASE_MODEL).ok is False


def test_lease_release_of_a_lapsed_lease_is_rejected():
    history = [acquire("a", 0, 1, 100, ("ok", 1)), release("a", 300, 301, 1, ("ok",))]
    assert check(history, LEASE_MODEL).ok is False


def test_lease_unknown_release_may_have_freed_the_lock():
    history = [acquire("a", 0, 1, 100, ("ok", 1)), release("a", 5, 20, 1, None), acquire("b", 30, 31, 100, ("ok", 2))]
    assert check(history, LEASE_MODEL).ok is True


def test_lease_notready_and_stale_answers_change_nothing():
    history = [
        acquire("a", 0, 1, 100, ("ok", 1)), release("a", 50, 51, 1, ("fail", "STALE")),
        acquire("b", 60, 61, 100, ("fail", "NOTREADY")), acquire("b", 70, 71, 100, ("fail", "LOCKED")),
        acquire("b", 120, 121, 100, ("ok", 2)),
    ]
    assert check(history, LEASE_MODEL).ok is True


# -- partitioning and scale --------------------------------------------------------------

def test_partitioned_check_finds_the_bad_object_only():
    history = [
        write("a", 0, 1, 5, "accepted", lock="x"), write("b", 2, 3, 3, "accepted", lock="x"),
        write("a", 0, 1, 5, "accepted", lock="y"), write("b", 2, 3, 3, "refused", lock="y"),
    ]
    verdicts = check_partitioned(history, lambda op: op.meta["lock"], FENCE_MODEL)
    assert verdicts["x"].ok is False and verdicts["y"].ok is True


def test_a_long_history_with_some_concurrency_is_checked_quickly():
    rng = random.Random(7)
    history = []
    now, token = 0.0, 0
    for _ in range(3000):
        token += 1
        start = now + rng.uniform(0, 2)
        history.append(write(f"c{token % 5}", start, start + rng.uniform(0.5, 6), token, "accepted" if rng.random() < 0.5 else None))
        now = start
    # Tokens rise with invoke times, so the token order respects real time: linearizable.
    result = check(history, FENCE_MODEL)
    assert result.ok is True and result.steps < 1_000_000


# -- the report points at the operation that breaks the history --------------------------------

def test_the_report_names_a_release_that_vouched_for_an_expired_superseded_lease():
    # The shape the safety run found against a client that answered OK for a retried release
    # which found the lease gone: a 500 ms lease, another client granted after it lapsed, a
    # run of refused acquires in between, then the first holder's release "succeeds".
    from checks import Record, run_checks  # noqa: E402

    records = [
        Record("a1", "js2", "acquire", "l", 0.0, 8.0, "ok", {"ttl": 500, "token": 116}),
        Record("a2", "py0", "acquire", "l", 300.0, 510.0, "ok", {"ttl": 300, "wait": 329, "token": 124}),
        Record("r2", "py0", "release", "l", 530.0, 532.0, "ok", {"token": 124}),
    ]
    records += [Record(f"n{i}", "py1", "acquire", "l", 600.0 + 10 * i, 601.0 + 10 * i, "fail",
                       {"ttl": 150, "code": "NOTSENT"}) for i in range(30)]
    records.append(Record("r1", "js2", "release", "l", 1300.0, 1570.0, "ok", {"token": 116}))
    report = run_checks(records, [], [], 2000.0)
    failure = next(f for f in report.failures if "lease history of l is NOT linearizable" in f)
    culprit = failure.split("ends with:")[1].splitlines()[1]
    assert "release(token=116) -> ok" in culprit, failure
    marked = [line for line in failure.split("the history around it:")[1].splitlines() if line.endswith("<--")]
    assert len(marked) == 1 and "1300.000" in marked[0] and "release" in marked[0], failure
    # The grant of the lease it names is shown, though it came long before.
    assert "'token': 116" in failure.split("the history around it:")[1].splitlines()[1], failure
