"""The HTML report in a real headless Chromium (Debian's `chromium` + `chromium-driver`, driven by selenium).

Checks what a reader does: count the rows, sort by a column, filter by family and backend, hover data
(tooltips), and that planted markup in names stays text. Takes a screenshot (kept under $OPBENCH_ARTIFACTS
when set). Skipped with the reason when the browser is not installed; CI installs it and sets
OPBENCH_REQUIRE_BROWSER=1, which turns the skip into a failure.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from report_data import CASES, synthetic_run

from opbench.analysis.compare import compare_runs
from opbench.report.html import render_report, report_figures

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--window-size=1400,1000")
HOSTILE = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">'


def _missing() -> str:
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        return f"{CHROMIUM} or {CHROMEDRIVER} missing (apt-get install -y chromium chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    return ""


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    reason = _missing()
    if reason:
        if os.environ.get("OPBENCH_REQUIRE_BROWSER"):
            pytest.fail(f"OPBENCH_REQUIRE_BROWSER is set but {reason}")
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    a = synthetic_run("run-a", backends=("mlx_cpu", "cpu"), hostile=HOSTILE, label="base" + HOSTILE)
    b = synthetic_run("run-b", backends=("mlx_cpu", "cpu"), scale=(1.0, 0.5, 1.5, 1.0, 1.0, 2.0), label="new")
    comparison = compare_runs(a, b)
    path = tmp_path_factory.mktemp("report") / "report.html"
    path.write_text(render_report(a, comparison, report_figures(a, comparison)))
    return path


def visible_rows(driver, table: str) -> list:
    return [tr for tr in driver.find_elements("css selector", f"#{table} tbody tr") if tr.is_displayed()]


def column_values(driver, table: str, col: str) -> list[float | None]:
    cells = [tr.find_element("css selector", f'td[data-col="{col}"]') for tr in visible_rows(driver, table)]
    return [float(v) if v else None for v in (c.get_attribute("data-sort") for c in cells)]


def test_report_in_chromium(browser, report: Path) -> None:
    from selenium.webdriver.support.ui import Select

    browser.get(report.as_uri())
    assert browser.title.startswith("opbench report: base<script>")  # the hostile label, as text
    assert browser.execute_script("return window.__pwned === undefined")
    assert HOSTILE in browser.find_element("css selector", "#detailed tbody").text
    assert len(visible_rows(browser, "detailed")) == len(CASES)
    assert len(visible_rows(browser, "average")) == len({f for f, _, _ in CASES})

    # sort by cpu time: ascending, the case without a time last; a second click: descending, still last
    header = browser.find_element("css selector", '#detailed thead th[data-col="cpu"]')
    header.click()
    assert header.get_attribute("aria-sort") == "ascending"
    values = column_values(browser, "detailed", "cpu")
    timed = [v for v in values if v is not None]
    assert timed == sorted(timed) and values[-1] is None and len(timed) == len(CASES) - 1
    header.click()
    values = column_values(browser, "detailed", "cpu")
    assert header.get_attribute("aria-sort") == "descending" and values[:-1] == sorted(timed, reverse=True)

    # a tooltip carries median, IQR, n and relative error
    title = browser.find_element("css selector", '#detailed tbody td[data-col="mlx_cpu"]').get_attribute("title")
    assert "median" in title and "IQR" in title and "n = 12" in title and "relative error" in title

    # filter by family: only Softmax rows remain, in every table
    Select(browser.find_element("id", "family-filter")).select_by_value("Softmax")
    rows = visible_rows(browser, "detailed")
    assert len(rows) == 3 and {r.get_attribute("data-family") for r in rows} == {"Softmax"}
    assert browser.find_element("css selector", "#detailed caption .count").text == "3 of 6 rows"
    assert [r.get_attribute("data-family") for r in visible_rows(browser, "average")] == ["Softmax"]
    assert len(visible_rows(browser, "comparison-rows")) == 6  # 3 cases x 2 backends

    # filter by backend: cpu's columns and comparison rows disappear
    browser.find_element("css selector", '.backend-toggle[value="cpu"]').click()
    assert not browser.find_element("css selector", '#detailed thead th[data-col="cpu"]').is_displayed()
    assert not browser.find_element("css selector", '#detailed thead th[data-col="mlx_cpu cpu"]').is_displayed()
    assert browser.find_element("css selector", '#detailed thead th[data-col="mlx_cpu"]').is_displayed()
    assert {r.get_attribute("data-backend") for r in visible_rows(browser, "comparison-rows")} == {"mlx_cpu"}

    # the family filter hides the other families' charts (the comparison chart stays)
    shown = [f.get_attribute("data-family") for f in browser.find_elements("css selector", ".chart-grid figure")
             if f.is_displayed()]
    assert shown == [None, "Softmax"]

    shot = report.with_name("report.png")
    browser.find_element("id", "family-filter").click()
    Select(browser.find_element("id", "family-filter")).select_by_value("")
    browser.find_element("css selector", '.backend-toggle[value="cpu"]').click()
    # the charts are inline SVG laid out in a grid, two side by side at this width; a click widens one
    boxes = browser.execute_script("return Array.from(document.querySelectorAll('.chart-grid svg')).map("
                                   "s => s.getBoundingClientRect().toJSON())")
    assert len(boxes) == 1 + len({f for f, _, _ in CASES}) and all(b["width"] > 400 for b in boxes)
    assert boxes[1]["top"] == boxes[0]["top"] and boxes[1]["left"] > boxes[0]["right"]
    chart = browser.find_element("css selector", ".chart-grid figure")
    browser.execute_script("arguments[0].scrollIntoView()", chart)
    chart.click()
    assert "zoom" in chart.get_attribute("class")
    chart.click()

    assert browser.save_screenshot(str(shot)) and shot.read_bytes()[:4] == b"\x89PNG"
    if os.environ.get("OPBENCH_ARTIFACTS"):
        target = Path(os.environ["OPBENCH_ARTIFACTS"])
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, target / "report-screenshot.png")
        shutil.copy(report, target / "report.html")


# What a reader of a seed-sized report sees: a wide range of times (log axes), a time-out, a wrong result.
LAYOUT_FAMILIES = ("Gather", "Conv2d", "Softmax", "ScaledDotProductAttention", "Sum", "MatMul", "Scatter")

SVG_TEXT = """
return Array.from(document.querySelectorAll('.chart-grid svg')).map(function (svg) {
  return Array.from(svg.querySelectorAll('text')).filter(t => t.textContent.trim()).map(function (t) {
    var m = t.getScreenCTM(), scale = Math.sqrt(m.a * m.a + m.b * m.b);
    var r = t.getBoundingClientRect();
    return {text: t.textContent, px: parseFloat(getComputedStyle(t).fontSize) * scale,
            box: [r.left, r.top, r.right, r.bottom]};
  });
});
"""

HTML_TEXT = """
var out = [];
document.querySelectorAll('body *').forEach(function (el) {
  if (el.closest('svg') || el.closest('.off')) { return; }
  var own = Array.from(el.childNodes).some(n => n.nodeType === 3 && n.textContent.trim());
  if (!own || !el.getClientRects().length) { return; }
  var st = getComputedStyle(el);
  if (st.visibility === 'hidden' || st.clip === 'rect(0px, 0px, 0px, 0px)') { return; }
  out.push([el.tagName, el.textContent.trim().slice(0, 40), parseFloat(st.fontSize)]);
});
return out;
"""


def layout_run():
    from opbench.results import CaseResult, Run

    results = []
    rng = np.random.default_rng(3)
    for f, family in enumerate(LAYOUT_FAMILIES):
        for k in range(4):
            case = f"{family} / dim={64 * (k + 1)}x{1000 * 10 ** k} dim={k + 1}x{3 + f}"
            for j, backend in enumerate(("mlx_cpu", "cpu", "jax_cpu")):
                if f == 1 and k == 2 and j == 1:
                    results.append(CaseResult(case=case, family=family, backend=backend, dtype="float32",
                                              status="timeout", error="timeout: no answer after 310 s"))
                    continue
                median = 0.004 * 10 ** (k * 1.3) * (1 + j) * (1 + f % 3)
                samples = tuple(float(x) for x in median * (1 + 0.03 * rng.standard_normal(9)))
                results.append(CaseResult(case=case, family=family, backend=backend, dtype="float32",
                                          status="wrong" if (f, k, j) == (2, 0, 0) else "ok", samples_ms=samples,
                                          calls_per_sample=10, rel_error=1e-7, tolerance=1e-5,
                                          bytes=2**20 * 8 ** k))
    return Run(run_id="layout", created="2026-12-01T00:00:00+00:00", preset="seed", dtype="float32",
               machine={"cpu_model": "Test CPU", "logical_cores": 2}, settings={"budget_s": 0.5},
               backends={b: {"available": True} for b in ("mlx_cpu", "cpu", "jax_cpu")}, results=tuple(results))


def overlaps(a: list[float], b: list[float], slack: float = 0.5) -> bool:
    return a[0] < b[2] - slack and b[0] < a[2] - slack and a[1] < b[3] - slack and b[1] < a[3] - slack


def test_report_layout_summary_first_readable_text_no_overlaps(browser, tmp_path) -> None:
    run = layout_run()
    path = tmp_path / "layout.html"
    path.write_text(render_report(run, figures=report_figures(run)))
    browser.set_window_size(1400, 1000)
    browser.get(path.as_uri())

    tops = browser.execute_script("return ['machine-line', 'summary', 'tables', 'plots', 'details'].map("
                                  "id => document.getElementById(id).getBoundingClientRect().top)")
    assert tops == sorted(tops) and tops[1] < 400  # the summary starts within the first screen
    assert browser.execute_script("return document.getElementById('details').open") is False
    height = browser.execute_script("return document.documentElement.scrollHeight")
    assert height < 9000, height  # 28 cases, 7 charts: the tall table scrolls in its box, charts sit 2 per row
    assert browser.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")

    small = [t for t in browser.execute_script(HTML_TEXT) if t[2] < 10]
    assert not small, small[:5]

    charts = browser.execute_script(SVG_TEXT)
    assert len(charts) == len(LAYOUT_FAMILIES)
    for texts in charts:
        tiny = [(t["text"], round(t["px"], 1)) for t in texts if t["px"] < 10]
        assert not tiny, tiny[:5]
        clashes = [(a["text"], b["text"]) for i, a in enumerate(texts) for b in texts[i + 1:]
                   if overlaps(a["box"], b["box"])]
        assert not clashes, clashes[:5]
    labels = [t["text"] for texts in charts for t in texts]
    assert "n/a (timeout)" in labels  # the time-out is said in its chart, clear of every other label
    assert any("log scale" in t for t in labels)  # times over four decades: a log axis
