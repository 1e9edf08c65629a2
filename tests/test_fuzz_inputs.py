"""Fuzz: malformed Markdown, JSON and bytes fed to the importers and to `opbench import` / `opbench compare`.

Every input must end in either a well-formed result or a one-line `UsageError` (exit code 2 from the CLI),
never another exception or a traceback. Together the tests below feed well over 200 generated inputs
(`FUZZ_EXAMPLES` per parser test, half that per CLI test); a counter asserts that they really ran.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import math
import os
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


# ------------------------------------------------------- every subcommand's arguments, table-driven
#
# One row per (command, argument): the command's sane base arguments, then the argument with each generated
# bad value of its kind appended (argparse keeps the last value). Every case must end with exit 2, one line
# on stderr, no traceback, nothing on stdout, and nothing written: the work directory (the output folders, the
# store files, the data directory) is the same file for file before and after. Bases are tiny (one quick case on
# cpu, 10 ms budgets) so that a value wrongly accepted costs seconds, not a full run.

LONG = "x" * 300  # one path segment over the 255-byte file-name limit
BAD_SECONDS = ["nan", "NaN", "-nan", "inf", "-inf", "Infinity", "-1", "0", "-0", "1e400", "1e309", "86401", "",
               " ", "abc", "0x10", "1,5", "½"]
BAD_COUNT = ["0", "-1", "1.5", "", "abc", "nan", "inf", "1" + "0" * 30, "0x5", "1e3"]
BAD_SEED = ["-1", "1.5", "", "abc", "nan", str(2**64), "1e3"]
BAD_BACKENDS = ["", ",", " , ", ",,,", "nope", "cpu,nope", "CPU", "cpu;mlx_cpu", LONG]
BAD_NAMES = ["", ",", " , "]  # --ops / --dtypes naming nothing
BAD_PAIRS = ["cpu/foo", "cpu//cpu", "cpu/cpu", "/", "//", ",", "cpu", "cpu/", "/cpu", "a/b/c", "", "cpu/mlx_cpu/x"]
BAD_REFS = ["", " ", LONG, f"{LONG}/run.json", "../../escaped", "nope-1", "{DIR}", "{EMPTY}", "{FILE}/sub"]
# A directory nobody can create entries in, root included (permission bits do not stop root): Linux's /proc
UNWRITABLE = ["/proc/opbench-fuzz/sub"] if Path("/proc/self").is_dir() else []
BAD_OUT_DIRS = ["{FILE}", "{FILE}/sub", LONG, f"{LONG}/sub", "{DIR}/" + LONG, "", *UNWRITABLE]
BAD_OUT_FILES = ["{DIR}", "{FILE}/sub", LONG, f"sub/{LONG}", "{DIR}/" + LONG, "", *(f"{u}.json" for u in UNWRITABLE)]
BAD_STORES = ["{DIR}", LONG, f"{LONG}/s.sqlite", "{FILE}/sub", "{CORRUPT}", "{FOREIGN}", "{NOTABLES}", "{NEWER}", "",
              "foo://bar", "mysql://u@h/db"]  # other URL schemes: not SQLite file names
BAD_INPUTS = ["", LONG, "{DIR}/" + LONG, "{FILE}/sub", "missing-dir"]
# calibration files with the right header and bad contents (`fuzz_workspace` writes them)
BAD_CALIBRATIONS = [*BAD_INPUTS, "{CAL:devices-list}", "{CAL:device-text}", "{CAL:matmul-list}",
                    "{CAL:rate-text}", "{CAL:rate-nan}", "{CAL:rate-negative}", "{CAL:no-devices}"]

RUN_BASE = ["run", "--ops", "ReLU", "--preset", "quick", "--backends", "cpu", "--budget", "0.01", "--min-samples",
            "1", "--no-isolate", "--store", "{EMPTY}", "--format", "md"]
DTYPES_BASE = ["dtypes", "--ops", "ReLU", "--backends", "cpu", "--dtypes", "float32", "--budget", "0.01",
               "--matmul-size", "0", "--matmul-budget", "0.01", "--store", "{EMPTY}", "--format", "md"]
SWEEP_BASE = ["sweep", "matmul", "--sizes", "16", "--backends", "cpu", "--budget", "0.01", "--min-samples", "1",
              "--format", "md"]
CALIBRATE_BASE = ["calibrate", "--backends", "cpu", "--budget", "0.01", "--max-n", "16", "--copy-mib", "1",
                  "--target-ms", "1", "--format", "md"]
COMPARE_BASE = ["compare", "{RUN}", "{RUN}", "--store", "{EMPTY}", "--format", "md"]
NOISE_BASE = ["noise", "--ops", "ReLU", "--preset", "quick", "--backends", "cpu", "--budget", "0.01", "--processes",
              "1", "--store", "{EMPTY}", "--format", "md"]

NEW_STORE = ["--store", "new-store.sqlite"]  # a store that does not exist yet must not be created either

ARGUMENT_TABLE: list[tuple[list[str], str | None, list[str]]] = [
    # (base argv, option (None: the value is appended as a positional), bad values)
    (RUN_BASE, "--budget", BAD_SECONDS),
    (RUN_BASE, "--case-timeout", BAD_SECONDS),
    (RUN_BASE, "--min-samples", BAD_COUNT),
    (RUN_BASE, "--processes", [*BAD_COUNT, "101"]),
    (RUN_BASE, "--seed", BAD_SEED),
    (RUN_BASE, "--backends", BAD_BACKENDS),
    (RUN_BASE, "--ops", [*BAD_NAMES, "NoSuchOp", "ReLU,NoSuchOp"]),
    (RUN_BASE, "--preset", ["", "huge", "SEED"]),
    (RUN_BASE, "--dtype", ["", "float8", "int32", "FLOAT32"]),
    (RUN_BASE, "--pairs", [*BAD_PAIRS, "cpu/mlx_cpu"]),  # mlx_cpu is a backend, but not one of this run's
    (RUN_BASE, "--out", BAD_OUT_DIRS),
    (RUN_BASE, "--store", BAD_STORES),
    (RUN_BASE, "--resume", BAD_REFS),
    *((base + NEW_STORE, option, values) for base in (RUN_BASE, DTYPES_BASE) for option, values in (
        ("--backends", BAD_BACKENDS[:5]), ("--preset", ["huge"]), ("--ops", ["NoSuchOp"]), ("--budget", ["nan", "0"]),
        ("--out", ["{FILE}"]))),
    (RUN_BASE + NEW_STORE, "--dtype", ["float8"]),
    (CALIBRATE_BASE, "--budget", BAD_SECONDS),
    (CALIBRATE_BASE, "--target-ms", ["nan", "inf", "-inf", "-1", "0", "1e400", "", "abc", "1e12"]),
    (CALIBRATE_BASE, "--max-n", [*BAD_COUNT, "15", str(2**40)]),
    (CALIBRATE_BASE, "--copy-mib", [*BAD_COUNT, str(2**40)]),
    (CALIBRATE_BASE, "--backends", BAD_BACKENDS),
    (CALIBRATE_BASE, "--out", BAD_OUT_FILES),
    (DTYPES_BASE, "--budget", BAD_SECONDS),
    (DTYPES_BASE, "--matmul-budget", BAD_SECONDS),
    (DTYPES_BASE, "--matmul-size", ["-1", "1.5", "", "abc", "nan", "99999999", str(2**63)]),
    (DTYPES_BASE, "--seed", BAD_SEED),
    (DTYPES_BASE, "--backends", BAD_BACKENDS),
    (DTYPES_BASE, "--ops", [*BAD_NAMES, "NoSuchOp"]),
    (DTYPES_BASE, "--dtypes", [*BAD_NAMES, "float8", "float32,int4"]),
    (DTYPES_BASE, "--preset", ["", "huge"]),
    (DTYPES_BASE, "--out", BAD_OUT_DIRS),
    (DTYPES_BASE, "--store", BAD_STORES),
    (DTYPES_BASE, "--resume", BAD_INPUTS),
    (SWEEP_BASE, "--sizes", ["", ",", "0", "-16", "16:8:1", "1:99999999999999:1", "1:1e9:1", "99999999999999",
                             "1," + "9" * 5000, "16:32", "16:32:0", "a:b:c", "nan", "16;32", str(2**63)]),
    (SWEEP_BASE, "--budget", BAD_SECONDS),
    (SWEEP_BASE, "--min-samples", BAD_COUNT),
    (SWEEP_BASE, "--seed", BAD_SEED),
    (SWEEP_BASE, "--backends", BAD_BACKENDS),
    (SWEEP_BASE, "--dtype", ["", "float8"]),
    (SWEEP_BASE, "--baseline", ["", "nope", "mlx_cpu"]),
    (SWEEP_BASE, "--case", ["", "nope"]),
    (SWEEP_BASE, "--out", BAD_OUT_DIRS),
    (SWEEP_BASE, "--calibration", BAD_CALIBRATIONS),
    (SWEEP_BASE, "--resume", BAD_INPUTS),
    (["sweep"], "--render", BAD_INPUTS),
    (["sweep"], None, ["", "nope", LONG]),  # the family
    (COMPARE_BASE, "--alpha", [*BAD_SECONDS[:-4], "1", "0.6"]),
    (COMPARE_BASE, "--noise-floor", [*BAD_SECONDS[:7], "1e400", "abc"]),
    (COMPARE_BASE, "--fail-above", ["nan", "inf", "-1", "abc", "1e400", ""]),
    (COMPARE_BASE, "--out", BAD_OUT_FILES),
    (COMPARE_BASE, "--map", ["", "=", "cpu=", "=cpu", "cpu"]),
    (["compare", "{RUN}", "--store", "{EMPTY}"], None, BAD_REFS),
    (["compare", "{RUN}", "nope"], "--store", BAD_STORES),
    (["plot", "{RUN}"], "--out", BAD_OUT_DIRS),
    (["plot", "{RUN}"], "--pairs", [*BAD_PAIRS, "cpu/mlx_cpu"]),
    (["plot", "{RUN}"], "--vs", BAD_REFS),
    (["plot", "--store", "{EMPTY}"], None, BAD_REFS),
    (["plot", "nope"], "--store", BAD_STORES),
    (["report", "{RUN}", "--no-plots"], "--out", BAD_OUT_FILES),
    (["report", "{RUN}", "--no-plots"], "--pairs", [*BAD_PAIRS, "cpu/mlx_cpu"]),
    (["report", "{RUN}", "--no-plots"], "--calibration", BAD_CALIBRATIONS),
    (["report", "--store", "{EMPTY}"], None, BAD_REFS),
    (["report", "{RUN}", "--store", "{EMPTY}", "--no-plots"], None, BAD_REFS),  # RUN_B
    (["report", "nope"], "--store", BAD_STORES),
    (["roofline", "{RUN}"], "--json", BAD_OUT_FILES),
    (["roofline", "{RUN}"], "--calibration", BAD_CALIBRATIONS),
    (["roofline", "--store", "{EMPTY}"], None, BAD_REFS),
    (["roofline", "nope"], "--store", BAD_STORES),
    (["show", "{RUN}"], "--pairs", [*BAD_PAIRS, "cpu/mlx_cpu"]),
    (["show", "--store", "{EMPTY}"], None, BAD_REFS),
    (["show", "nope"], "--store", BAD_STORES),
    (["export", "{RUN}"], "--out", BAD_OUT_FILES),
    (["export", "--store", "{EMPTY}"], None, BAD_REFS),
    (["export", "nope"], "--store", BAD_STORES),
    (["import", "--store", "{EMPTY}"], None, [*BAD_INPUTS, "{DIR}", "{EMPTY}", "{CORRUPT}"]),
    (["import", "{RUN}"], "--store", BAD_STORES),
    (["runs"], "--store", [s for s in BAD_STORES if s != ""]),
    (["list"], "--preset", ["", "huge"]),
    (["list"], "--ops", [*BAD_NAMES, "NoSuchOp", "ReLU,NoSuchOp"]),
    (["list"], "--catalog", [*BAD_NAMES, "missing.py"]),
    (RUN_BASE, "--catalog", BAD_NAMES),
    (NOISE_BASE, "--backends", BAD_BACKENDS),
    (NOISE_BASE, "--ops", [*BAD_NAMES, "NoSuchOp"]),
    (NOISE_BASE, "--store", BAD_STORES),
    (["push", "--all", "{RUN}"], "--to", ["{DIR}/target.sqlite"]),  # --all with a run named
    (["sweep", "relu", "--render"], None, ["{DIR}"]),  # --render with a family
]

FUZZ_ARGUMENT_CASES = [(base, option, value) for base, option, values in ARGUMENT_TABLE for value in values]


def _argument_case_id(case: tuple[list[str], str | None, str]) -> str:
    base, option, value = case
    return f"{base[0]} {option or 'ARG'} {value[:24]!r}"


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every file and directory under `root` with its size and modification time."""
    out = {}
    for p in sorted(root.rglob("*")):
        st_ = p.lstat()
        out[str(p.relative_to(root))] = (st_.st_size if p.is_file() else -1, st_.st_mtime_ns)
    return out


