"""The reference profile: built at save, digested, checked against the signature."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import satchel
from satchel.errors import IntegrityError, ProfileError
from satchel.monitoring import PROFILE_FILE, Profile, build_profile
from satchel.monitoring.reference import SmallReferenceWarning, write_profile


def test_save_writes_a_digested_profile(profiled_model_dir: Path) -> None:
    manifest = satchel.load_model(profiled_model_dir).manifest
    assert PROFILE_FILE in (manifest.artifact_digests or {})
    profile = Profile.read(profiled_model_dir)
    assert profile is not None and profile.rows == 2000
    kinds = {c.name: c.kind for c in profile.inputs}
    assert kinds == {"income": "numeric", "age": "numeric", "city": "categorical"}
    # a classifier's 0/1 output is a category, not a quantile histogram
    assert [(c.name, c.kind) for c in profile.outputs] == [("prediction", "categorical")]
    income = profile.column("income")
    assert income is not None and len(income.frequencies) == 10
    assert sum(income.frequencies) == pytest.approx(1.0)
    city = profile.column("city")
    assert city is not None and sorted(city.categories) == ["lyon", "nice", "paris"]


def test_tampered_profile_is_refused(profiled_model_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "m"
    shutil.copytree(profiled_model_dir, copy)
    raw = json.loads((copy / PROFILE_FILE).read_text())
    raw["rows"] = 1
    (copy / PROFILE_FILE).write_text(json.dumps(raw))
    with pytest.raises(IntegrityError, match=PROFILE_FILE):
        satchel.load_model(copy)


def test_profile_rewrites_the_directory_with_new_digests(
    profiled_model_dir: Path, tmp_path: Path, reference: Any
) -> None:
    copy = tmp_path / "m"
    shutil.copytree(profiled_model_dir, copy)
    (copy / PROFILE_FILE).unlink()
    with pytest.raises(IntegrityError):
        satchel.load_model(copy)
    model = satchel.load_model(copy, verify=False)
    from satchel.monitoring import profile_model

    write_profile(copy, profile_model(model, reference.head(500)))
    reloaded = satchel.load_model(copy)  # digests verify again
    assert Profile.read(reloaded.path).rows == 500  # type: ignore[union-attr]


def test_small_reference_warns(tmp_path: Path, reference: Any, profiled_model_dir: Path) -> None:
    model = satchel.load_model(profiled_model_dir)
    from satchel.monitoring import profile_model

    with pytest.warns(SmallReferenceWarning, match="3 rows"):
        profile_model(model, reference.head(3))


def test_profile_column_not_in_signature_is_refused(
    profiled_model_dir: Path, reference: Any, tmp_path: Path
) -> None:
    copy = tmp_path / "m"
    shutil.copytree(profiled_model_dir, copy)
    bad = build_profile(reference.assign(salary=reference["income"]))
    with pytest.raises(ProfileError, match="'salary' is not an input"):
        write_profile(copy, bad)


def test_numeric_profile_for_a_string_column_is_refused(
    profiled_model_dir: Path, tmp_path: Path
) -> None:
    import pandas as pd

    copy = tmp_path / "m"
    shutil.copytree(profiled_model_dir, copy)
    bad = build_profile(pd.DataFrame({"city": np.arange(200.0)}))
    with pytest.raises(ProfileError, match="'city' is numeric but the signature expects string"):
        write_profile(copy, bad)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda r: r.update(format_version=99), "format_version 99"),
        (lambda r: r["inputs"][0].update(frequencies=[1.0]), "frequencies, expected"),
        (lambda r: r["inputs"][0].update(edges=["nan"] * 9), "not finite"),
        (lambda r: r["inputs"][0].update(kind="evil"), "unknown kind"),
        (lambda r: r["inputs"][0].pop("count"), "malformed"),
        (lambda r: r.update(inputs="x"), "must be lists"),
    ],
)
def test_malformed_profiles_are_refused(
    profiled_model_dir: Path, mutate: Any, message: str
) -> None:
    raw = json.loads((profiled_model_dir / PROFILE_FILE).read_text())
    mutate(raw)
    with pytest.raises(ProfileError, match=message):
        Profile.from_json(json.dumps(raw))


def test_all_null_column_profiles_without_bins() -> None:
    import pandas as pd

    profile = build_profile(pd.DataFrame({"x": [np.nan] * 150, "y": np.arange(150.0)}))
    x = profile.column("x")
    assert x is not None and x.null_rate == 1.0 and x.edges == []


def test_empty_reference_is_refused() -> None:
    import pandas as pd

    with pytest.raises(ProfileError, match="no rows"):
        build_profile(pd.DataFrame({"x": []}))


def test_profile_counts_nulls_keeps_the_top_categories_and_string_lengths() -> None:
    """count and null rate per column, the top-K categories plus one "other" share, and a
    histogram of string lengths; numeric columns keep their reference range."""
    import pandas as pd

    rng = np.random.default_rng(5)
    n = 1000
    names = np.array([f"c{i:02d}" + "x" * (i % 7) for i in range(30)])
    # c00..c09 common, c10..c29 rare: the top 10 cover most rows, "other" the rest
    weights = np.r_[np.full(10, 0.09), np.full(20, 0.005)]
    frame = pd.DataFrame({"cat": rng.choice(names, n, p=weights / weights.sum()),
                          "x": rng.normal(0, 1, n)})
    frame.loc[frame.index[:100], "x"] = np.nan
    profile = build_profile(frame, top_k=10)
    cat, x = profile.column("cat"), profile.column("x")
    assert cat is not None and x is not None
    assert cat.count == n and cat.null_rate == 0.0 and x.count == n
    assert x.null_rate == pytest.approx(0.1)
    assert len(cat.categories) == 10 and cat.truncated
    assert set(cat.categories) == set(names[:10])
    assert len(cat.frequencies) == 11  # ten kept and "other"
    other = frame["cat"].isin(names[10:]).mean()
    assert cat.frequencies[-1] == pytest.approx(other)
    assert cat.length_edges and sum(cat.length_frequencies) == pytest.approx(1.0)
    assert min(cat.length_edges) >= 3 and max(cat.length_edges) <= 9  # lengths 3..9
    present = frame["x"].dropna()
    assert x.minimum == present.min() and x.maximum == present.max()


def test_save_refuses_reference_data_that_does_not_fit_the_signature(
    tmp_path: Path, reference: Any
) -> None:
    """At save: the column is named, and nothing is left behind (saves are atomic)."""
    from sklearn.linear_model import LinearRegression

    X = reference[["income", "age"]]
    model = LinearRegression().fit(X, reference["income"] * 2)
    path = tmp_path / "m"
    with pytest.raises(ProfileError, match="'age'"):  # a column the model needs is missing
        satchel.save_model(model, path, input_example=X.head(3),
                           reference_data=X[["income"]])
    with pytest.raises(ProfileError, match="'age'"):  # text where it takes numbers
        satchel.save_model(model, path, input_example=X.head(3),
                           reference_data=X.assign(age="old"))
    assert not path.exists() and list(tmp_path.iterdir()) == []
