"""Copying runs between stores (`opbench push`): a machine without network measures into its local SQLite
store and later pushes to the team's PostgreSQL one.

A run is identified by its id (timestamp plus random suffix), a result by (case, backend, dtype). Pushing adds
the results the target lacks or holds in another version (a run resumed locally after an earlier push) and
nothing else, so pushing the same run twice stores nothing new. Results are compared by their full JSON form
(so a NaN error reads as equal to itself). A run id already in the target for another machine is refused:
the two are different runs that happen to share an id, and merging them would mix numbers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import opbench.machine as machine
from opbench.errors import UsageError
from opbench.results.model import CaseResult, Run
from opbench.results.store import Store


@dataclass(frozen=True)
class Pushed:
    run_id: str
    added: int  # results written (new or changed)
    new_run: bool

    def describe(self) -> str:
        if self.new_run:
            return f"stored      {self.run_id}  {self.added} results"
        if self.added:
            return f"updated     {self.run_id}  {self.added} results added or changed"
        return f"up to date  {self.run_id}  nothing new"


def _fingerprint(result: CaseResult) -> str:
    return json.dumps(result.to_dict(), sort_keys=True, default=str)


def push_run(run: Run, target: Store) -> Pushed:
    """Make `target` hold `run` with all its results; only what differs is written (one transaction)."""
    if run.run_id not in target.run_ids():
        target.save_run(run)
        return Pushed(run.run_id, len(run.results), True)
    there = target.load_run(run.run_id)
    if not run.imported and machine.merge_conflicts(there.machine, run.machine):
        raise UsageError(f"run {run.run_id} in {target.location} was measured on another machine "
                         f"({'; '.join(machine.merge_conflicts(there.machine, run.machine))}); not pushed")
    held = {r.key: _fingerprint(r) for r in there.results}
    changed = [r for r in run.results if held.get(r.key) != _fingerprint(r)]
    if changed or there.backends != run.backends:
        target.add_results(run.run_id, changed, backends=run.backends)
    return Pushed(run.run_id, len(changed), False)
