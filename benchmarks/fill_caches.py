"""Fill the input and reference caches for a preset, in parallel, and say how long a first run pays for them.

    PYTHONPATH=src python benchmarks/fill_caches.py [--preset seed] [--dtype float32] [--seed 0] [--jobs N]

Every (case, dtype, seed) gets its inputs (`engine.input_cache`) and its float64 expectation
(`engine.reference_cache`) made once, in `--jobs` processes (default: the CPUs, at most 8); a later
`opbench run` of any backend reads both from the cache. Prints the wall time and the cache sizes: what a
machine's first run of the preset adds to it (a later run, of any backend, reuses them).
"""

from __future__ import annotations

import argparse
import os
import time
from concurrent.futures import ProcessPoolExecutor


def _fill(args: tuple[str, str, str, int]) -> float:
    preset, name, dtype, seed = args
    from opbench.catalog import preset_cases
    from opbench.engine import input_cache, reference_cache

    case = next(c for c in preset_cases(preset) if c.name == name)
    start = time.perf_counter()
    input_cache.prefetch(case, dtype, seed)
    reference_cache.prefetch(case, dtype, seed)
    return time.perf_counter() - start


def _size(path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e9 if path.exists() else 0.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="seed")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=min(8, os.cpu_count() or 1))
    args = parser.parse_args(argv)
    from opbench.catalog import preset_cases
    from opbench.engine import input_cache, reference_cache

    cases = sorted(preset_cases(args.preset), key=lambda c: -input_cache.input_bytes(c, args.dtype))
    start = time.perf_counter()
    with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        seconds = list(pool.map(_fill, [(args.preset, c.name, args.dtype, args.seed) for c in cases]))
    wall = time.perf_counter() - start
    print(f"filled the caches for {len(cases)} cases of {args.preset} ({args.dtype}, seed {args.seed}) in "
          f"{wall:.1f} s with {args.jobs} processes ({sum(seconds):.1f} s of work); inputs "
          f"{_size(input_cache.cache_dir()):.1f} GB in {input_cache.cache_dir()}, references "
          f"{_size(reference_cache.cache_dir()):.1f} GB in {reference_cache.cache_dir()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
