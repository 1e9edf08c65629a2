"""Fuzz: malformed Markdown, JSON and bytes fed to the importers and to `opbench import` / `opbench compare`.

Every input must end in either a well-formed result or a one-line `UsageError` (exit code 2 from the CLI),
never another exception or a traceback. Together the tests below feed well over 200 generated inputs
(`FUZZ_EXAMPLES` per parser test, half that per CLI test); a counter asserts that they really ran.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opbench.cli import main
from opbench.errors import UsageError
from opbench.results import CaseResult, Run
from opbench.results.importers import import_text, parse_published_markdown, run_from_json_text

FUZZ_EXAMPLES = 100  # per parser test; the CLI tests (slower: a parser and a store per call) take half
_HEALTH = [HealthCheck.too_slow, HealthCheck.filter_too_much]
FUZZ = settings(max_examples=FUZZ_EXAMPLES, deadline=None, database=None, suppress_health_check=_HEALTH)
FUZZ_CLI = settings(max_examples=FUZZ_EXAMPLES // 2, deadline=None, database=None, suppress_health_check=_HEALTH)
SAMPLE = (Path(__file__).parent / "data" / "published_sample.md").read_text()
SAMPLE_LINES = SAMPLE.splitlines()
COUNTS: dict[str, int] = {}


def _count(name: str) -> None:
    COUNTS[name] = COUNTS.get(name, 0) + 1


def _valid_run_dict() -> dict:
    result = CaseResult(case="ReLU / dim=16x16", family="ReLU", backend="cpu", dtype="float32", status="ok",
                        samples_ms=(0.1, 0.11, 0.12), calls_per_sample=10, rel_error=0.0, tolerance=1e-5)
    run = Run(run_id="20260101-000000-abcd", created="2026-01-01T00:00:00+00:00", preset="quick", dtype="float32",
              results=(result,))
    return run.to_dict()


def _check_runs(runs: list[Run]) -> None:
    """What an accepted input must look like: runs with results, every timed one with a sane time."""
    assert runs
    for run in runs:
        assert run.run_id and run.results
        for r in run.results:
            assert isinstance(r.case, str) and isinstance(r.backend, str) and r.backend
            if r.published_ms is not None:
                assert math.isfinite(r.published_ms) and r.published_ms >= 0


def _accepts_or_usage_error(text: str) -> None:
    try:
        runs = import_text(text, "fuzz")
    except UsageError as exc:
        assert "\n" not in str(exc)
        return
    _check_runs(runs)


# -------------------------------------------------------------------------------- Markdown mutations

_cell_junk = st.sampled_from(["nan", "NaN", "", " ", "-", "inf", "-1.0", "1e400", "1.2.3", "✗", "†", "~", "|",
                              "**", "+44%", "0x10", "١٢", "\x00", "\u202e", "1" * 400, "1.5✗", "abc", "0.00"])


@st.composite
def mutated_markdown(draw: st.DrawFn) -> str:
    """The sample file with a few random edits: lines dropped or duplicated, cells replaced, pipes removed,
    headings mangled, text truncated, random text inserted."""
    lines = list(SAMPLE_LINES)
    for _ in range(draw(st.integers(1, 6))):
        if not lines:
            break
        i = draw(st.integers(0, len(lines) - 1))
        action = draw(st.sampled_from(["drop", "dup", "cell", "pipes", "text", "heading", "truncate"]))
        if action == "drop":
            del lines[i]
        elif action == "dup":
            lines.insert(i, lines[i])
        elif action == "cell" and "|" in lines[i]:
            cells = lines[i].split("|")
            j = draw(st.integers(0, len(cells) - 1))
            cells[j] = draw(_cell_junk)
            lines[i] = "|".join(cells)
        elif action == "pipes":
            lines[i] = lines[i].replace("|", draw(st.sampled_from(["", "||", " | | ", "¦"])))
        elif action == "text":
            lines.insert(i, draw(st.text(max_size=80)))
        elif action == "heading":
            lines[i] = draw(st.sampled_from(["**", "#", "**M9 Ultra (", "Detailed benchmark:", "mlx: 0.x",
                                             "**RTX (((**", ""])) + lines[i]
        else:
            lines = lines[:i]
    return "\n".join(lines)


@FUZZ
@given(mutated_markdown())
def test_mutated_published_tables(text: str) -> None:
    _count("markdown")
    _accepts_or_usage_error(text)


@FUZZ
@given(st.text(alphabet=st.sampled_from(list("|-: \n*#/=x0123456789.nanOperatiocpumlx_gpu")), max_size=400))
def test_table_shaped_noise(text: str) -> None:
    _count("noise")
    _accepts_or_usage_error(text)


# ------------------------------------------------------------------------------------ JSON mutations

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12)
_RUN_KEYS = list(_valid_run_dict())
_RESULT_KEYS = list(_valid_run_dict()["results"][0])


@st.composite
def mutated_run_json(draw: st.DrawFn) -> str:
    data = _valid_run_dict()
    for _ in range(draw(st.integers(1, 4))):
        where = draw(st.sampled_from(["run", "result", "drop", "top"]))
        if where == "run":
            data[draw(st.sampled_from(_RUN_KEYS))] = draw(_json_values)
        elif where == "result" and isinstance(data.get("results"), list) and data["results"] \
                and isinstance(data["results"][0], dict):
            data["results"][0][draw(st.sampled_from(_RESULT_KEYS))] = draw(_json_values)
        elif where == "drop":
            data.pop(draw(st.sampled_from(_RUN_KEYS)), None)
        else:  # the top level replaced: no further key edits apply
            data = draw(_json_values) if draw(st.booleans()) else [data]
            break
    text = json.dumps(data)
    cut = draw(st.integers(0, len(text)))
    return text if draw(st.booleans()) else text[:cut]


@FUZZ
@given(mutated_run_json())
def test_mutated_json_runs(text: str) -> None:
    _count("json")
    try:
        run = run_from_json_text(text, "fuzz.json")
    except UsageError as exc:
        assert "\n" not in str(exc)
        return
    assert isinstance(run.run_id, str) and run.run_id
    for r in run.results:  # an accepted run must render: every property used by tables works
        assert isinstance(r.median_ms, float) and isinstance(r.timed, bool) and isinstance(r.noisy, bool)


# ----------------------------------------------------------------------------------- CLI, in process


def _cli(args: list[str]) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        try:
            code = main(args)
        except SystemExit as exc:
            code = int(exc.code or 0)
    return code, err.getvalue()


@pytest.fixture(scope="module")
def workdir():
    with tempfile.TemporaryDirectory() as d:
        yield Path(d)


_bad_bytes = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=300).map(lambda t: t.encode("utf-8", "surrogatepass")),
    mutated_run_json().map(str.encode),
    st.sampled_from([b"", b"{", b"[]", b"null", b"\xef\xbb\xbf{}", b"| Operation |\n", b"\x00" * 10]),
)


@FUZZ_CLI
@given(content=_bad_bytes, command=st.sampled_from(["import", "compare-a", "compare-b"]))
def test_cli_import_and_compare_with_malformed_files(workdir: Path, content: bytes, command: str) -> None:
    _count("cli")
    path = workdir / "input.dat"
    path.write_bytes(content)
    store = workdir / "store.sqlite"
    good = workdir / "good.json"
    if not good.exists():
        good.write_text(json.dumps(_valid_run_dict()))
    args = {"import": ["import", str(path), "--store", str(store)],
            "compare-a": ["compare", str(path), str(good), "--store", str(store), "--format", "md"],
            "compare-b": ["compare", str(good), str(path), "--store", str(store), "--format", "md"]}[command]
    code, err = _cli(args)
    assert "Traceback" not in err
    if code != 0:
        assert code == 2 and len(err.strip().splitlines()) == 1, err


@FUZZ_CLI
@given(ref=st.text(max_size=60).filter(lambda s: not s.startswith("-")))
def test_cli_compare_with_bad_run_ids(workdir: Path, ref: str) -> None:
    _count("ids")
    good = workdir / "good.json"
    if not good.exists():
        good.write_text(json.dumps(_valid_run_dict()))
    code, err = _cli(["compare", str(good), ref, "--store", str(workdir / "empty.sqlite")])
    assert "Traceback" not in err
    assert code == 2 and len(err.strip().splitlines()) == 1, (ref, err)


def test_fuzz_fed_at_least_200_inputs() -> None:
    """Runs after the fuzz tests above (pytest keeps file order): they really generated their inputs."""
    if len(COUNTS) < 5:
        pytest.skip("run the whole file to count the fuzz inputs")
    assert sum(COUNTS.values()) >= 200, COUNTS


# ------------------------------------------------------------------------------- CLI, real processes


@pytest.mark.parametrize("content", [b"\x89PNG\r\n\x1a\n\x00garbage", b"# notes\n\nno table\n",
                                     b'{"format": "opbench-run", "schema_version": 7}'])
def test_subprocess_import_bad_file_is_one_line(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad.md"
    path.write_bytes(content)
    proc = subprocess.run([sys.executable, "-m", "opbench", "import", str(path), "--store",
                           str(tmp_path / "s.sqlite")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_subprocess_compare_unknown_id_is_one_line(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "opbench", "compare", "nope-1", "nope-2", "--store",
                           str(tmp_path / "s.sqlite")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_generated_sample_is_still_valid() -> None:
    """The unmutated sample parses: the mutations above start from a valid file."""
    assert len(parse_published_markdown(SAMPLE, "sample")) == 7
