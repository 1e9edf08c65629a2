"""Results as data: frozen records of one measured case, and of a whole run, with JSON round-trips."""

from opbench.results.model import SCHEMA_VERSION, TIMED_STATUSES, CaseResult, Run
from opbench.results.status import Status

__all__ = ["SCHEMA_VERSION", "TIMED_STATUSES", "CaseResult", "Run", "Status"]
