"""Shared fixtures: tiny models trained on datasets that ship with scikit-learn."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest


@pytest.fixture(scope="session")
def iris() -> tuple[Any, Any]:
    """Iris features (DataFrame, float64 columns) and labels (Series)."""
    from sklearn.datasets import load_iris

    X, y = load_iris(return_X_y=True, as_frame=True)
    X.columns = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    return X, y


@pytest.fixture(scope="session")
def iris_logreg(iris: tuple[Any, Any]) -> Any:
    from sklearn.linear_model import LogisticRegression

    X, y = iris
    return LogisticRegression(max_iter=1000).fit(X, y)


@pytest.fixture(scope="session")
def iris_model_dir(
    tmp_path_factory: pytest.TempPathFactory, iris: tuple[Any, Any], iris_logreg: Any
) -> Path:
    """A saved LogisticRegression with a signature and input example (read-only: copy to change)."""
    import satchel

    path = tmp_path_factory.mktemp("models") / "iris"
    satchel.save_model(iris_logreg, path, input_example=iris[0].head(5))
    return path


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def port() -> Iterator[int]:
    yield free_port()


@pytest.fixture(scope="session", autouse=True)
def _no_requirement_inference() -> Iterator[None]:
    """Saving a python model infers its requirements by loading it in a subprocess (1-4 s
    a save); the suite saves hundreds of models, so only the tests about that inference
    (tests/test_requirements.py turns it back on) pay for it."""
    import os

    before = os.environ.get("SATCHEL_INFER_REQUIREMENTS")
    os.environ["SATCHEL_INFER_REQUIREMENTS"] = "0"
    yield
    if before is None:
        os.environ.pop("SATCHEL_INFER_REQUIREMENTS", None)
    else:
        os.environ["SATCHEL_INFER_REQUIREMENTS"] = before


_MUST_RUN = ("spark", "docker", "interop", "browser", "postgres", "pandas2")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A Spark, Docker or interop test that skips is a failure, not a pass.

    These tests need real tools; when one is missing the run must say so loudly.
    Deselect them explicitly (``-m "not docker"``) to run without the tool.
    """
    outcome = yield
    report = outcome.get_result()
    marks = [m for m in _MUST_RUN if item.get_closest_marker(m)]
    if report.skipped and marks and not hasattr(report, "wasxfail"):
        reason = report.longrepr[-1] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = (
            f"{marks[0]} test skipped ({reason}); it must run — deselect it "
            f"with -m 'not {marks[0]}' if the tool is unavailable"
        )


# --- a real headless Chromium (Debian's package), driven by playwright ----------------

CHROMIUM = "/usr/bin/chromium"
# As root in a sandbox with no network: no sandbox, no GPU, and none of the background
# connections that the closed network would refuse.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync"]


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """A headless Chromium browser for one test module (the `browser` marker's tool).

    Module-scoped: playwright's sync API keeps an asyncio loop running in this thread
    while it is open, and later tests that call ``asyncio.run`` must not find one.
    """
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is not installed (Debian package chromium)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


class BrowserPage:
    """A page plus the console errors and failed requests it produced."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.console_errors: list[str] = []
        self.failed_requests: list[str] = []
        page.on("console", lambda m: self.console_errors.append(m.text)
                if m.type == "error" else None)
        page.on("pageerror", lambda e: self.console_errors.append(str(e)))
        page.on("requestfailed", lambda r: self.failed_requests.append(r.url))


@pytest.fixture
def browser_page(chromium: Any) -> Iterator[BrowserPage]:
    """A fresh page in its own context (no cookies shared between tests)."""
    context = chromium.new_context()
    try:
        yield BrowserPage(context.new_page())
    finally:
        context.close()


# --- a model saved with a reference profile (monitoring tests, offline and served) ------


def make_frame(n: int, seed: int, shift: float = 0.0, city: str | None = None) -> Any:
    """Rows like the reference (income, age, city), optionally with income shifted."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "income": rng.normal(50.0 + shift, 10.0, n),
        "age": rng.normal(40.0, 12.0, n),
        "city": city if city is not None else rng.choice(["paris", "lyon", "nice"], n),
    })


@pytest.fixture(scope="session")
def reference() -> Any:
    return make_frame(2000, seed=1)


@pytest.fixture(scope="session")
def profiled_model_dir(tmp_path_factory: pytest.TempPathFactory, reference: Any) -> Path:
    from sklearn.compose import make_column_transformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    import satchel

    y = (reference["income"] + reference["age"] > 90).astype(int)
    pipe = make_pipeline(
        make_column_transformer((OneHotEncoder(handle_unknown="ignore"), ["city"]),
                                remainder="passthrough"),
        LogisticRegression(max_iter=1000)).fit(reference, y)
    path = tmp_path_factory.mktemp("mon") / "credit"
    satchel.save_model(pipe, path, input_example=reference.head(3), reference_data=reference)
    return path