@pytest.fixture
def fuzz_workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A working directory with the files the placeholders name; the default store and data directory inside
    it (and not yet created)."""
    import sqlite3

    work = tmp_path / "work"
    (work / "adir").mkdir(parents=True)
    (work / "afile").write_text("not a directory\n")
    (work / "empty.sqlite").write_bytes(b"")
    (work / "corrupt.sqlite").write_bytes(b"SQLite format 3\x00" + b"\xff" * 200)
    with contextlib.closing(sqlite3.connect(work / "foreign.sqlite")) as db:
        db.execute("CREATE TABLE accounts (id INTEGER)")
        db.commit()
    from opbench.results.store import APPLICATION_ID, SCHEMA_VERSION

    for name, version in (("notables.sqlite", SCHEMA_VERSION), ("newer.sqlite", SCHEMA_VERSION + 1)):
        with contextlib.closing(sqlite3.connect(work / name)) as db:
            db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            db.execute(f"PRAGMA user_version = {version}")
            db.commit()
    (work / "run.json").write_text(json.dumps(_valid_run_dict()))
    header = {"format": "opbench-calibration", "schema_version": 1, "fingerprint": "x"}
    ceiling = {"rate": 10.0, "best_rate": 12.0, "median_ms": 1.0, "size": 1, "work": 1e6, "samples": 5, "how": "x"}
    device = {"backend": "cpu", "framework": "torch", "device_kind": "cpu", "copy": ceiling, "matmul": {}}
    calibrations = {"devices-list": {"devices": [1]}, "device-text": {"devices": {"cpu": "fast"}},
                    "matmul-list": {"devices": {"cpu": {**device, "matmul": [ceiling]}}},
                    "rate-text": {"devices": {"cpu": {**device, "copy": {**ceiling, "rate": "abc"}}}},
                    "rate-nan": {"devices": {"cpu": {**device, "copy": {**ceiling, "rate": float("nan")}}}},
                    "rate-negative": {"devices": {"cpu": {**device,
                                                          "matmul": {"float32": {**ceiling, "best_rate": -5}}}}},
                    "no-devices": {}}
    places = {}
    for name, body in calibrations.items():
        (work / f"cal-{name}.json").write_text(json.dumps({**header, **body}))
        places[f"{{CAL:{name}}}"] = str(work / f"cal-{name}.json")
    monkeypatch.chdir(work)
    monkeypatch.setenv("OPBENCH_STORE", str(work / "default-store.sqlite"))
    monkeypatch.setenv("OPBENCH_DATA_DIR", str(work / "data"))
    return {"{DIR}": str(work / "adir"), "{FILE}": str(work / "afile"), "{EMPTY}": str(work / "empty.sqlite"),
            "{CORRUPT}": str(work / "corrupt.sqlite"), "{FOREIGN}": str(work / "foreign.sqlite"),
            "{NOTABLES}": str(work / "notables.sqlite"), "{NEWER}": str(work / "newer.sqlite"),
            "{RUN}": str(work / "run.json"), **places, "root": str(work)}


def _fill(text: str, places: dict[str, str]) -> str:
    for key, value in places.items():
        if key.startswith("{"):
            text = text.replace(key, value)
    return text


class _TookTooLong(Exception):
    pass


def _cli_within(args: list[str], seconds: int | None = None) -> tuple[int, str, str]:
    """`main(args)` in this process: (exit code, stdout, stderr); a hang (a value that starts a study that never
    ends) is cut off after `seconds` (default `$OPBENCH_FUZZ_CASE_S`, else 120) and fails the case."""
    import signal

    seconds = seconds or int(os.environ.get("OPBENCH_FUZZ_CASE_S", "120"))

    def alarm(signum, frame):
        raise _TookTooLong(f"still running after {seconds} s")

    out, err = io.StringIO(), io.StringIO()
    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(seconds)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(args)
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            except _TookTooLong:
                code = -1
            except Exception:  # what the terminal would show as a traceback
                import traceback

                traceback.print_exc(file=err)
                code = -2
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("case", FUZZ_ARGUMENT_CASES, ids=[_argument_case_id(c) for c in FUZZ_ARGUMENT_CASES])
def test_every_bad_argument_is_refused_before_anything_is_written(fuzz_workspace: dict[str, str], case) -> None:
    _count("arguments")
    base, option, value = case
    argv = [_fill(a, fuzz_workspace) for a in base] + ([option] if option else []) + [_fill(value, fuzz_workspace)]
    root = Path(fuzz_workspace["root"])
    before = _snapshot(root)
    code, out, err = _cli_within(argv)
    assert "Traceback" not in err, err
    assert code == 2, (code, err[-500:])
    assert len(err.strip().splitlines()) == 1, err
    assert out == "", out[:300]
    assert _snapshot(root) == before, "something was written"


def test_argument_table_is_large() -> None:
    """The table above really covers every subcommand with numbers, paths or ids, with many values each."""
    commands = {base[0] for base, _, _ in ARGUMENT_TABLE}
    assert commands >= {"run", "calibrate", "dtypes", "sweep", "compare", "plot", "report", "roofline", "show",
                        "export", "import", "runs", "list"}
    assert len(FUZZ_ARGUMENT_CASES) >= 400


# ------------------------------------------------------------------ the cases issue 19 found, one by one


def _run_file(path: Path, **changes) -> Path:
    data = _valid_run_dict()
    results = changes.pop("results", None)
    data.update(changes)
    if results is not None:
        data["results"] = [{**data["results"][0], **r} for r in results]
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize("run_id", ["../../escaped-plot", "/tmp/escaped-abs", "a/b", "..", ".hidden", "latest",
                                    "x" * 300, "", "a\nb", "run id"])
def test_unsafe_run_ids_in_files_are_refused(fuzz_workspace: dict[str, str], run_id: str) -> None:
    root = Path(fuzz_workspace["root"])
    path = _run_file(root / "evil.json", run_id=run_id)
    for args in (["import", str(path)], ["report", str(path), "--no-plots"], ["show", str(path)]):
        before = _snapshot(root)
        code, _, err = _cli_within(args)
        assert code == 2 and "invalid run id" in err and len(err.strip().splitlines()) == 1, (args, err)
        assert _snapshot(root) == before


def test_an_unsafe_id_already_in_a_store_stays_inside_opbench_out(fuzz_workspace: dict[str, str]) -> None:
    """A store written before ids were checked: the default folders use a safe name derived from the id."""
    import sqlite3

    from opbench.commands.plot import output_base
    from opbench.results import Run

    root = Path(fuzz_workspace["root"])
    code, _, err = _cli_within(["import", fuzz_workspace["{RUN}"]])
    assert code == 0, err
    with contextlib.closing(sqlite3.connect(os.environ["OPBENCH_STORE"])) as db:
        db.execute("UPDATE runs SET id = '../../escaped-plot'")
        db.execute("UPDATE results SET run_id = '../../escaped-plot'")
        db.commit()
    code, _, err = _cli_within(["report", "../../escaped-plot", "--no-plots"])
    assert code == 0, err
    written = [p for p in root.rglob("report.html")]
    assert len(written) == 1 and (root / "opbench-out") in written[0].parents, written
    assert not (root.parent.parent / "escaped-plot").exists()
    base = output_base("../../escaped-plot", Run(run_id="/abs/evil", created="", preset="", dtype=""))
    assert base.parent == Path("opbench-out") and "/" not in base.name and not base.name.startswith(".")


@pytest.mark.parametrize("samples", [[True, False, True], [float("inf"), 1.0], [-1.0, 1.0], [float("nan")],
                                     ["1.0"], [None]])
def test_samples_that_would_break_later_commands_are_refused_at_import(fuzz_workspace: dict[str, str],
                                                                        samples: list) -> None:
    path = _run_file(Path(fuzz_workspace["root"]) / "bad-samples.json", results=[{"samples_ms": samples}])
    code, _, err = _cli_within(["import", str(path)])
    assert code == 2 and len(err.strip().splitlines()) == 1, err


def test_a_dollar_in_a_case_name_is_drawn_literally(fuzz_workspace: dict[str, str]) -> None:
    """matplotlib's mathtext would raise on `$x`; opbench draws text literally."""
    from opbench.report.plots import family_chart, figure_bytes
    from opbench.results import CaseResult

    result = CaseResult(case="ReLU / dim=$x 16 $", family="ReLU", backend="cpu", dtype="float32", status="ok",
                        samples_ms=(0.1, 0.2, 0.3), calls_per_sample=1)
    assert figure_bytes(family_chart([result], "ReLU")).startswith(b"\x89PNG")
    path = _run_file(Path(fuzz_workspace["root"]) / "dollar.json",
                     results=[{"case": "ReLU / dim=$x 16 $", "samples_ms": [0.1, 0.2, 0.3]}])
    code, _, err = _cli_within(["report", str(path), "--out", str(Path(fuzz_workspace["root"]) / "r.html")])
    assert code == 0, err


