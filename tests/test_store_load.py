"""The PostgreSQL store under load (benchmarks/store_load.py, small): 8 concurrent real `opbench run`s on cpu
with readers, one writer SIGKILLed and resumed, the server restarted under two writers; the script exits 1 on
any lost or mixed result, a reader seeing a run shrink, an interruption that is not one line, a failed resume or
a password in a run file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_eight_writers_a_sigkill_and_a_server_restart_lose_nothing(postgres_server, tmp_path: Path) -> None:
    pytest.importorskip("torch")
    if postgres_server[0] is None:
        pytest.skip("the load test restarts its own private server; it needs PostgreSQL's binaries")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "store_load.py"), "--writers", "8",
                           "--ops", "ReLU,Sum,Softmax", "--budget", "0.05", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=900, env=env)
    assert done.returncode == 0, done.stdout + done.stderr[-2000:]
    assert "lost 0" in done.stdout and done.stdout.strip().endswith("lost = 0")
