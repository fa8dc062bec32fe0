"""Shared fixtures: repository paths, free ports, and servers started as real processes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
VECTORS = Path(os.environ.get("FENCELOCK_VECTORS", REPO / "tests" / "vectors"))


@pytest.fixture
def vectors_dir() -> Path:
    return VECTORS
