"""Flavor discovery through entry points: lazy, by name, with errors naming the plugin."""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import satchel
from satchel import plugins
from satchel.errors import CodeNotAllowedError, FlavorLoadError, FlavorNotFoundError
from satchel.flavor import FlavorConfig, LoadConfig
from satchel.testing import check_flavor


class TinyFlavor:
    """A third-party-style flavor for objects of type Tiny."""

    name = "tiny"

    def can_save(self, obj: Any) -> bool:
        return isinstance(obj, Tiny)

    def save(self, obj: Any, path: Path, **options: Any) -> FlavorConfig:
        (path / "k.txt").write_text(str(obj.k))
        return FlavorConfig(section={"data": "k.txt"})

    def load(self, path: Path, config: LoadConfig) -> Any:
        return Tiny(int((path / config.section["data"]).read_text()))

    def load_predictor(self, path: Path, config: LoadConfig) -> Any:
        return self.load(path, config)

    def default_requirements(self) -> list[str]:
        return []


class Tiny:
    def __init__(self, k: int) -> None:
        self.k = k

    def predict(self, data: Any, params: Any = None) -> Any:
        return data * self.k


class Incomplete:
    name = "incomplete"


@pytest.fixture
def fake_entry_points(monkeypatch: pytest.MonkeyPatch) -> None:
    """Add entry points the way an installed third-party distribution would."""
    real = metadata.entry_points
    extra = [
        metadata.EntryPoint("tiny", f"{__name__}:TinyFlavor", plugins.GROUP),
        metadata.EntryPoint("incomplete", f"{__name__}:Incomplete", plugins.GROUP),
        metadata.EntryPoint("ghost", "satchel_ghost_plugin_xyz:Flavor", plugins.GROUP),
    ]

    def fake(**kwargs: Any) -> metadata.EntryPoints:
        eps = list(real(**kwargs))
        if kwargs.get("group") == plugins.GROUP:
            eps += extra
        return metadata.EntryPoints(eps)

    monkeypatch.setattr(metadata, "entry_points", fake)
    yield
    for name in ("tiny", "incomplete", "ghost"):
        plugins.unregister(name)


def test_available_lists_builtins_without_importing_them() -> None:
    code = (
        "import sys, satchel.plugins as r; names = r.available(); "
        "print(','.join(names)); print('satchel.flavors.sklearn' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    names, imported = out.stdout.split()
    assert {"sklearn", "python", "onnx"} <= set(names.split(","))
    assert imported == "False"


def test_third_party_flavor_round_trip(tmp_path: Path, fake_entry_points: None) -> None:
    satchel.save_model(Tiny(3), tmp_path / "m")
    model = satchel.load_model(tmp_path / "m")
    assert model.manifest.pyfunc["loader_module"] == "satchel.flavors.tiny"  # type: ignore[index]
    assert model.predict([1, 2]).tolist() == [3, 6]


def test_incomplete_plugin_named_with_missing_members(fake_entry_points: None) -> None:
    with pytest.raises(FlavorLoadError, match=r"'incomplete' \(Incomplete\) lacks can_save, save"):
        plugins.get("incomplete")


def test_unimportable_plugin_named(fake_entry_points: None) -> None:
    with pytest.raises(FlavorLoadError, match="flavor 'ghost'.*satchel_ghost_plugin_xyz"):
        plugins.get("ghost")


def test_broken_plugin_does_not_stop_saving_with_others(
    tmp_path: Path, iris_logreg: Any, fake_entry_points: None
) -> None:
    satchel.save_model(iris_logreg, tmp_path / "m")
    assert satchel.load_model(tmp_path / "m").flavor.name == "sklearn"


def test_unknown_flavor_lists_installed() -> None:
    with pytest.raises(FlavorNotFoundError, match="installed flavors: .*python.*sklearn"):
        plugins.get("nope")


def test_explicit_registration_for_notebooks(tmp_path: Path) -> None:
    plugins.register("tiny", TinyFlavor())
    try:
        satchel.save_model(Tiny(2), tmp_path / "m", flavor="tiny")
        assert satchel.load_model(tmp_path / "m").predict([5]).tolist() == [10]
    finally:
        plugins.unregister("tiny")


class Running:
    """A model whose predictions depend on the rows before: a running total."""

    def predict(self, data: Any, params: Any = None) -> Any:
        return np.cumsum(np.asarray(data, dtype=float))


class RunningFlavor:
    """Says its rows are independent, and they are not."""

    name = "running"
    row_independent = True

    def can_save(self, obj: Any) -> bool:
        return isinstance(obj, Running)

    def save(self, obj: Any, path: Path, **options: Any) -> FlavorConfig:
        (path / "r.txt").write_text("running")
        return FlavorConfig(section={"data": "r.txt"})

    def load(self, path: Path, config: LoadConfig) -> Any:
        return Running()

    def load_predictor(self, path: Path, config: LoadConfig) -> Any:
        return Running()

    def default_requirements(self) -> list[str]:
        return []


class UndeclaredFlavor(RunningFlavor):
    """Never says whether its rows are independent."""

    name = "undeclared"
    row_independent = None  # type: ignore[assignment]


class ShyFlavor(TinyFlavor):
    """Runs no code on load (no unsafe_format) and still refuses allow_code=False."""

    name = "shy"
    row_independent = True

    def load_predictor(self, path: Path, config: LoadConfig) -> Any:
        if not config.options.get("allow_code", True):
            raise CodeNotAllowedError("refused")
        return self.load(path, config)


@pytest.mark.parametrize(
    "flavor, obj, check",
    [
        (RunningFlavor(), Running(), "row_independence_holds"),
        (UndeclaredFlavor(), Running(), "row_independence_declared"),
        (ShyFlavor(), Tiny(2), "allow_code_false_loads"),
    ],
)
def test_check_flavor_catches_a_flavor_that_says_otherwise(
    flavor: Any, obj: Any, check: str
) -> None:
    plugins.register(flavor.name, flavor)
    try:
        with pytest.raises(AssertionError, match=f"fails check '{check}'"):
            check_flavor(flavor.name, obj, np.array([1.0, 2.0, 3.0, 4.0]))
    finally:
        plugins.unregister(flavor.name)
