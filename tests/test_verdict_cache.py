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


class _FingerprintFake(NumpyFake):
    """A NumPy backend with a device fingerprint (the NumPy-like one CuPy uses), counting its copies to the host;
    `plant` makes its Sum output one bit off."""

    name = "fake_fingerprint"
    plant = False

    def __init__(self) -> None:
        self.copies = 0

    def output_fingerprint(self, x):
        from opbench.backends._fingerprint import xp_fingerprint

        return xp_fingerprint(np, x, "numpy", np.asarray)

    def to_numpy(self, x):
        self.copies += 1
        return np.asarray(x)

    def prepare(self, case, inputs, dtype=None):
        prepared = super().prepare(case, inputs, dtype)
        if not self.plant:
            return prepared

        def one_bit_off(out):
            out = np.array(out)
            out.reshape(-1).view(np.uint32)[5] ^= np.uint32(1 << 22)
            return out

        prepared.canonical = one_bit_off
        return prepared


def test_pass_two_takes_the_verdict_from_the_device_fingerprint_without_a_copy(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(verdict_cache, "FINGERPRINT_MIN_BYTES", 0)
    backend = _FingerprintFake()
    backend.setup()
    first = measure_case(backend, CASE, timing=FAST)
    assert first.status == "ok" and backend.copies == 1
    assert verdict_cache.FINGERPRINT_HITS not in first.conditions

    def no_host_work(*args, **kwargs):
        raise AssertionError("an output with a known fingerprint was copied, hashed or checked")

    monkeypatch.setattr(verdict_cache, "output_digest", no_host_work)
    monkeypatch.setattr(execute, "expected_for", no_host_work)
    second = measure_case(backend, CASE, timing=FAST)
    assert backend.copies == 1  # no to_numpy
    assert second.status == "ok" and (second.rel_error, second.tolerance) == (first.rel_error, first.tolerance)
    assert second.conditions[verdict_cache.FINGERPRINT_HITS] == 1
    assert "reference" not in second.phases_ms and "verify" in second.phases_ms
    monkeypatch.undo()

    # a planted wrong output (one bit off) has another fingerprint: copied, verified in full, wrong
    monkeypatch.setattr(verdict_cache, "FINGERPRINT_MIN_BYTES", 0)
    backend.plant = True
    third = measure_case(backend, CASE, timing=FAST)
    assert backend.copies == 2 and third.status == "wrong" and "reference" in third.phases_ms
    assert verdict_cache.FINGERPRINT_HITS not in third.conditions
    # ... and stays wrong from its own fingerprint when seen again (a stored wrong verdict, still no `ok`)
    fourth = measure_case(backend, CASE, timing=FAST)
    assert backend.copies == 2 and fourth.status == "wrong" and fourth.conditions[verdict_cache.FINGERPRINT_HITS] == 1


def test_small_outputs_and_adapters_without_a_fingerprint_keep_the_host_path() -> None:
    backend = _FingerprintFake()  # CASE's output (64 float32) is under FINGERPRINT_MIN_BYTES
    backend.setup()
    for _ in "ab":
        result = measure_case(backend, CASE, timing=FAST)
        assert result.status == "ok" and verdict_cache.FINGERPRINT_HITS not in result.conditions
    assert backend.copies == 2
    plain = NumpyFake()  # Backend.output_fingerprint: None
    plain.setup()
    assert plain.output_fingerprint(np.ones(3)) is None


def test_fingerprint_hits_are_counted_over_passes() -> None:
    from opbench.engine.telemetry import merge

    hit = {verdict_cache.FINGERPRINT_HITS: 1}
    assert merge(merge({}, hit), hit)[verdict_cache.FINGERPRINT_HITS] == 2
    assert verdict_cache.FINGERPRINT_HITS not in merge({}, {})
