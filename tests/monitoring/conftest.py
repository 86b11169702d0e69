"""A model with a categorical and numeric inputs, saved with a reference profile."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest


def make_frame(n: int, seed: int, shift: float = 0.0, city: str | None = None) -> Any:
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
