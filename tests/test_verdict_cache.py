"""A bit-identical output reuses the verdict of the one verified before; any other output is verified in full."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from opbench.catalog import Case
from opbench.engine import execute, verdict_cache
from opbench.engine.runner import measure_case
from opbench.engine.timing import TimingSettings
from opbench.testing.fakes import NumpyFake

FAST = TimingSettings(budget_s=0.02, min_samples=3, block_s=0.001, min_warmup_s=0.0)
CASE = Case("Sum", ((256, 64),), axis=0)


@pytest.fixture(autouse=True)
def _private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPBENCH_REFERENCE_CACHE", str(tmp_path / "references"))


def test_a_second_identical_output_gets_the_stored_verdict_without_the_float64_work(
        monkeypatch: pytest.MonkeyPatch) -> None:
    backend = NumpyFake()
    backend.setup()
    first = measure_case(backend, CASE, timing=FAST)
    assert first.status == "ok" and "reference" in first.phases_ms

    def no_reference(*args, **kwargs):
        raise AssertionError("the expectation was loaded for an output verified before")

    monkeypatch.setattr(execute, "expected_for", no_reference)
    second = measure_case(backend, CASE, timing=FAST)
    assert second.status == "ok" and (second.rel_error, second.tolerance) == (first.rel_error, first.tolerance)
    assert "reference" not in second.phases_ms and "verify" in second.phases_ms


def test_an_output_one_bit_off_is_verified_in_full() -> None:
    from opbench.engine.verify import verify

    inputs = CASE.make_inputs()
    good = inputs[0].sum(axis=0)
    bad = good.copy()
    bad[3] = np.nextafter(bad[3], np.float32(np.inf)) * 1.5
    d_good, d_bad = verdict_cache.output_digest(good, "float32"), verdict_cache.output_digest(bad, "float32")
    assert d_good != d_bad
    key = verdict_cache.verdict_key(CASE, "float32", 0, None, d_good)
    verdict_cache.store(key, verify(CASE, inputs, good, "float32"))
    assert verdict_cache.lookup(key).status == "ok"
    assert verdict_cache.lookup(verdict_cache.verdict_key(CASE, "float32", 0, None, d_bad)) is None
    # the mode, seed and element type are part of the key
    assert verdict_cache.verdict_key(CASE, "float32", 0, "TF32 (x)", d_good) != key
    assert verdict_cache.verdict_key(CASE, "float32", 1, None, d_good) != key
    assert verdict_cache.output_digest(good, "bfloat16") != d_good
    assert verdict_cache.output_digest(good.reshape(2, -1), "float32") != d_good


def test_a_wrong_output_stays_wrong_when_seen_again() -> None:
    from opbench.engine.phases import PhaseClock
    from opbench.engine.task import Task

    backend = NumpyFake()
    backend.setup()
    inputs = CASE.make_inputs()
    wrong = inputs[0].sum(axis=0) * 1.01
    task = Task(CASE, backend.name, "float32", 0, FAST)
    verdicts = [execute._verify_reported(backend, task, CASE, inputs, wrong, "float32", PhaseClock()) for _ in "ab"]
    assert [v.status for v in verdicts] == ["wrong", "wrong"] and verdicts[0] == verdicts[1]
