"""The `opbench_check` fixture in a user's test suite (run with pytester): verification, a baseline, and a
significant slowdown failing the test with the comparison's figures."""

from __future__ import annotations

import importlib.metadata
import re
import textwrap
from pathlib import Path

import pytest

from opbench.testing.check import OpbenchCheckFailed, check_op

pytest_plugins = ["pytester"]

CATALOG = '''
import time
import numpy as np
from opbench import CustomFamily

DELAY_S = {delay}

def numpy_square(case):
    def square(x):
        if DELAY_S:
            time.sleep(DELAY_S)
        return x * x
    return square

SQUARE = CustomFamily(name="Square", cases=["8x16"], reference=lambda case, x: x * x,
                      flops=lambda case: 128.0, implementations={{"numpy": numpy_square}})
'''

CONFTEST = '''
from opbench.testing.fakes import register_fakes

register_fakes()
'''

USER_TESTS = '''
from pathlib import Path

OPTIONS = dict(budget=0.05, min_samples=12)

def test_verified(opbench_check):  # no baseline: verification only
    outcome = opbench_check("Square", "fake_numpy", catalog="square.py", baseline=None, **OPTIONS)
    assert outcome.comparison is None
    Path("baseline.txt").write_text(outcome.run.run_id)

def test_unsupported_backend_fails(opbench_check):
    opbench_check("Square", "cpu", catalog="square.py", baseline=None, **OPTIONS)

def test_against_the_baseline(opbench_check):  # --opbench-baseline and --opbench-max-slowdown give the defaults
    outcome = opbench_check("Square", "fake_numpy", catalog="square.py", **OPTIONS)
    assert len(outcome.comparison.rows) == 1
'''


def plugin_args() -> list[str]:
    """`-p` unless the `pytest11` entry point is installed (pip install -e .), which loads it already."""
    installed = any(ep.name == "opbench" for ep in importlib.metadata.entry_points(group="pytest11"))
    return [] if installed else ["-p", "opbench.testing.pytest_plugin"]


def test_fixture_passes_verified_ops_and_fails_regressions(pytester: pytest.Pytester, tmp_path: Path) -> None:
    store = f"--opbench-store={tmp_path / 's.sqlite'}"

    def session(delay: float, *args: str) -> pytest.RunResult:
        """One pytest session of the user's suite, with its op sleeping `delay` s per call."""
        pytester.makepyfile(square=textwrap.dedent(CATALOG.format(delay=delay)), conftest=CONFTEST,
                            test_user=USER_TESTS)
        return pytester.runpytest_subprocess(*plugin_args(), "-p", "no:cacheprovider", store, *args)

    first = session(0, "-k", "verified or unsupported")
    first.assert_outcomes(passed=1, failed=1)
    assert "not verified on cpu: Square / dim=8x16: unsupported" in first.stdout.str()
    baseline = (pytester.path / "baseline.txt").read_text()
    same = session(0, "-k", "baseline", f"--opbench-baseline={baseline}", "--opbench-max-slowdown=200")
    same.assert_outcomes(passed=1)
    slow = session(0.002, "-k", "baseline", f"--opbench-baseline={baseline}")
    slow.assert_outcomes(failed=1)
    assert re.search(rf"slower than baseline {baseline} by more than 5% on fake_numpy: Square / dim=8x16: "
                     r"\S+ -> \S+ ms \(\S+x, CI", slow.stdout.str()), slow.stdout.str()


def test_a_baseline_without_the_case_fails_and_bad_percent_is_refused(tmp_path: Path) -> None:
    from opbench.catalog.user import unload_catalogs
    from opbench.results import CaseResult, Run

    store = tmp_path / "s.sqlite"
    other = CaseResult(case="Square / dim=2x2", family="Square", backend="fake_numpy", dtype="float32",
                       status="ok", samples_ms=(1.0, 1.0, 1.0))
    empty = Run(run_id="other-cases", created="2026-01-01T00:00:00+00:00", preset="seed", dtype="float32",
                results=(other,))
    with pytest.raises(ValueError, match="max_slowdown_pct"):
        check_op("ReLU", "cpu", baseline=empty, max_slowdown_pct=-1, store=store)
    from opbench.testing.fakes import register_fakes

    register_fakes()
    catalog = tmp_path / "ops.py"
    catalog.write_text(textwrap.dedent(CATALOG.format(delay=0)))
    try:
        with pytest.raises(OpbenchCheckFailed, match="baseline other-cases has no comparable result on fake_numpy "
                           "for Square / dim=8x16"):
            check_op("Square", "fake_numpy", baseline=empty, catalog=catalog, store=store, budget=0.02)
    finally:
        unload_catalogs()