def test_torch_allocation_failure_is_oom() -> None:
    torch = pytest.importorskip("torch")
    from opbench.backends import get_backend

    with pytest.raises(RuntimeError) as info:
        torch.empty(1 << 50, dtype=torch.uint8)  # refused by the allocator at once, nothing is touched
    backend = get_backend("cpu")
    assert backend.is_oom(info.value), str(info.value)
    for message in ("CUDA out of memory. Tried to allocate 2.00 GiB", "RESOURCE_EXHAUSTED: Out of memory while "
                    "trying to allocate 17179869184 bytes", "[metal::malloc] Attempting to allocate 68719476736 "
                    "bytes which is greater than the maximum allowed buffer size", "std::bad_alloc"):
        assert backend.is_oom(RuntimeError(message)), message
    assert not backend.is_oom(RuntimeError("shape mismatch"))


def _disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device", "run.json")


RUN_ARGS = ["run", "--ops", "ReLU", "--preset", "quick", "--backends", "cpu", "--budget", "0.01", "--min-samples",
            "1", "--no-isolate", "--format", "md"]


def _run_error_line(code: int, err: str) -> str:
    """A run prints its plan on stderr first; then the failure must be one last line, exit 2."""
    assert code == 2 and "Traceback" not in err, err
    errors = [line for line in err.splitlines() if "error" in line]
    assert len(errors) == 1 and err.strip().splitlines()[-1] == errors[0], err
    return errors[0]


