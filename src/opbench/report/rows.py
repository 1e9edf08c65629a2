"""Results arranged for presentation: one row per case with a result per backend, backends in the seed's order.

Plots and the HTML report share this arrangement so that they show the same rows. Unlike a dict keyed by case
name, it never drops a result: when a preset's shapes make two cases share a name (the `quick` preset shrinks
distinct seed shapes to the same small ones), the second occurrence on a backend starts a new row labelled
`name #2`. Occurrences are matched across backends by their order, which is the catalog's order in a run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from opbench.results import CaseResult


@dataclass
class CaseRow:
    """One case (one row of the Detailed table): its label, family and the result on each backend."""

    label: str
    case: str
    family: str
    results: dict[str, CaseResult] = field(default_factory=dict)

    @property
    def params(self) -> str:
        """The shape part of the name (`dim=16x32 axi=0`), or the whole label when there is none."""
        _, sep, rest = self.label.partition(" / ")
        return rest if sep else self.label


def backend_order(results: Sequence[CaseResult]) -> list[str]:
    """Backends present in the results, in the registry's (seed's) column order, unknown ones last."""
    from opbench.backends import backend_names

    order = list(backend_names())
    present = dict.fromkeys(r.backend for r in results)
    return sorted(present, key=lambda b: order.index(b) if b in order else len(order))


def case_rows(results: Sequence[CaseResult]) -> list[CaseRow]:
    """Rows in first-seen order; the k-th result of a (case, backend) goes to the k-th row of that case."""
    rows: list[CaseRow] = []
    by_name: dict[str, list[CaseRow]] = {}
    for r in results:
        same = by_name.setdefault(r.case, [])
        target = next((row for row in same if r.backend not in row.results), None)
        if target is None:
            label = r.case if not same else f"{r.case} #{len(same) + 1}"
            target = CaseRow(label=label, case=r.case, family=r.family)
            same.append(target)
            rows.append(target)
        target.results[r.backend] = r
    return rows


def families(rows: Sequence[CaseRow]) -> list[str]:
    return list(dict.fromkeys(row.family for row in rows))
