"""Engine overhead: the time opbench reports for a trivial op vs a hand-written loop of the same calls.

For each available CPU backend (torch `cpu`, `mlx_cpu`, `jax_cpu` when present) a tiny op (x + 1 on 64
float32 values, the cheapest call a framework makes) is timed twice, alternating, several rounds:
- by `opbench.engine.timing.measure` (the engine, as `opbench run` uses it),
- by a hand-written loop: `for _ in range(N): out = op(x)` (+ the framework's own force per call for lazy MLX),
  one sync at the end, N = 20 000 calls, per-call time = total / N.
Both are summarized by the median over the rounds (rounds alternate, so background load hits both alike).
The ratio engine / hand loop is printed (target <= 1.1). Run: python benchmarks/overhead.py
"""

from __future__ import annotations

import statistics
import time

import numpy as np

from opbench.backends import get_backend
from opbench.engine.timing import TimingSettings, measure

N = 20_000
ROUNDS = 7


def hand_loop(op, x, force, wait) -> float:
    """N calls, the framework's own per-call force where it is lazy, one wait for the result: all timed."""
    t0 = time.perf_counter()
    if force is None:
        for _ in range(N):
            out = op(x)
    else:
        for _ in range(N):
            out = op(x)
            force(out)
    wait(out)
    return time.perf_counter() - t0


def trivial(name: str):
    """(backend, op, native x, the per-call force a careful hand-written loop would use, wait(out)) for a backend."""
    be = get_backend(name)
    be.setup()
    x = be.from_numpy(np.ones(64, dtype=np.float32))
    if be.framework == "mlx":
        import mlx.core as mx

        return be, (lambda a: a + 1), x, mx.async_eval, lambda out: mx.synchronize()
    if be.framework == "jax":
        import jax

        outs: list = []  # JAX's CPU runtime may finish calls out of order: wait on every output, as the engine does

        def keep(out) -> None:
            outs.append(out)

        def wait_all(out) -> None:
            jax.block_until_ready(outs)
            outs.clear()

        return be, jax.jit(lambda a: a + 1), x, keep, wait_all
    return be, (lambda a: a + 1), x, None, lambda out: be.sync()


def main() -> None:
    settings = TimingSettings(budget_s=0.5, min_samples=20, block_s=0.02, rel_ci=0.002)
    print(f"{'backend':10} {'engine µs':>10} {'hand µs':>10} {'ratio':>7}")
    for name in ("cpu", "mlx_cpu", "jax_cpu"):
        try:
            if not get_backend(name).availability().available:
                continue
        except Exception:
            continue
        be, op, x, force, wait = trivial(name)
        engine, hand = [], []
        for _ in range(ROUNDS):
            timing, _ = measure(op, (x,), be, settings)
            engine.append(timing.median_s)
            hand.append(hand_loop(op, x, force, wait) / N)
        e, h = statistics.median(engine), statistics.median(hand)
        print(f"{name:10} {e * 1e6:10.3f} {h * 1e6:10.3f} {e / h:7.3f}")


if __name__ == "__main__":
    main()
