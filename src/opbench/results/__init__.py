"""Results as data: frozen records of one measured case, and of a whole run, with JSON round-trips."""

from opbench.results.model import SCHEMA_VERSION, TIMED_STATUSES, CaseResult, Run

__all__ = ["SCHEMA_VERSION", "TIMED_STATUSES", "CaseResult", "Run"]