def test_run_with_a_full_output_disk_keeps_the_results_in_the_store(fuzz_workspace, monkeypatch) -> None:
    pytest.importorskip("torch")
    import opbench.report.tables as tables
    import opbench.results.files as files
    from opbench.results.store import open_store

    monkeypatch.setattr(files, "atomic_write", _disk_full)  # run.json and the tables: the handler writes too
    monkeypatch.setattr(tables, "atomic_write", _disk_full)
    code, _, err = _cli_within([*RUN_ARGS, "--out", "out"])
    err = _run_error_line(code, err)
    assert "No space left on device" in err and "results kept in the store" in err and "--resume" in err
    with open_store(create=False) as store:
        (run,) = store.list_runs()
        assert len(store.load_run(run.run_id).results) == 1  # the first result, stored before run.json failed


def test_run_with_a_full_store_and_output_disk_is_one_line(fuzz_workspace, monkeypatch) -> None:
    pytest.importorskip("torch")
    import opbench.results.files as files
    from opbench.errors import UsageError
    from opbench.results.store import Store

    def store_full(self, run_id, result):
        raise UsageError(f"store {self.path}: database or disk is full")

    import opbench.report.tables as tables

    monkeypatch.setattr(files, "atomic_write", _disk_full)
    monkeypatch.setattr(tables, "atomic_write", _disk_full)  # its own reference: a full disk fails every writer
    monkeypatch.setattr(Store, "add_result", store_full)
    code, _, err = _cli_within([*RUN_ARGS, "--out", "out"])
    err = _run_error_line(code, err)
    assert "disk is full" in err and "0 results kept" in err and "could not be written" in err


