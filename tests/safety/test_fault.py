"""The checks can fail: a short round against a store without the fence must be caught."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def test_a_store_without_the_fence_is_caught():
    # One hot lock and only the Python server: every stale write lands on the same row.
    env = dict(os.environ, SAFETY_FAULT="unfenced")
    env.pop("SEED", None)
    done = subprocess.run(
        [sys.executable, str(HERE / "safety.py"), "--profile", "short", "--servers", "python",
         "--duration", "12", "--locks", "1"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120,
    )
    print(done.stdout)
    kept = re.search(r"histories and logs kept in (\S+)", done.stdout)
    if kept and Path(kept.group(1)).name.startswith("fencelock-safety-"):
        shutil.rmtree(kept.group(1), ignore_errors=True)
    assert done.returncode == 1, "the run must fail when the store ignores the fence"
    assert "store: " in done.stdout and "older token accepted" in done.stdout
    assert "fence history of python-lock-0 is NOT linearizable" in done.stdout
    assert "replay with: SAFETY_FAULT=unfenced SEED=" in done.stdout
