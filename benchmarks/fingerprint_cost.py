"""What a device fingerprint costs against the host path it replaces, and whether it is right on the device.

    PYTHONPATH=src python benchmarks/fingerprint_cost.py [--backends cuda,cupy,jax_gpu,mlx_gpu] [--json out.json]
    PYTHONPATH=src python benchmarks/fingerprint_cost.py --backends cpu,jax_cpu,mlx_cpu,numpy --direct --no-large

Per backend (skipped with its reason when unavailable), for float32 outputs of 64x128x1024 (32 MiB) and
1024x1024x256 (1 GiB):
- `fingerprint`: `Backend.output_fingerprint` (first call apart: JAX compiles it once per shape), median of 5;
- `host path`: what it replaces, `to_numpy` (the device-to-host copy) then `verdict_cache.output_digest`
  (BLAKE2b in the verification pool), median of 5;
and checks, on small arrays of float32/float16/bfloat16/int32/bool/0-d/empty, that the device's sums equal
those of the NumPy implementation over the same bits brought back (bfloat16: the bits through a uint16 view on
the device side; the NumPy side reads the same words) and that one flipped bit changes the fingerprint.

`--direct` calls the adapters' fingerprint functions even where the backend returns None (CPU backends), to
measure the CPU versions of the frameworks.
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

SHAPES = {"32 MiB": (64, 128, 1024), "1 GiB": (1024, 1024, 256)}


def _direct(backend: Any) -> Any:
    """The adapter's fingerprint function itself (also on a CPU backend, which returns None by design)."""
    framework = backend.framework
    if framework == "torch":
        from opbench.backends.torch import torch_fingerprint

        return torch_fingerprint
    if framework == "jax":
        from opbench.backends.jax import jax_fingerprint

        return jax_fingerprint
    if framework == "mlx":
        from opbench.backends.mlx import mlx_fingerprint

        return mlx_fingerprint
    from opbench.backends._fingerprint import xp_fingerprint

    xp = backend.namespace().xp
    return lambda x: xp_fingerprint(xp, x, framework, lambda a: np.asarray(a.get() if hasattr(a, "get") else a))


@functools.cache
def _array(shape: tuple[int, ...]) -> np.ndarray:
    return np.random.default_rng(1).standard_normal(shape, dtype=np.float32)


def _host_path(backend: Any, x: Any) -> str:
    from opbench.engine.verdict_cache import output_digest

    return output_digest(backend.to_numpy(x), backend.dtype_name(x))


def _median_ms(fn: Any, repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def check(backend: Any, fingerprint: Any) -> list[str]:
    """Problems found (empty: the device agrees with NumPy on every array and sees a flipped bit)."""
    from opbench.backends._fingerprint import xp_fingerprint

    problems = []
    rng = np.random.default_rng(0)
    base = (rng.standard_normal((33, 65)) * 10).astype(np.float32)
    arrays = {"float32": (base, None), "float16": (base, "float16"), "int32": (base.astype(np.int32), None),
              "bool": (base > 0, None), "0-d": (np.array(base[1, 1]), None), "empty": (base[:0], None)}
    if "bfloat16" not in backend.unsupported_dtypes:
        arrays["bfloat16"] = (base, "bfloat16")
    for label, (a, dtype) in arrays.items():
        x = backend.from_numpy(a, dtype) if dtype else backend.from_numpy(a)
        got = fingerprint(x)
        host = backend.to_numpy(x)
        if dtype == "bfloat16":  # to_numpy widens bfloat16 to float32: its upper halves are the bfloat16 words
            host = (host.view(np.uint32) >> 16).astype(np.uint16).view(np.int16)
        elif dtype:
            host = host.astype(dtype)
        want = xp_fingerprint(np, host, "numpy", np.asarray)
        if got is None or got.rsplit("|", 1)[1] != want.rsplit("|", 1)[1]:
            problems.append(f"{label}: device {got} != host {want}")
        if a.size:
            flipped = np.array(a)
            flipped.reshape(-1).view(np.uint8)[a.size * a.itemsize // 2] ^= np.uint8(4)
            y = backend.from_numpy(flipped, dtype) if dtype else backend.from_numpy(flipped)
            if fingerprint(y) == got:
                problems.append(f"{label}: a flipped bit left the fingerprint unchanged")
    return problems


def measure(name: str, direct: bool) -> dict[str, Any]:
    from opbench.backends import get_backend
    backend = get_backend(name)
    available = backend.availability()
    if not available.available:
        return {"backend": name, "skipped": available.reason}
    backend.setup()
    fingerprint = _direct(backend) if direct else backend.output_fingerprint
    if fingerprint(backend.from_numpy(np.ones(4, np.float32))) is None:
        return {"backend": name, "skipped": "no device fingerprint (output_fingerprint is None: --direct measures "
                                            "the adapter's function anyway)"}
    row: dict[str, Any] = {"backend": name, "problems": check(backend, fingerprint)}
    for label, shape in SHAPES.items():
        try:
            x = backend.from_numpy(_array(shape))
            start = time.perf_counter()
            first = fingerprint(x)
            row[f"{label} first_ms"] = (time.perf_counter() - start) * 1e3
            row[f"{label} fingerprint_ms"] = _median_ms(functools.partial(fingerprint, x))
            row[f"{label} host_path_ms"] = _median_ms(functools.partial(_host_path, backend, x))
            row[f"{label} fingerprint"] = first
            del x
        except Exception as exc:  # e.g. out of memory for the 1 GiB array on a small machine
            row[f"{label} error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
        backend.release()
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="cuda,cupy,jax_gpu,mlx_gpu")
    parser.add_argument("--direct", action="store_true", help="the adapters' functions, also on CPU backends")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--no-large", action="store_true", help="skip the 1 GiB output (small machines)")
    args = parser.parse_args(argv)
    if args.no_large:
        del SHAPES["1 GiB"]
    rows = []
    for name in args.backends.split(","):
        try:
            row = measure(name, args.direct)
        except Exception as exc:
            row = {"backend": name, "error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"}
        rows.append(row)
        print(json.dumps(row), flush=True)
    print("| backend | output | fingerprint first ms | fingerprint ms | host path (copy + BLAKE2b) ms | check |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        if "skipped" in row or "error" in row:
            print(f"| {row['backend']} | | | | | {row.get('skipped') or row.get('error')} |")
            continue
        verdict = "ok" if not row["problems"] else "; ".join(row["problems"])
        for label in SHAPES:
            if f"{label} error" in row:
                print(f"| {row['backend']} | {label} | | | | {row[f'{label} error']} |")
                continue
            first, median, host = (row[f"{label} {k}_ms"] for k in ("first", "fingerprint", "host_path"))
            print(f"| {row['backend']} | {label} | {first:.2f} | {median:.2f} | {host:.1f} | {verdict} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    return 0 if all(not r.get("problems") for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
