"""Conformance suite for flavor plugins, built-in or third-party.

A plugin's own tests call :func:`check_flavor` with an object its flavor saves and a
sample input; every check that fails raises ``AssertionError`` naming the flavor and the
check. Modelled on scikit-learn's ``check_estimator``.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from satchel import plugins
from satchel.errors import DestinationExistsError, IntegrityError, PickleNotAllowedError
from satchel.flavor import REQUIRED_MEMBERS, LoadConfig
from satchel.manifest import PYFUNC, Manifest
from satchel.model import load_model
from satchel.save import save_model


class _Checker:
    def __init__(self, flavor_name: str) -> None:
        self.flavor_name = flavor_name
        self.passed: list[str] = []

    def check(self, name: str, ok: bool, detail: str = "") -> None:
        if not ok:
            raise AssertionError(
                f"flavor '{self.flavor_name}' fails check '{name}'"
                + (f": {detail}" if detail else "")
            )
        self.passed.append(name)


def _native_output(obj: Any, sample: Any) -> Any:
    if hasattr(obj, "predict"):
        return obj.predict(sample)
    return obj(sample)


def assert_outputs_equal(got: Any, want: Any, *, rtol: float = 1e-6, atol: float = 1e-9) -> None:
    """Assert two predictions are equal up to float tolerance, whatever their container."""
    import pandas as pd

    if isinstance(want, (pd.DataFrame, pd.Series)):
        want = want.to_numpy()
    if isinstance(got, (pd.DataFrame, pd.Series)):
        got = got.to_numpy()
    if isinstance(want, dict):
        assert isinstance(got, dict) and set(got) == set(want), (
            f"keys {sorted(got)} != {sorted(want)}"
        )
        for k in want:
            assert_outputs_equal(got[k], want[k], rtol=rtol, atol=atol)
        return
    g, w = np.asarray(got), np.asarray(want)
    assert g.shape == w.shape, f"shape {g.shape} != {w.shape}"
    if g.dtype.kind in "fc" or w.dtype.kind in "fc":
        np.testing.assert_allclose(g.astype(float), w.astype(float), rtol=rtol, atol=atol)
    else:
        assert (g == w).all(), "values differ"


def check_flavor(
    flavor_name: str,
    obj: Any,
    sample_input: Any,
    *,
    native_predict: Callable[[Any, Any], Any] | None = None,
    save_options: dict[str, Any] | None = None,
    load_options: dict[str, Any] | None = None,
    native_type: str | None = None,
) -> list[str]:
    """Run the round-trip conformance checks for one flavor.

    Args:
        flavor_name: the entry-point name of the flavor under test.
        obj: an object the flavor saves.
        sample_input: input the object predicts on (also saved as the input example).
        native_predict: ``f(obj, sample) -> output`` giving the native object's output;
            default ``obj.predict(sample)`` or ``obj(sample)``.
        save_options: extra keyword arguments for ``save_model`` (flavor options).
        load_options: extra keyword arguments for ``load_model``.
        native_type: the class name ``unwrap()`` gives when the flavor stores another
            form than the object it was given (an exported program); default the
            object's own class name.

    Returns:
        The names of the checks that passed.
    """
    c = _Checker(flavor_name)
    flavor = plugins.get(flavor_name)
    c.check("protocol", all(hasattr(flavor, m) for m in REQUIRED_MEMBERS))
    c.check("can_save", bool(flavor.can_save(obj)), f"can_save({type(obj).__name__}) is False")
    reqs = flavor.default_requirements()
    c.check(
        "default_requirements", isinstance(reqs, list) and all(isinstance(r, str) for r in reqs)
    )
    expected = (native_predict or _native_output)(obj, sample_input)
    tmp = Path(tempfile.mkdtemp(prefix="satchel-check-"))
    try:
        path = tmp / "model"
        save_model(
            obj, path, flavor=flavor_name, input_example=sample_input, **(save_options or {})
        )
        leftovers = [p.name for p in tmp.iterdir() if p.name != "model"]
        c.check("save_is_atomic", not leftovers, f"temporary files left: {leftovers}")
        manifest = Manifest.read(path)
        pyfunc = manifest.pyfunc or {}
        c.check("manifest_sections", PYFUNC in manifest.flavors and flavor_name in manifest.flavors)
        c.check("loader_module", bool(pyfunc.get("loader_module")))
        c.check(
            "signature_written",
            manifest.signature is not None and manifest.signature.inputs is not None,
        )
        c.check(
            "example_written",
            bool(manifest.saved_input_example_info) and (path / "input_example.json").is_file(),
        )
        c.check(
            "env_written",
            all(
                (path / f).is_file() for f in ("requirements.txt", "python_env.yaml", "conda.yaml")
            ),
        )
        c.check("digests_written", bool(manifest.artifact_digests))
        model = load_model(path, **(load_options or {}))
        got = model.predict(sample_input)
        try:
            assert_outputs_equal(got, expected)
            same = ""
        except AssertionError as exc:
            same = str(exc) or "outputs differ"
        c.check("predict_matches_native", not same, same)
        example = model.input_example()
        c.check(
            "example_predicts",
            example is not None and model.predict_detailed(example.data, example.params).rows > 0,
        )
        declared = model.row_independent
        c.check(
            "row_independence_declared",
            isinstance(getattr(flavor, "row_independent", None), bool)
            or isinstance(getattr(model._predictor, "row_independent", None), bool),
            "neither the flavor nor its predictor says whether rows are independent",
        )
        halves = _halves(sample_input)
        if declared and halves is not None:
            # A flavor that says its rows are independent lets the server merge requests:
            # predicting the sample in two parts must give what predicting it whole gives.
            try:
                merged = _joined(model.predict(halves[0]), model.predict(halves[1]))
                assert_outputs_equal(merged, got, rtol=1e-5, atol=1e-7)
                split = ""
            except AssertionError as exc:
                split = str(exc) or "outputs differ"
            c.check("row_independence_holds", not split, f"two halves predict otherwise: {split}")
        native = model.unwrap()
        c.check(
            "unwrap_type",
            type(native).__name__ == (native_type or type(obj).__name__) or flavor_name == "onnx",
            f"unwrap() gave {type(native).__name__}",
        )
        unsafe = getattr(flavor, "unsafe_format", None)
        fmt = (
            unsafe(LoadConfig(section=manifest.flavors[flavor_name], pyfunc=pyfunc))
            if unsafe
            else None
        )
        if fmt:
            try:
                load_model(path, allow_code=False, **(load_options or {}))
                refused = False
            except PickleNotAllowedError:
                refused = True
            c.check("allow_code_false_refuses", refused, f"{fmt} loaded with allow_code=False")
        else:
            # the other half of "refuses exactly the formats that run code": a format that
            # runs none loads under allow_code=False and predicts the same
            try:
                safe = load_model(path, **{**(load_options or {}), "allow_code": False})
                refusal = ""
                assert_outputs_equal(safe.predict(sample_input), expected)
            except PickleNotAllowedError as exc:
                refusal = f"refused although it names no format that runs code: {exc}"
            except AssertionError as exc:
                refusal = f"predicts otherwise under allow_code=False: {exc}"
            c.check("allow_code_false_loads", not refusal, refusal)
        try:
            save_model(obj, path, flavor=flavor_name, **(save_options or {}))
            kept = False
        except DestinationExistsError:
            kept = True
        c.check("refuses_existing_destination", kept)
        data_file = _largest_data_file(path, manifest)
        with open(data_file, "ab") as f:
            f.write(b"\0")
        try:
            load_model(path, **(load_options or {}))
            detected = False
        except IntegrityError as exc:
            detected = exc.file == data_file.relative_to(path).as_posix()
        c.check("tamper_detected", detected, f"changing {data_file.name} was not detected")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return c.passed


def _halves(sample: Any) -> tuple[Any, Any] | None:
    """The sample split into two parts of rows, or None when it has fewer than two rows
    or is not a table, array or list (a dict of tensors is left alone)."""
    import pandas as pd

    if isinstance(sample, (pd.DataFrame, pd.Series)):
        k = len(sample) // 2
        return (sample.iloc[:k], sample.iloc[k:]) if k else None
    if isinstance(sample, (np.ndarray, list)) and np.ndim(sample) >= 1:
        k = len(sample) // 2
        return (sample[:k], sample[k:]) if k else None
    return None


def _joined(first: Any, second: Any) -> Any:
    import pandas as pd

    if isinstance(first, (pd.DataFrame, pd.Series)):
        return pd.concat([first, second])
    if isinstance(first, dict):
        return {k: np.concatenate([np.asarray(first[k]), np.asarray(second[k])]) for k in first}
    return np.concatenate([np.asarray(first), np.asarray(second)])


def _largest_data_file(path: Path, manifest: Manifest) -> Path:
    digests = manifest.artifact_digests or {}
    return max((path / rel for rel in digests), key=lambda p: p.stat().st_size)
