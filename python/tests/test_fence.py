"""fencelock.Fence: high-water marks, and the durable file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import fencelock
from fencelock import _durable


def test_refuses_older_tokens_and_allows_equal() -> None:
    fence = fencelock.Fence()
    assert fence.check("db", 5) == (True, True, 5)
    assert fence.check("db", 5) == (True, False, 5)
    assert not fence.check("db", 4)
    assert fence.check("other", 1)
    with pytest.raises(fencelock.FenceRejected) as refused:
        fence.require("db", 3)
    assert refused.value.highest == 5
    assert fence.marks() == {"db": 5, "other": 1}


def test_durable_marks_survive_a_new_process(tmp_path: Path) -> None:
    path = tmp_path / "fence.json"
    fence = fencelock.Fence(path)
    fence.check("db", 41)
    fence.check("db", 42)
    assert not list(tmp_path.glob(".*.tmp"))
    reopened = fencelock.Fence(path)
    assert reopened.highest("db") == 42
    assert not reopened.check("db", 41)


def test_a_failed_write_is_fatal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fence = fencelock.Fence(tmp_path / "fence.json")
    fence.check("db", 1)

    def failing_fsync(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(_durable.os, "fsync", failing_fsync)
    with pytest.raises(_durable.DurabilityError):
        fence.check("db", 2)
    monkeypatch.setattr(_durable.os, "fsync", os.fsync)
    with pytest.raises(_durable.DurabilityError):
        fence.check("db", 3)


def test_an_unreadable_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "fence.json"
    path.write_text("{broken")
    with pytest.raises(ValueError):
        fencelock.Fence(path)
