"""`opbench site`: a synthetic store with planted steps (tests/site_data.py) on both back ends, opened in
headless Chromium: the index, the machines × backends matrix, the regression list, charts that render, no
network, and names from the store that stay text. Plus the command's bad input."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from site_data import CASES, EXPECTED, RUNS, fill, run_id
from test_report_browser import browser  # noqa: F401  (the module-scoped headless Chromium fixture)

from opbench.cli import main
from opbench.results.store import Store

HOSTILE = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">'


@pytest.fixture
def site(store_location: str, tmp_path: Path) -> Path:
    with Store(store_location) as s:
        fill(s, hostile=HOSTILE)
    out = tmp_path / "site"
    assert main(["site", store_location, "--out", str(out)]) == 0
    return out


def test_site_lists_the_planted_steps_and_renders_charts(site: Path, browser) -> None:  # noqa: F811
    from selenium.webdriver.common.by import By

    browser.get((site / "index.html").as_uri())
    rows = browser.find_elements(By.CSS_SELECTOR, "#changes tbody tr")
    found = sorted((r.get_attribute("data-machine"), r.get_attribute("data-backend"), r.get_attribute("data-case"),
                    r.get_attribute("data-run"), r.get_attribute("class")) for r in rows)
    assert found == sorted((m, b, c, run_id(m.split(" ")[0], i), kind) for m, b, c, i, kind in EXPECTED)
    software = {r.get_attribute("data-backend"): r.find_element(By.CSS_SELECTOR, "td.software").text for r in rows}
    assert software == {"cpu": "torch 2.12.0 → 2.13.0", "mlx_cpu": "mlx 0.29.0 → 0.30.0"}
    changes = {r.get_attribute("data-backend"): r.find_element(By.CSS_SELECTOR, "td.change").text for r in rows}
    assert changes["cpu"].startswith("+") and changes["mlx_cpu"].startswith("-")
    cells = {c.get_attribute("data-runs") for c in browser.find_elements(By.CSS_SELECTOR, "#matrix td")}
    assert cells == {str(RUNS), "0"}  # each machine measured one backend, 12 runs
    assert len(browser.find_elements(By.CSS_SELECTOR, "#runs tbody tr")) == 2 * RUNS
    assert browser.execute_script("return window.__pwned === undefined")
    assert HOSTILE in browser.find_element(By.ID, "runs").text  # the planted label shows as text
    links = [a.get_attribute("href") for a in browser.find_elements(By.CSS_SELECTOR, "ul.cases a")]
    assert len(links) == len(CASES)
    for link in links:
        browser.get(link)
        svg = browser.find_element(By.CSS_SELECTOR, "figure.chart svg")
        size = svg.size
        assert size["width"] > 300 and size["height"] > 150
        lines = browser.execute_script(
            "return [...document.querySelectorAll('figure.chart svg path')].filter(p => {"
            "const b = p.getBBox(); return b.width > 50 && b.height >= 0;}).length")
        assert lines >= 2  # the two machines' lines (and the axes) are drawn
        legend = svg.text
        assert "host-a (AMD EPYC 9554) · cpu" in legend and "host-b (Apple M3 Max) · mlx_cpu" in legend
        if "relu" in link:
            assert "published: M3 Max (published) (latency mode) · mps" in legend
            assert len(browser.find_elements(By.CSS_SELECTOR, "#changes tbody tr")) == 1
    if os.environ.get("OPBENCH_ARTIFACTS"):
        browser.get((site / "index.html").as_uri())
        browser.save_screenshot(str(Path(os.environ["OPBENCH_ARTIFACTS"]) / "site.png"))
    for page in [site / "index.html", *sorted((site / "cases").iterdir())]:
        text = page.read_text()
        assert "<script" not in text and not re.search(r"(src|href)=\"(https?:)?//", text)  # self-contained


def test_site_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["site", str(tmp_path / "none.sqlite"), "--out", str(tmp_path / "o")]) == 2
    assert "no opbench store at" in capsys.readouterr().err and not (tmp_path / "none.sqlite").exists()
    Store(tmp_path / "empty.sqlite").close()
    assert main(["site", str(tmp_path / "empty.sqlite"), "--out", str(tmp_path / "o")]) == 2
    assert "holds no runs" in capsys.readouterr().err and not (tmp_path / "o").exists()
