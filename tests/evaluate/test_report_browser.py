"""The evaluation report opens offline in a real headless Chromium: it renders, logs no
console errors, fetches nothing, and shows its tables and figures."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import satchel
from satchel.evaluate import report
from satchel.evaluate.gates import Thresholds
from satchel.report.html import fmt

pytestmark = pytest.mark.browser


def _self_contained(text: str) -> None:
    # namespace URIs inside SVG are names, not requests; nothing may be fetched
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text)
    assert "<script" not in text and "@import" not in text


def test_classifier_report_renders(iris_model_dir: Path, weak_iris_dir: Path,
                                   iris_table: pd.DataFrame, tmp_path: Path,
                                   browser_page: Any) -> None:
    r = satchel.evaluate(iris_model_dir, iris_table, "species", baseline=weak_iris_dir,
                         slice_by=["site"], resamples=200)
    gates = Thresholds.from_dict({"metrics": {"accuracy": {"min": 0.99}}}).check(r)
    path = tmp_path / "report.html"
    report.write(r, path, gates)
    _self_contained(path.read_text())
    page = browser_page.page
    page.goto(path.as_uri())
    assert page.title() == f"Evaluation of {iris_model_dir.name}"
    assert page.locator("#metrics tbody tr").count() == 6
    assert page.locator("#comparison tbody tr").count() == 6
    assert "better" in page.locator("#comparison").inner_text()
    assert page.locator("table.gates .badge.bad").inner_text() == "fail"
    assert page.locator("#per-class tbody tr").count() == 3
    # confusion matrix, ROC, precision-recall, calibration, accuracy by site
    captions = page.locator("figure figcaption").all_inner_texts()
    assert captions == ["Confusion matrix", "ROC curve", "Precision-recall curve",
                        "Calibration", "accuracy by site"]
    for i in range(len(captions)):
        svg = page.locator("figure svg").nth(i)
        box = svg.bounding_box()
        assert box is not None and box["width"] > 150 and box["height"] > 100
        assert svg.locator("path").count() > 5
    # the confusion matrix's counts are text in the figure, summing to the rows
    cells = page.locator("figure").first.locator("text").all_text_contents()
    assert sum(int(t) for t in cells if t.strip().isdigit()) >= 150
    assert page.locator("#slices table.slices tbody tr").count() == 3
    # each slice's figures carry their own interval, as the result has them
    first = next(s for s in r.slices if s.value == page.locator(
        "#slices table.slices tbody tr").first.locator("td").first.inner_text())
    cell = page.locator("#slices table.slices tbody tr").first.locator("td").nth(2).inner_text()
    assert f"({fmt(first.low['accuracy'])} – {fmt(first.high['accuracy'])})" in cell
    assert "95% interval" in page.locator("#slices caption").first.inner_text()
    assert page.locator("#slices table.bias tbody tr").count() > 0
    model_text = page.locator("#model").inner_text()
    assert "sepal_length" in model_text  # the signature
    # and its lineage: the model's uuid and when it was saved
    assert r.model.model_uuid and r.model.model_uuid in model_text
    assert r.model.created and str(r.model.created) in model_text
    assert page.locator("#baseline").count() == 1
    assert browser_page.console_errors == []
    assert browser_page.failed_requests == []


def test_regressor_report_renders(ridge_dir: Path, diabetes: pd.DataFrame, tmp_path: Path,
                                  browser_page: Any) -> None:
    r = satchel.evaluate(ridge_dir, diabetes, "progression", slice_by=["sex_group"],
                         resamples=100)
    path = tmp_path / "reg.html"
    report.write(r, path)
    _self_contained(path.read_text())
    page = browser_page.page
    page.goto(path.as_uri())
    assert page.locator("#metrics tbody tr").all_inner_texts()[0].startswith("mae")
    assert page.locator("figure figcaption").all_inner_texts() == [
        "Residuals", "Actual against predicted", "rmse by sex_group"]
    # one marker per sampled row in the residual plot
    assert page.locator("figure").first.locator("svg use").count() > 400
    assert page.locator("#comparison").count() == 0
    assert browser_page.console_errors == []
    assert browser_page.failed_requests == []
