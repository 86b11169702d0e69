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
