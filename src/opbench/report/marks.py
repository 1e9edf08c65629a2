"""The marks a results table puts on its cells, and the legend of one rendered table.

A mark is one character after a number: `✗` wrong, `†` reduced precision, `~` noisy, `‡` busy machine, `*` an
average or speedup over only part of a family. A table's legend names exactly the marks that appear in it
(a reader never has to look up a mark elsewhere, and is not told about marks the table does not use), and for
`†` it names the narrower arithmetic each backend reported (the verdict's mode, e.g.
`TF32 (torch.backends.cudnn.allow_tf32)`), so a `†` always says what it stands for. Every renderer (rich,
Markdown, HTML) prints the same legend text.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from opbench.analysis.significance import NOISY_DETECTABLE
from opbench.engine.contention import MARK_BUSY
from opbench.engine.telemetry import MARK_GPU
from opbench.results import CaseResult
from opbench.results.model import BUSY_OTHER_CORES, BUSY_SHARE
from opbench.results.status import Status

MARK_WRONG, MARK_REDUCED, MARK_NOISY, MARK_PARTIAL = "✗", "†", "~", "*"
NO_COMMON = "–"  # an Average speedup with no case that both backends timed and verified
MODE_NOT_RECORDED = "mode not recorded (a verdict of an older verifier: re-classify the run)"

WRONG_TEXT = f"{MARK_WRONG} wrong: the output is outside the verifier's bounds (see the notes)"
NOISY_TEXT = (f"{MARK_NOISY} noisy: its worker processes disagree too much for a comparison with a like run to "
              f"detect a {NOISY_DETECTABLE:.0%} change nine times in ten")
BUSY_TEXT = (f"{MARK_BUSY} measured on a busy machine (other processes took ≥ {BUSY_OTHER_CORES:g} core or "
             f"{BUSY_SHARE:.0%} of the CPUs)")
GPU_TEXT = f"{MARK_GPU} the GPU was throttled, or below 90 % of its clock under load, while measured (see the notes)"
NOT_APPLICABLE_TEXT = "n/a: the timing mode does not apply to this backend (the cell says why)"
REDUCED_TEXT = (f"{MARK_REDUCED} reduced precision: within the bounds of a narrower arithmetic that the measuring "
                "process reported, not of the dtype's own")


def reduced_modes(results: Iterable[CaseResult]) -> dict[str, list[str]]:
    """{mode: backends} of the reduced-precision results, in first-seen order (the verdict's detail is its mode)."""
    from opbench.engine.verify import MODE_ROUNDOFF

    modes: dict[str, list[str]] = {}
    for r in results:
        if r.timed and r.status == Status.REDUCED:
            named = bool(r.detail) and r.detail.split()[0] in MODE_ROUNDOFF  # older verifiers wrote other details
            backends = modes.setdefault(r.detail if named else MODE_NOT_RECORDED, [])
            if r.backend not in backends:
                backends.append(r.backend)
    return modes


def legend(results: Sequence[CaseResult], time_cells: Iterable[str], speedup_cells: Iterable[str] = (),
           *, average: bool = False, missing: str = "nan") -> str:
    """The legend of one table: an entry for each mark found in its cells, in a fixed order, joined by ` · `.

    `results` are the results the table shows (for the modes of `†`); `time_cells` and `speedup_cells` the
    rendered cell texts; `average` says the `*` and `–` entries are about family averages; `missing` is the
    text of a cell without a time ("nan" in the seed's tables, "n/a" in HTML)."""
    times, speedups = list(time_cells), list(speedup_cells)
    text = "".join(times) + "".join(speedups)
    entries = []
    if MARK_WRONG in text:
        entries.append(WRONG_TEXT + ("; a speedup from such a time is marked too" if MARK_WRONG in "".join(speedups)
                                     else ""))
    if MARK_REDUCED in "".join(times):
        modes = reduced_modes(results)
        entries.append(REDUCED_TEXT + ": " + "; ".join(f"{mode} on {', '.join(backends)}"
                                                       for mode, backends in modes.items()))
    if MARK_NOISY in text:
        entries.append(NOISY_TEXT)
    if MARK_BUSY in text:
        entries.append(BUSY_TEXT + ("; a speedup from such a time is marked too" if MARK_BUSY in "".join(speedups)
                                    else ""))
    if average and MARK_PARTIAL in "".join(times):
        entries.append(f"{MARK_PARTIAL} after a time: the mean over only the cases this backend timed (k of n: "
                       "see the notes)")
    if average and any(MARK_PARTIAL in s for s in speedups):
        entries.append(f"{MARK_PARTIAL} after a speedup: computed over only the cases both backends timed and "
                       "verified (ok or †), k of the family's n (see the notes)")
    if average and NO_COMMON in speedups:
        entries.append(f"{NO_COMMON}: no case that both backends timed and verified")
    if MARK_GPU in "".join(times):
        entries.append(GPU_TEXT)
    if missing in times:
        entries.append(f"{missing}: no time (see the notes)")
    if any(t.startswith("n/a:") for t in times):
        entries.append(NOT_APPLICABLE_TEXT)
    if any(s.startswith("nan%") for s in speedups):
        entries.append("nan%: one of the two has no time")
    return " · ".join(entries)
