"""The sweep's bookkeeping: sizes, scaled cases, FLOP counts, ratios, budget and memory stops, compile checks."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
import pytest

from opbench.backends import Backend, Prepared
from opbench.catalog import Case
from opbench.errors import UsageError
from opbench.results import CaseResult
from opbench.studies.sweep import (
    SweepPoint,
    SweepSettings,
    memory_need,
    parse_sizes,
    ratios,
    resolve_family,
    run_sweep,
    sweep_case,
)


class NumpyMatMul(Backend):
    """A framework-free backend: NumPy on the CPU, MatMul only. `fail_at` sizes raise MemoryError."""

    name = "numpy_test"
    framework = "numpy"
    builders: ClassVar[dict] = {"MatMul": lambda be, case, args: Prepared(be.matmul, args)}

    def __init__(self, fail_at: int | None = None) -> None:
        self.fail_at = fail_at

    def matmul(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        if self.fail_at is not None and a.shape[0] >= self.fail_at:
            raise MemoryError("out of memory (planted)")
        return a @ b

    def from_numpy(self, a: np.ndarray, dtype: str | None = None) -> Any:
        return a

    def to_numpy(self, x: Any) -> np.ndarray:
        return np.asarray(x)


FAST = SweepSettings(budget_s=0.02, min_samples=3)


def test_parse_sizes() -> None:
    assert parse_sizes("512:2048:512") == [512, 1024, 1536, 2048]
    assert parse_sizes("64,16,64,32") == [16, 32, 64]
    for bad in ("512:8192", "0:10:2", "10:5:1", "a,b", "", "16,-4"):
        with pytest.raises(UsageError):
            parse_sizes(bad)


def test_family_names_are_case_insensitive() -> None:
    assert resolve_family("matmul") == "MatMul" and resolve_family("SOFTMAX") == "Softmax"
    with pytest.raises(UsageError, match="valid choices"):
        resolve_family("matmull")


def test_sweep_cases_and_flop_counts() -> None:
    mm = sweep_case("MatMul", 512)
    assert mm.shapes == ((512, 512), (512, 512)) and mm.flops == 2 * 512**3
    assert mm.bytes_moved("float32") == 3 * 512 * 512 * 4
    soft = sweep_case("Softmax", 16)  # the seed's first Softmax case is 64x1000000, axis -1
    assert soft.shapes == ((16, 1000000),) and soft.axis == -1 and soft.flops == 5 * 16 * 1000000
    bce = sweep_case("BCE", 1000)  # coupled inputs scale together
    assert bce.shapes == ((1000,), (1000,))
    lin = sweep_case("Linear", 10)  # the weight (another rank) keeps its shape
    assert lin.shapes == ((10, 1024, 32), (32, 1024), (1024,))


def _point(size: int, backend: str, ms: float | None) -> SweepPoint:
    res = CaseResult(case=f"c{size}", family="MatMul", backend=backend, dtype="float32",
                     status="ok" if ms else "skipped", samples_ms=(ms,) * 3 if ms else (), flops=2 * size**3,
                     bytes=12 * size**2)
    return SweepPoint(size, res)


def test_ratios_and_rates() -> None:
    points = [_point(100, "cpu", 8.0), _point(100, "cuda", 2.0), _point(200, "cpu", 40.0), _point(200, "cuda", None)]
    r = ratios(points, "cpu")
    assert r[(100, "cuda")] == pytest.approx(4.0) and r[(100, "cpu")] == pytest.approx(1.0)
    assert math.isnan(r[(200, "cuda")])
    assert points[1].gflops == pytest.approx(2 * 100**3 / 2e-3 / 1e9)
    assert points[1].gbs == pytest.approx(12 * 100**2 / 2e-3 / 1e9)
    d = points[1].to_dict()
    assert d["size"] == 100 and d["gflops"] == pytest.approx(points[1].gflops)
    assert SweepPoint.from_dict(d).result == points[1].result


def test_sweep_measures_verifies_and_stops_on_budget() -> None:
    seen: list[SweepPoint] = []
    points = run_sweep("MatMul", [8, 16, 4096, 8192], [NumpyMatMul()], FAST, on_point=seen.append)
    assert seen == points and [p.size for p in points] == [8, 16, 4096, 8192]
    assert [p.result.status for p in points[:2]] == ["ok", "ok"]
    assert all(p.result.rel_error is not None and p.result.rel_error <= p.result.tolerance for p in points[:2])
    assert points[1].result.flops == 2 * 16**3
    # 4096 is predicted from 16 by the FLOP ratio (4096/16)^3 = 16.8M: far over a 20 ms budget
    assert points[2].result.status == "skipped" and "over budget" in points[2].result.error
    assert points[3].result.status == "skipped" and "already over budget" in points[3].result.error


def test_resumed_points_are_not_measured_again_but_keep_the_budget_and_stops() -> None:
    first = run_sweep("MatMul", [8, 16, 4096], [NumpyMatMul()], FAST)
    # resume after 8 and 16: 4096 is predicted from the replayed 16 and skipped without being measured
    again = run_sweep("MatMul", [8, 16, 4096], [NumpyMatMul()], FAST, done=first[:2])
    assert [p.size for p in again] == [4096] and again[0].result.status == "skipped"
    assert "predicted" in again[0].result.error and "from size 16" in again[0].result.error
    # a replayed stop stops the larger sizes too
    later = run_sweep("MatMul", [8, 16, 4096, 8192], [NumpyMatMul()], FAST, done=first)
    assert [(p.size, p.result.status) for p in later] == [(8192, "skipped")]
    assert "size 4096 was already skipped" in later[0].result.error


def test_sweep_skips_what_does_not_fit_in_memory() -> None:
    be = NumpyMatMul()
    need = memory_need(sweep_case("MatMul", 64), "float32", be)
    assert need.device == 0 and need.host >= 3 * 64 * 64 * 4
    points = run_sweep("MatMul", [8, 64, 128], [be], FAST, host_free=lambda: need.host)  # 64 needs > 90% of it
    assert [p.result.status for p in points] == ["ok", "skipped", "skipped"]
    assert "does not fit in memory" in points[1].result.error and "GiB" in points[1].result.error


def test_sweep_records_oom_and_stops_that_backend() -> None:
    points = run_sweep("MatMul", [8, 16, 32], [NumpyMatMul(fail_at=16)], FAST)
    assert [p.result.status for p in points] == ["ok", "oom", "skipped"]
    assert "ran out of memory" in points[2].result.error


def test_dynamo_fallback_detection() -> None:
    from opbench.backends.torch import dynamo_fell_back

    assert not dynamo_fell_back({"frames": {"total": 3, "ok": 3}})
    assert dynamo_fell_back({"frames": {"total": 9, "ok": 8}})
    assert dynamo_fell_back({"frames": {"total": 1, "ok": 1},
                             "unimplemented": {"Dynamo recompile limit exceeded\n ...": 1}})


def _dynamo_cpu(reset: bool) -> Backend:
    """torch CPU with dynamo (backend="eager": no inductor, fast), with or without the per-case reset."""
    torch = pytest.importorskip("torch")
    from opbench.backends.torch import TorchCPU

    class DynamoCPU(TorchCPU):
        name = "cpu_dynamo_test"
        compiled = True

        def compile(self, op):
            if reset:
                torch._dynamo.reset()
            return torch.compile(op, backend="eager", dynamic=False)

    torch._dynamo.reset()
    be = DynamoCPU()
    be.setup()
    return be


def test_compiled_sweep_never_reports_an_eager_fallback_as_compiled() -> None:
    torch = pytest.importorskip("torch")
    sizes = [8, 16, 24]
    with torch._dynamo.config.patch(recompile_limit=1):
        good = run_sweep("MatMul", sizes, [_dynamo_cpu(reset=True)], FAST)
        bad = run_sweep("MatMul", sizes, [_dynamo_cpu(reset=False)], FAST)
    torch._dynamo.reset()
    assert [p.result.status for p in good] == ["ok"] * 3
    assert all(p.compile["graphs"] == 1 and not p.compile["fell_back_to_eager"] for p in good)
    # without the reset, the shared op hits the recompile limit: those points are errors with no time
    fell = [p for p in bad if p.compile.get("fell_back_to_eager")]  # a point skipped over budget has no record
    assert fell and all(p.result.status == "error" and not p.result.samples_ms for p in fell)
    assert "fell back to eager" in fell[0].result.error


def test_unknown_case_template_names_the_choices() -> None:
    from opbench.studies.sweep import template_case

    assert template_case("Softmax", "Softmax / dim=1000000x64 axi=-1") == Case("Softmax", ((1000000, 64),), -1,
                                                                               frozenset({"seed"}))
    with pytest.raises(UsageError, match="valid choices"):
        template_case("Softmax", "Softmax / dim=1x2")


def test_sweep_cli_writes_json_table_and_plots(tmp_path) -> None:
    import json
    import os
    import subprocess
    import sys

    pytest.importorskip("torch")
    pytest.importorskip("mlx")
    env = {**os.environ, "OPBENCH_DATA_DIR": str(tmp_path / "data"), "OPBENCH_STORE": str(tmp_path / "s.sqlite")}
    out = tmp_path / "sweep"
    proc = subprocess.run([sys.executable, "-m", "opbench", "sweep", "matmul", "--sizes", "16,32", "--backends",
                           "cpu,mlx_cpu", "--budget", "0.02", "--min-samples", "3", "--out", str(out),
                           "--format", "md"], capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    data = json.loads((out / "sweep.json").read_text())
    assert data["format"] == "opbench-sweep" and data["family"] == "MatMul" and data["baseline"] == "cpu"
    points = {(p["size"], p["backend"]): p for p in data["points"]}
    assert sorted(points) == [(16, "cpu"), (16, "mlx_cpu"), (32, "cpu"), (32, "mlx_cpu")]
    for (size, _), p in points.items():
        assert p["status"] == "ok" and p["flops"] == 2 * size**3 and p["gflops"] > 0
        assert p["roofline"]["pct_of_peak"] is None  # no calibration in this data dir
        expected = points[(size, "cpu")]["median_ms"] / p["median_ms"]
        assert p["ratio_vs_baseline"] == pytest.approx(expected)
    assert "| 32" in proc.stdout and "× cpu" in proc.stdout
    for name in ("improvement", "time", "gflops", "gbs"):
        assert (out / f"{name}.png").stat().st_size > 10_000
    # --render draws a saved sweep again, measuring nothing (same table, pictures recreated)
    for name in ("sweep.md", "improvement.png", "time.png", "gflops.png", "gbs.png"):
        (out / name).unlink()
    again = subprocess.run([sys.executable, "-m", "opbench", "sweep", "--render", str(out), "--format", "md"],
                           capture_output=True, text=True, timeout=300, env=env)
    assert again.returncode == 0, again.stderr
    assert again.stdout == proc.stdout and json.loads((out / "sweep.json").read_text()) == data
    for name in ("improvement", "time", "gflops", "gbs"):
        assert (out / f"{name}.png").stat().st_size > 10_000


@pytest.mark.parametrize("content", ["", "{not json", '{"format": "opbench-sweep", "schema_version": 1}'])
def test_render_of_a_missing_or_corrupt_sweep_is_one_line_and_exit_2(tmp_path, content: str) -> None:
    import subprocess
    import sys

    target = tmp_path / "sweep.json"
    if content:
        target.write_text(content)
    proc = subprocess.run([sys.executable, "-m", "opbench", "sweep", "--render", str(target if content else
                           tmp_path / "nowhere")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_sweep_without_a_family_or_render_is_one_line_and_exit_2() -> None:
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "opbench", "sweep"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "FAMILY" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_resume_measures_only_the_missing_points_with_the_saved_settings(tmp_path) -> None:
    import json
    import os
    import subprocess
    import sys

    pytest.importorskip("torch")
    env = {**os.environ, "OPBENCH_DATA_DIR": str(tmp_path / "data")}
    out = tmp_path / "sweep"

    def opbench(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "opbench", "sweep", *args], capture_output=True, text=True,
                              timeout=300, env=env)

    proc = opbench("matmul", "--sizes", "16,32,48", "--backends", "cpu", "--budget", "0.02", "--min-samples", "3",
                   "--out", str(out), "--format", "md")
    assert proc.returncode == 0, proc.stderr
    full = json.loads((out / "sweep.json").read_text())
    (out / "sweep.json").write_text(json.dumps({**full, "points": full["points"][:1]}))  # as if cut off
    proc = opbench("--resume", str(out), "--format", "md")
    assert proc.returncode == 0, proc.stderr
    assert "(resumed)" in proc.stderr and "2 points to measure" in " ".join(proc.stderr.split())
    resumed = json.loads((out / "sweep.json").read_text())
    assert resumed["id"] == full["id"] and resumed["budget_s"] == 0.02 and resumed["sizes"] == [16, 32, 48]
    assert [(p["size"], p["backend"]) for p in resumed["points"]] == [(16, "cpu"), (32, "cpu"), (48, "cpu")]
    assert resumed["points"][0]["samples_ms"] == full["points"][0]["samples_ms"]  # kept, not re-measured
    # a loaded machine can make the size predictor skip the largest point at this tiny budget: that is a verdict too
    assert all(p["status"] == "ok" or (p["status"] == "skipped" and "over budget" in p["error"])
               for p in resumed["points"]), [(p["status"], p.get("error")) for p in resumed["points"]]

    foreign = {**resumed, "machine": {**resumed["machine"], "cpu_model": "another CPU"}}
    (out / "sweep.json").write_text(json.dumps(foreign))
    proc = opbench("--resume", str(out))
    assert proc.returncode == 2 and "another machine" in proc.stderr and "Traceback" not in proc.stderr
