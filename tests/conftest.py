"""Shared fixtures: every installed backend, skipped with a reason where it cannot run here."""

from __future__ import annotations

import pytest

from opbench.backends import backend_names, get_backend


@pytest.fixture(scope="session", autouse=True)
def _private_store(tmp_path_factory: pytest.TempPathFactory):
    """Runs made by tests (in process or in subprocesses) go to a temporary store and reference cache, never
    the user's."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OPBENCH_STORE", str(tmp_path_factory.mktemp("store") / "opbench.sqlite"))
        mp.setenv("OPBENCH_REFERENCE_CACHE", str(tmp_path_factory.mktemp("references")))
        yield


def _available_backends() -> list:
    params = []
    for name in backend_names():
        try:
            avail = get_backend(name).availability()
        except Exception as exc:  # a broken install: skip with the reason
            params.append(pytest.param(name, marks=pytest.mark.skip(reason=str(exc)), id=name))
            continue
        marks = [] if avail.available else [pytest.mark.skip(reason=avail.reason)]
        params.append(pytest.param(name, marks=marks, id=name))
    return params


@pytest.fixture(params=_available_backends())
def backend(request):
    be = get_backend(request.param)
    be.setup()
    return be