def test_plot_to_a_full_disk_is_one_line(fuzz_workspace, monkeypatch) -> None:
    import opbench.report.plots as plots

    monkeypatch.setattr(plots, "save", _disk_full)
    code, _, err = _cli_within(["plot", fuzz_workspace["{RUN}"], "--out", "plots"])
    assert code == 2 and len(err.strip().splitlines()) == 1 and "No space left on device" in err, err


@pytest.mark.parametrize("args", [
    ["run", "--budget", "nan"],
    ["calibrate", "--target-ms", "nan"],
    ["run", "--resume", ""],
    ["run", "--backends", ","],
    ["show", "x" * 300],
    ["dtypes", "--matmul-size", "99999999"],
    ["sweep", "matmul", "--sizes", "1:99999999999999:1"],
    ["compare", "{RUN}", "{RUN}", "--out", "{DIR}"],
])
def test_subprocess_bad_arguments_never_show_a_traceback(fuzz_workspace: dict[str, str], args: list[str]) -> None:
    root = Path(fuzz_workspace["root"])
    before = _snapshot(root)
    proc = subprocess.run([sys.executable, "-m", "opbench", *[_fill(a, fuzz_workspace) for a in args]],
                          capture_output=True, text=True, timeout=120, cwd=root)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and proc.stdout == "", proc.stderr
    assert _snapshot(root) == before


