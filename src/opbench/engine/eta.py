"""How long the rest of a run will take, from each case's cost and what this machine has shown so far.

Counting finished cases is a poor clock: a 1 ms ReLU and a 28 s matmul are one step each, so a count-based
ETA jumps by hours whenever the kind of case changes. Here each pending item has a *work* figure (its FLOP
count plus its bytes moved, the two costs the catalog knows) and a case's wall time is modelled as
`fixed + work / rate`: `fixed` is what every case pays whatever its size (worker round trip, the timing
engine's budget, verification set-up) and `rate` how much work per second the backend gets through.
Both are fitted per backend by non-negative least squares on the cases it has finished (scipy's `nnls`),
falling back to the fit over all backends, then to the prior given by the caller, while a backend has too
few finished cases.

Worker start-ups (spawn, framework import, device setup) are per pass, not per case, so they stay out of the
fit: each case's wall time is taken from its recorded phases (`opbench.engine.phases`: the round trip less
`worker_start`), and `StartCosts` adds the start-ups still to come at the mean each backend has shown.

Trade-off: FLOPs and bytes are added as if one byte cost one FLOP; a per-term fit would need more finished
cases than an early estimate has. The fit is refitted after every case, so an ETA moves as the machine shows
its speed, but smoothly: no single case's wall time dominates a least-squares fit over many.
"""

from __future__ import annotations

from collections.abc import Hashable

import numpy as np

MIN_FIT_POINTS = 3


class CostModel:
    """Fits `seconds ≈ fixed + work · per_work` per group (a backend) from finished items."""

    def __init__(self, prior_fixed_s: float, prior_work_per_s: float = 1e9) -> None:
        self._prior = (prior_fixed_s, 1.0 / prior_work_per_s)
        self._seen: dict[Hashable, list[tuple[float, float]]] = {}
        self._fits: dict[Hashable | None, tuple[float, float]] = {}

    def finished(self, group: Hashable, work: float, seconds: float) -> None:
        """Record that an item of `work` in `group` took `seconds`."""
        self._seen.setdefault(group, []).append((float(work), max(0.0, float(seconds))))
        self._fits.clear()

    def seconds(self, group: Hashable, work: float) -> float:
        """The predicted wall time of one item."""
        fixed, per_work = self._fit(group)
        return fixed + work * per_work

    def remaining(self, pending: list[tuple[Hashable, float]]) -> float:
        """The predicted wall time of every pending (group, work) item."""
        return sum(self.seconds(group, work) for group, work in pending)

    def _fit(self, group: Hashable | None) -> tuple[float, float]:
        if group not in self._fits:
            points = self._seen.get(group, []) if group is not None else [p for ps in self._seen.values() for p in ps]
            if len(points) >= MIN_FIT_POINTS:
                self._fits[group] = _nnls(points)
            elif group is not None:
                self._fits[group] = self._fit(None)
            else:
                self._fits[group] = self._prior if not points else (float(np.mean([s for _, s in points])), 0.0)
        return self._fits[group]


def _nnls(points: list[tuple[float, float]]) -> tuple[float, float]:
    from scipy.optimize import nnls

    work = np.array([w for w, _ in points])
    seconds = np.array([s for _, s in points])
    scale = max(float(work.max()), 1.0)  # keep the two columns of the system on comparable scales
    (fixed, per_scaled), _ = nnls(np.column_stack([np.ones_like(work), work / scale]), seconds)
    return float(fixed), float(per_scaled / scale)


class StartCosts:
    """Worker start-ups still to come per backend and what one has cost there (else anywhere, else a prior)."""

    def __init__(self, left: dict[Hashable, int], prior_s: float = 3.0) -> None:
        self.left = dict(left)
        self.prior_s = prior_s
        self._seen: dict[Hashable, list[float]] = {}

    def started(self, group: Hashable, seconds: float) -> None:
        """A worker of `group` started, taking `seconds`."""
        self._seen.setdefault(group, []).append(max(0.0, float(seconds)))
        self.left[group] = max(0, self.left.get(group, 0) - 1)

    def seconds(self, group: Hashable) -> float:
        own = self._seen.get(group)
        every = [s for ss in self._seen.values() for s in ss]
        return float(np.mean(own)) if own else float(np.mean(every)) if every else self.prior_s

    def remaining(self) -> float:
        return sum(n * self.seconds(group) for group, n in self.left.items())


def pass_phases(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """One pass's phases, from a result's phases before and after that pass was combined into it."""
    return {k: v - before.get(k, 0.0) for k, v in after.items() if v - before.get(k, 0.0) > 0}
