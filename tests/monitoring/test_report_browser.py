"""The drift report opens offline in a real headless Chromium: it renders, logs no
console errors, fetches nothing, and shows the figures and the drifted columns."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from satchel.cli import main

from ..conftest import make_frame

pytestmark = pytest.mark.browser


def test_drift_report_renders_offline(
    profiled_model_dir: Path, tmp_path: Path, browser_page: Any
) -> None:
    current = make_frame(3000, seed=5, shift=25.0)
    current.loc[current.index[:900], "city"] = "marseille"
    data = tmp_path / "current.parquet"
    current.to_parquet(data)
    report = tmp_path / "drift.html"
    assert main(["monitor", str(profiled_model_dir), "--data", str(data),
                 "--report", str(report)]) == 1
    text = report.read_text()
    # self-contained: nothing to fetch (namespace URIs are names, not requests)
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text)
    assert "<script" not in text

    page = browser_page.page
    page.goto(report.as_uri())
    assert page.title() == "Drift report: credit"
    # one histogram per input and output column, each an inline SVG with bars
    figures = page.locator("figure")
    assert figures.count() == 4
    assert page.locator("figure svg").count() == 4
    assert page.locator("figure svg path").count() > 20
    verdict = page.locator("#verdict").inner_text()
    assert "income" in verdict and "city" in verdict and "age" not in verdict
    flagged = page.locator("#drift tr.over td.name").all_inner_texts()
    # income feeds the model, so its predictions move too; age stays clean
    assert sorted(flagged) == ["city", "income", "prediction"]
    # which columns moved most: the table is ranked by PSI, the largest first, and the
    # clean column comes last
    names = page.locator("#drift tr td.name").all_inner_texts()
    psis = [float(row.locator("td").nth(3).inner_text())
            for row in page.locator("#drift tr:has(td)").all()]
    assert psis == sorted(psis, reverse=True) and len(psis) == 4
    assert names[-1] == "age" and set(names[:3]) == {"city", "income", "prediction"}
    # the figures have a real size on screen (rendered, not just present)
    box = page.locator("figure svg").first.bounding_box()
    assert box is not None and box["width"] > 200 and box["height"] > 100
    assert browser_page.console_errors == []
    assert browser_page.failed_requests == []


def test_report_without_profile_says_so(
    iris_model_dir: Path, iris: Any, tmp_path: Path, browser_page: Any
) -> None:
    data = tmp_path / "iris.csv"
    iris[0].to_csv(data, index=False)
    report = tmp_path / "r.html"
    assert main(["monitor", str(iris_model_dir), "--data", str(data),
                 "--report", str(report)]) == 0
    page = browser_page.page
    page.goto(report.as_uri())
    assert "no reference profile" in page.locator("#no-reference").inner_text()
    assert page.locator("#raw tr").count() == 1 + 4 + 1  # header, inputs, prediction
    assert browser_page.console_errors == []
