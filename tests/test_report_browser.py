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

    # the charts are embedded images that decoded
    widths = browser.execute_script("return Array.from(document.images).map(i => i.naturalWidth)")
    assert len(widths) >= 5 and all(w > 100 for w in widths)
    image = browser.find_element("css selector", "figure img")
    browser.execute_script("arguments[0].scrollIntoView()", image)
    image.click()
    assert "zoom" in image.get_attribute("class")

    shot = report.with_name("report.png")
    browser.find_element("id", "family-filter").click()
    Select(browser.find_element("id", "family-filter")).select_by_value("")
    browser.find_element("css selector", '.backend-toggle[value="cpu"]').click()
    assert browser.save_screenshot(str(shot)) and shot.read_bytes()[:4] == b"\x89PNG"
    if os.environ.get("OPBENCH_ARTIFACTS"):
        target = Path(os.environ["OPBENCH_ARTIFACTS"])
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, target / "report-screenshot.png")
        shutil.copy(report, target / "report.html")