def test_site_to_an_empty_out_writes_nothing_into_the_working_directory(fuzz_workspace: dict[str, str]) -> None:
    store = str(Path(fuzz_workspace["root"]) / "with-a-run.sqlite")
    assert _cli_within(["import", fuzz_workspace["{RUN}"], "--store", store])[0] == 0
    root = Path(fuzz_workspace["root"])
    before = _snapshot(root)
    code, _, err = _cli_within(["site", store, "--out", ""])
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert _snapshot(root) == before, "something was written"


def test_a_run_of_only_unavailable_backends_is_refused_and_names_the_available(
        fuzz_workspace: dict[str, str]) -> None:
    from opbench.backends import get_backend

    if get_backend("cuda").availability().available:
        pytest.skip("cuda is available here")
    root = Path(fuzz_workspace["root"])
    before = _snapshot(root)
    code, _, err = _cli_within([_fill(a, fuzz_workspace) for a in RUN_BASE] + ["--backends", "cuda"])
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert "cuda (" in err and "; available: " in err
    assert _snapshot(root) == before, "something was written"


def test_importing_another_file_under_a_stored_run_id_is_refused(fuzz_workspace: dict[str, str]) -> None:
    root = Path(fuzz_workspace["root"])
    store = str(root / "imports.sqlite")
    assert _cli_within(["import", fuzz_workspace["{RUN}"], "--store", store])[0] == 0
    again = _cli_within(["import", fuzz_workspace["{RUN}"], "--store", store])
    assert again[0] == 0 and "already stored" in again[1]  # the same file: nothing new, no error
    other = _valid_run_dict()
    other["results"][0]["samples_ms"] = [0.5, 0.5, 0.5]  # the same run id, other times
    (root / "other.json").write_text(json.dumps(other))
    before = _snapshot(root)
    code, _, err = _cli_within(["import", str(root / "other.json"), "--store", store])
    assert code == 2 and "already stored with other results" in err and len(err.strip().splitlines()) == 1, err
    assert _snapshot(root) == before


