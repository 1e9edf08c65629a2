"""The input cache: inputs made once per (case, dtype, seed), shared by processes, bounded, keyed by the code."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import numpy as np
import pytest

from opbench.catalog import Case
from opbench.engine import input_cache

BIG = Case("Sum", ((1100, 1024),), axis=0)  # 4.3 MB of float32: over MIN_CACHED_BYTES
SMALL = Case("Sum", ((8, 8),), axis=0)


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("OPBENCH_INPUT_CACHE", str(tmp_path / "inputs"))
    monkeypatch.delenv("OPBENCH_INPUT_CACHE_MB", raising=False)
    return tmp_path / "inputs"


def _entries(root: Path) -> list[Path]:
    return [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")] if root.exists() else []


def test_a_hit_maps_the_stored_arrays_bit_for_bit(cache: Path) -> None:
    made = input_cache.case_inputs(BIG, "float32", 3)
    assert len(_entries(cache)) == 1
    hit = input_cache.case_inputs(BIG, "float32", 3)
    assert all(np.array_equal(a, b) and a.dtype == b.dtype for a, b in zip(made, BIG.make_inputs("float32", 3)))
    assert all(np.array_equal(a, b) for a, b in zip(hit, made))
    assert isinstance(hit[0].base, np.memmap) or isinstance(hit[0], np.memmap)
    hit[0][0, 0] = 1e9  # copy-on-write: the stored entry is unchanged
    assert input_cache.case_inputs(BIG, "float32", 3)[0][0, 0] == made[0][0, 0]
    private = input_cache.case_inputs(BIG, "float32", 3, private=True)
    assert not isinstance(private[0], np.memmap) and not isinstance(private[0].base, np.memmap)
    assert np.array_equal(private[0], made[0]) and private[0].ctypes.data % input_cache.ALIGNMENT == 0


@pytest.mark.parametrize("array", [np.arange(24, dtype=np.float32).reshape(2, 3, 4), np.full((), 3.5),
                                   np.asfortranarray(np.arange(12.0).reshape(3, 4)), np.zeros((0, 5), np.int64),
                                   np.arange(7, dtype=np.int8), np.ones((3, 5), np.float16)],
                         ids=["3d", "0d", "fortran", "empty", "int8", "float16"])
def test_a_private_read_is_the_stored_array_in_aligned_memory(array: np.ndarray, tmp_path: Path) -> None:
    np.save(tmp_path / "0.npy", array)
    got = input_cache.read_private(tmp_path / "0.npy")
    assert got.shape == array.shape and got.dtype == array.dtype and np.array_equal(got, array)
    assert got.flags.writeable and got.flags.f_contiguous == array.flags.f_contiguous
    if got.size:
        assert got.ctypes.data % input_cache.ALIGNMENT == 0


def test_a_truncated_entry_read_privately_is_regenerated(cache: Path) -> None:
    made = input_cache.case_inputs(BIG, "float32", 0)
    entry = cache / input_cache.entry_key(BIG, "float32", 0) / "0.npy"
    entry.write_bytes(entry.read_bytes()[:-100])
    again = input_cache.case_inputs(BIG, "float32", 0, private=True)
    assert np.array_equal(again[0], made[0])


def test_keys_differ_by_seed_dtype_and_code(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    keys = {input_cache.entry_key(BIG, "float32", 0), input_cache.entry_key(BIG, "float32", 1),
            input_cache.entry_key(BIG, "float16", 0)}
    assert len(keys) == 3
    before = input_cache.entry_key(BIG, "float32", 0)
    monkeypatch.setattr(input_cache, "code_digest", lambda: "another-catalog")
    assert input_cache.entry_key(BIG, "float32", 0) != before


def test_small_inputs_and_a_zero_bound_are_not_cached(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    input_cache.case_inputs(SMALL, "float32", 0)
    assert _entries(cache) == []
    monkeypatch.setenv("OPBENCH_INPUT_CACHE_MB", "0")
    input_cache.case_inputs(BIG, "float32", 0)
    assert _entries(cache) == []


def test_the_bound_evicts_the_least_recently_used(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPBENCH_INPUT_CACHE_MB", "6")  # room for one 4.3 MB entry
    input_cache.case_inputs(BIG, "float32", 0)
    input_cache.case_inputs(BIG, "float32", 1)
    assert [p.name for p in _entries(cache)] == [input_cache.entry_key(BIG, "float32", 1)]


def test_a_broken_entry_is_regenerated_not_trusted(cache: Path) -> None:
    made = input_cache.case_inputs(BIG, "float32", 0)
    entry = cache / input_cache.entry_key(BIG, "float32", 0)
    (entry / "0.npy").write_bytes(b"garbage")
    again = input_cache.case_inputs(BIG, "float32", 0)
    assert np.array_equal(again[0], made[0])


def test_an_unwritable_cache_still_gives_inputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("OPBENCH_INPUT_CACHE", str(blocker / "inputs"))
    assert np.array_equal(input_cache.case_inputs(BIG, "float32", 0)[0], BIG.make_inputs("float32", 0)[0])


def _generate(root: str, seed: int, queue) -> None:  # in a spawned process
    import os

    os.environ["OPBENCH_INPUT_CACHE"] = root
    from opbench.catalog import Case as C
    from opbench.engine import input_cache as ic

    calls = []
    original = C.make_inputs

    def counting(self, dtype="float32", seed=0):
        calls.append(1)
        return original(self, dtype, seed)

    C.make_inputs = counting
    arrays = ic.case_inputs(C("Sum", ((1100, 1024),), axis=0), "float32", seed)
    queue.put((len(calls), float(arrays[0].sum())))


def test_concurrent_processes_generate_an_entry_once(cache: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_generate, args=(str(cache), 7, queue)) for _ in range(3)]
    for p in procs:
        p.start()
    got = [queue.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(60)
    assert sum(n for n, _ in got) == 1  # one generated it, the others waited on its lock and read it
    assert len({s for _, s in got}) == 1 and len(_entries(cache)) == 1


def test_prefetch_fills_the_cache_without_returning_arrays(cache: Path) -> None:
    input_cache.prefetch(BIG, "float32", 5)
    assert [p.name for p in _entries(cache)] == [input_cache.entry_key(BIG, "float32", 5)]
    input_cache.prefetch(BIG, "float32", 5)  # already there: nothing to do
    assert len(_entries(cache)) == 1


def test_prefetcher_stays_a_window_ahead_and_stops(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from opbench.engine import prefetch
    from opbench.engine.prefetch import Prefetcher

    monkeypatch.setattr(prefetch, "MIN_FREE_BYTES", 0)  # this test's cases are small; the machine may be full

    cases = [Case("Sum", ((1100, 1024),), axis=0), Case("Sum", ((1100, 1025),), axis=0),
             Case("Sum", ((1100, 1026),), axis=0), Case("Sum", ((1100, 1027),), axis=0)]
    with Prefetcher(cases, "float32", 0, ahead=1) as ahead:
        deadline = __import__("time").monotonic() + 60
        while ahead.done < 2 and __import__("time").monotonic() < deadline:
            __import__("time").sleep(0.01)
        __import__("time").sleep(0.2)
        assert ahead.done == 2  # cases 0 and 1: one ahead of the case being measured (0)
        ahead.advance(cases[3])
    assert len(_entries(cache)) >= 2


def test_a_gpu_backend_gets_its_inputs_made_ahead_and_its_next_worker_prestarted(cache: Path) -> None:
    from opbench.backends import register
    from opbench.engine.runner import Plan, run_plan
    from opbench.engine.timing import TimingSettings

    register("fake_gpu", "opbench.testing.fakes:OffHostFake")
    cases = (Case("Sum", ((1100, 1024),), axis=0), Case("Sum", ((1100, 1024),), axis=1), Case("ReLU", ((64, 64),)))
    timing = TimingSettings(budget_s=0.03, min_samples=3, block_s=0.002, min_warmup_s=0.0)
    results = run_plan(Plan(cases, ("fake_gpu",), timing=timing, processes=3))
    assert [r.status for r in results] == ["ok"] * 3 and all(len(r.unit_sizes) == 3 for r in results)
    assert len(_entries(cache)) == 2  # the two Sum cases (ReLU's input is too small to cache)
    first = results[0].phases_ms
    assert first["worker_start"] > 0 and first["wall"] >= first["worker_start"]
    assert all("worker_start" not in r.phases_ms for r in results[1:])  # one start per pass, charged to case 0


def test_the_default_bound_is_capped_by_the_free_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil
    from collections import namedtuple

    from opbench.engine import disk_cache

    monkeypatch.delenv("OPBENCH_X_MB", raising=False)
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(100 << 30, 60 << 30, 40 << 30))
    assert disk_cache.bound("OPBENCH_X_MB", 16384, tmp_path / "missing" / "dir") == 10 << 30  # a quarter of 40 GB
    assert disk_cache.bound("OPBENCH_X_MB", 1024, tmp_path) == 1 << 30  # the default when it is smaller
    monkeypatch.setenv("OPBENCH_X_MB", "50000")
    assert disk_cache.bound("OPBENCH_X_MB", 1024, tmp_path) == 50000 << 20  # the user's setting wins


def test_the_cache_key_follows_the_code_not_its_docstrings_or_comments(tmp_path: Path) -> None:
    """A docstring edit of `input_cache.py` once emptied the input cache (73.8 s of inputs in the next mlx_cpu
    suite); the key digests the syntax tree without docstrings, so only a change of code makes new keys."""
    from opbench.engine.disk_cache import code_digest

    base = 'def make(n):\n    """Inputs of n."""\n    return n + 1  # one more\n\nclass C:\n    """A class."""\n'
    edits = {
        "docstring": base.replace("Inputs of n.", "The inputs of n, now documented."),
        "comment": base.replace("# one more", "# the next one"),
        "code": base.replace("n + 1", "n + 2"),
        "empty body": base.replace('    """A class."""\n', '    """A class."""\n    x = 1\n'),
    }
    (tmp_path / "a.py").write_text(base)
    before = code_digest([tmp_path / "a.py"], "numpy 2")
    after = {}
    for name, text in edits.items():
        (tmp_path / "a.py").write_text(text)
        after[name] = code_digest([tmp_path / "a.py"], "numpy 2")
    assert after["docstring"] == before and after["comment"] == before
    assert after["code"] != before and after["empty body"] != before
    (tmp_path / "a.py").write_text(base)
    assert code_digest([tmp_path / "a.py"], "numpy 3") != before  # NumPy's version is part of it


def test_a_files_code_digest_is_memoized_by_its_path_size_and_time(tmp_path: Path) -> None:
    """A second process reads the digest back instead of parsing the file again; a changed file is parsed."""
    import os

    from opbench.engine.disk_cache import file_code_digest

    src, memo = tmp_path / "a.py", tmp_path / "memo"
    src.write_text("x = 1\n")
    first = file_code_digest(src, memo)
    assert first == file_code_digest(src) and len(list(memo.iterdir())) == 1
    (next(memo.iterdir())).write_text("f" * 64)  # a planted memo is what a later call reads: no parse
    assert file_code_digest(src, memo) == "f" * 64
    src.write_text("x = 2\n")
    os.utime(src, ns=(1, 2))  # another size or time: a new memo entry, the real digest
    assert file_code_digest(src, memo) == file_code_digest(src) != first


def test_the_code_digest_memos_are_bounded_oldest_written_first(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Every edit of a digested file leaves a memo; beyond `MAX_MEMOS` the oldest written go."""
    import os

    from opbench.engine import disk_cache

    memo = tmp_path / "memo"
    memo.mkdir()
    for i in range(5):  # five earlier edits' memos, oldest first
        (memo / f"old{i}").write_text("0" * 64)
        os.utime(memo / f"old{i}", ns=(i + 1, i + 1))
    monkeypatch.setattr(disk_cache, "MAX_MEMOS", 3)
    src = tmp_path / "a.py"
    src.write_text("x = 1\n")
    digest = disk_cache.file_code_digest(src, memo)  # writes a sixth, the newest
    assert sorted(p.name for p in memo.iterdir() if p.name.startswith("old")) == ["old3", "old4"]
    assert len(list(memo.iterdir())) == 3 and digest == disk_cache.file_code_digest(src, memo)
