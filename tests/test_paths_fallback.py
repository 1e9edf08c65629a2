"""Without platformdirs (opbench run from a source tree on a machine that lacks it) the data directory and the
default store follow the XDG rule instead of failing with an ImportError."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from opbench.paths import data_dir, user_data_dir
from opbench.results.store import default_store_path


def test_without_platformdirs_the_xdg_rule_applies(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "platformdirs", None)  # its import fails
    monkeypatch.delenv("OPBENCH_DATA_DIR", raising=False)
    monkeypatch.delenv("OPBENCH_STORE", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert user_data_dir() == data_dir() == tmp_path / "opbench"
    assert default_store_path().parent == tmp_path / "opbench"
    monkeypatch.delenv("XDG_DATA_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert user_data_dir() == tmp_path / "home" / ".local" / "share" / "opbench"
