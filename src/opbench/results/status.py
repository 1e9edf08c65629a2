"""`Status`: what became of one measurement, the one vocabulary of every study, the store and the importers.

A `str`-valued enumeration, so that a status is stored, exported and compared as the same plain string as
before (`Status.OK == "ok"`, `json.dumps` writes `"ok"`), and old stores and files read unchanged. Every study
draws from it: a run (`CaseResult`), the engine's measurements (`engine.task`), the dtype study's cells
(`silently-converted`, `n/a`), a sweep's points (`skipped` for a size that cannot fit), the calibration's
probes (`unverified`) and the worker's failures; the importers accept exactly these.

Severity: `TIMED` statuses have a time (a `wrong` one keeps it, but is marked in every table); the others
have none.
"""

from __future__ import annotations

from enum import Enum

from opbench.errors import UsageError


class Status(str, Enum):
    OK = "ok"  # timed and verified
    REDUCED = "reduced-precision"  # timed; within the bound of the narrower arithmetic the backend reported
    WRONG = "wrong"  # timed; the output is wrong
    CONVERTED = "silently-converted"  # dtype study: the backend ran it in another dtype without saying so
    NOT_APPLICABLE = "n/a"  # dtype study: the operation is not defined for the dtype, or its result cannot fit
    ERROR = "error"  # the framework or opbench raised
    OOM = "oom"  # out of memory
    UNSUPPORTED = "unsupported"  # the backend cannot run it (no implementation, no device, no such dtype)
    CRASHED = "crashed"  # the measuring process died
    TIMEOUT = "timeout"  # the measuring process gave no result in time and was killed
    NOT_FORCED = "not-forced"  # the output never became a concrete array (lazy evaluation not forced)
    SKIPPED = "skipped"  # sweep: not measured (the size cannot fit in free memory, or an earlier size failed)
    UNVERIFIED = "unverified"  # calibration probe: timed, with nothing to compare it with (`catalog.probes`)

    __str__ = str.__str__  # "ok", not "Status.OK", in f-strings and messages
    __format__ = str.__format__

    @property
    def timed(self) -> bool:
        """A status that keeps the measured time (the time itself may still be missing)."""
        return self in TIMED

    @classmethod
    def parse(cls, text: object, where: str) -> Status:
        """The status spelled `text`, or a one-line UsageError naming `where` and the valid choices."""
        try:
            return cls(text)
        except ValueError:
            shown = str(text)[:40]
            raise UsageError(f"{where}: unknown status {shown!r}; valid choices: "
                             f"{', '.join(s.value for s in cls)}") from None


TIMED = (Status.OK, Status.REDUCED, Status.WRONG)  # least to most severe
UNTIMED = tuple(s for s in Status if s not in TIMED)