def _mutated(path: str, value) -> dict:
    d = _valid_run_dict()
    target = d["results"][0] if path.startswith("results.") else d
    key = path.removeprefix("results.")
    if value is KeyError:
        del target[key]
    else:
        target[key] = value
    return d


@pytest.mark.parametrize(("path", "value", "needle"), [
    ("results", KeyError, "no 'results' field"),
    ("results.mode", "bogus", "timing mode 'bogus'; valid choices: throughput"),
    ("created", "notadate", "created 'notadate' is not an ISO 8601 time"),
])
def test_a_run_file_with_a_bad_field_is_one_line_naming_it(path: str, value, needle: str) -> None:
    with pytest.raises(UsageError, match=needle.replace("(", r"\(")) as info:
        run_from_json_text(json.dumps(_mutated(path, value)))
    assert "\n" not in str(info.value)


def test_a_valid_run_file_with_a_z_time_loads() -> None:
    assert run_from_json_text(json.dumps(_mutated("created", "2026-01-01T00:00:00Z"))).created.endswith("Z")


@pytest.mark.parametrize("cells", [["abc"], ["-1.5", "nan"], ["nan"]])
def test_a_published_table_without_one_readable_time_is_refused(cells: list[str]) -> None:
    rows = "\n".join(f"| ReLU / dim={8 * (i + 1)}x8 | {c} |" for i, c in enumerate(cells))
    with pytest.raises(UsageError, match="no readable time"):
        parse_published_markdown(f"# Detailed\n\n| Operation | cpu |\n|---|---|\n{rows}\n")
    good = parse_published_markdown(f"# Detailed\n\n| Operation | cpu |\n|---|---|\n{rows}\n| ReLU / dim=9x9 | 1.5 |\n")
    assert any(r.published_ms == 1.5 for run in good for r in run.results)
