"""Drift figures: near zero for reference-like data, large for shifted columns only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import satchel
from satchel.monitoring import Profile, Tally, js_distance, psi
from satchel.monitoring.profile import build_profile

from ..conftest import make_frame


def test_psi_and_js_of_identical_histograms_are_zero() -> None:
    h = [0.1, 0.2, 0.3, 0.4]
    assert psi(h, h) == pytest.approx(0.0)
    assert js_distance(h, h) == pytest.approx(0.0)
    assert js_distance([1, 0], [0, 1]) == pytest.approx(1.0)
    assert psi([0.5, 0.5], [0.9, 0.1]) > 0.2


def _tally(model_dir: Path, frame: Any) -> Tally:
    model = satchel.load_model(model_dir)
    tally = Tally(Profile.read(model_dir))
    for start in range(0, len(frame), 100):  # several batches, as a server would see
        part = frame.iloc[start:start + 100]
        tally.add(part, model.predict(part))
    return tally


def test_reference_like_data_shows_no_drift(profiled_model_dir: Path) -> None:
    ins, outs = _tally(profiled_model_dir, make_frame(3000, seed=7)).figures()
    assert all(f.psi is not None and f.psi < 0.05 for f in ins + outs), ins + outs
    assert all(f.out_of_range_rate is not None and f.out_of_range_rate < 0.01 for f in ins)


def test_shifted_columns_and_only_those_drift(profiled_model_dir: Path) -> None:
    current = make_frame(3000, seed=7, shift=25.0)
    current.loc[current.index[:600], "city"] = "marseille"  # a category never seen
    ins, _ = _tally(profiled_model_dir, current).figures()
    by = {f.column: f for f in ins}
    assert by["income"].psi > 0.2 and by["city"].psi > 0.2
    assert by["age"].psi < 0.05
    assert by["city"].out_of_range_rate == pytest.approx(0.2)
    assert by["income"].out_of_range_rate > 0.05


def test_null_rate_is_reported(profiled_model_dir: Path) -> None:
    frame = make_frame(500, seed=3)
    frame.loc[frame.index[:100], "age"] = np.nan
    tally = Tally(Profile.read(profiled_model_dir))
    tally.add(frame)
    by = {f.column: f for f in tally.figures()[0]}
    assert by["age"].null_rate == pytest.approx(0.2)
    assert by["income"].null_rate == 0.0


def test_tallies_merge_and_decay_exactly(profiled_model_dir: Path) -> None:
    profile = Profile.read(profiled_model_dir)
    a, b, whole = Tally(profile), Tally(profile), Tally(profile)
    f1, f2 = make_frame(300, seed=1), make_frame(300, seed=2, shift=5)
    a.add(f1)
    b.add(f2)
    whole.add(f1)
    whole.add(f2)
    a.merge(b)
    assert a.inputs["income"].bins.tolist() == whole.inputs["income"].bins.tolist()
    half = whole.scaled(0.5)
    assert half.inputs["income"].total == pytest.approx(300)
    # decay changes weights, not the shape of the distribution
    assert half.figures()[0][0].psi == pytest.approx(whole.figures()[0][0].psi)
    back = Tally.from_dict(profile, whole.to_dict())
    assert back.report() == whole.report()


def test_no_profile_gives_raw_figures_only() -> None:
    tally = Tally(None)
    tally.add(make_frame(200, seed=1))
    report = tally.report()
    assert report["has_reference"] is False and report["inputs"] == []
    raw = {r["column"]: r for r in report["raw_inputs"]}
    assert raw["income"]["mean"] == pytest.approx(50, abs=3)
    assert raw["city"]["mean"] is None


def test_raw_columns_are_bounded() -> None:
    import pandas as pd

    tally = Tally(None)
    for i in range(10):
        tally.add(pd.DataFrame({f"c{i}_{j}": [1.0] for j in range(100)}))
    assert len(tally.raw_inputs) == 256


def test_non_numeric_values_in_a_numeric_column_count_as_out_of_range() -> None:
    import pandas as pd

    profile = build_profile(pd.DataFrame({"x": np.arange(200.0)}))
    tally = Tally(profile)
    tally.add(pd.DataFrame({"x": ["a", "b"]}))
    assert tally.figures()[0][0].out_of_range_rate == 1.0
