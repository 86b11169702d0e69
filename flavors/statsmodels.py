"""statsmodels flavor: a fitted results object, stored with its own ``save`` (pickle).

statsmodels has no other format, and MLflow stores it the same way
(``loader_module: mlflow.statsmodels``; ``statsmodels_version``, ``data:
model.statsmodels``), so MLflow loads what satchel saves and the other way round. The
file is a pickle: it runs code when loaded and ``load_model(allow_code=False)`` refuses
it.

Prediction follows MLflow's pyfunc: a time-series model (ARIMA, AutoReg, ...) takes a
one-row frame with ``start`` and ``end`` and forecasts that range, so its predictions are
not row-independent and it is never batched with other requests; any other model gets
``results.predict(data)``. statsmodels is imported only when a model is saved or loaded.
"""

from __future__ import annotations

import copy
import os
import pickle
import sys
from pathlib import Path
from typing import Any

import numpy as np

from satchel.errors import ModelFormatError, SignatureError
from satchel.flavor import FlavorConfig, LoadConfig
from satchel.libs import native_file_error, require, warn_if_newer
from satchel.manifest import Manifest
from satchel.paths import inside

DATA_FILE = "model.statsmodels"  # MLflow's name


def _require() -> Any:
    return require("statsmodels", flavor="statsmodels")


def _is_results(obj: Any) -> bool:
    from statsmodels.base.model import Results
    from statsmodels.base.wrapper import ResultsWrapper

    return isinstance(obj, (Results, ResultsWrapper))


class StatsmodelsFlavor:
    """The ``statsmodels`` flavor."""

    name = "statsmodels"
    loader_module = "mlflow.statsmodels"
    # Regression results predict row by row; time-series ones declare otherwise on their
    # predictor (see StatsmodelsPredictor).
    row_independent = True
    # the load_model options it reads (others are refused; satchel._loadopts)
    load_options: tuple[str, ...] = ()

    def can_save(self, obj: Any) -> bool:
        if "statsmodels" not in sys.modules:
            return False  # a statsmodels object cannot exist before statsmodels is imported
        return _is_results(obj)

    def save(self, obj: Any, path: Path, *, remove_data: bool = False) -> FlavorConfig:
        """Write ``obj.save(model.statsmodels, remove_data)``; ``remove_data`` drops the
        training arrays to make the file smaller (prediction still works)."""
        sm = _require()
        if not _is_results(obj):
            raise ModelFormatError(
                f"the statsmodels flavor saves fitted results objects, not "
                f"{type(obj).__module__}.{type(obj).__qualname__}"
            )
        if remove_data:
            # statsmodels removes the data from the object itself; the caller's model
            # must stay as it was.
            obj = copy.deepcopy(obj)
        obj.save(str(path / DATA_FILE), remove_data=bool(remove_data))
        return FlavorConfig(
            section={"statsmodels_version": sm.__version__, "data": DATA_FILE, "code": None},
            pyfunc={"data": DATA_FILE},
        )

    def default_requirements(self) -> list[str]:
        return ["statsmodels"]

    def unsafe_format(self, config: LoadConfig) -> str | None:
        return "pickle"  # statsmodels' only format

    def load(self, path: Path, config: LoadConfig) -> Any:
        section = config.section
        rel = str(section.get("data") or config.pyfunc.get("data") or DATA_FILE)
        file = inside(path, rel, what="statsmodels model file")
        _require()
        warn_if_newer(
            "statsmodels", section.get("statsmodels_version"), what=f"{path.name} ({rel})"
        )
        from statsmodels.iolib.smpickle import load_pickle

        try:
            model = load_pickle(str(file))
        except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, ValueError) as exc:
            raise native_file_error(file, "statsmodels", exc) from None
        if not _is_results(model):
            raise ModelFormatError(
                f"{rel} holds a {type(model).__name__}, not a statsmodels results object",
                path=str(file),
            )
        return model

    def load_predictor(self, path: Path, config: LoadConfig) -> StatsmodelsPredictor:
        return StatsmodelsPredictor(self.load(path, config))


class StatsmodelsPredictor:
    """MLflow's statsmodels pyfunc: a range forecast for time series, else ``predict``."""

    def __init__(self, results: Any) -> None:
        from statsmodels.tsa.base.tsa_model import TimeSeriesModel

        self.results = results
        self.time_series = isinstance(results.model, TimeSeriesModel)
        # One forecast per request, whatever the rows: requests must not be merged.
        self.row_independent = not self.time_series
        self._array_path = not self.time_series and _predicts_on_arrays(results)

    def predict(self, data: Any, params: dict[str, Any] | None = None) -> Any:
        if not self.time_series:
            if self._array_path:
                values = _numeric_values(data)
                if values is not None:
                    return _as_statsmodels_gives(self.results.predict(values), data)
            return self.results.predict(data)
        columns = list(getattr(data, "columns", []))
        rows = len(data) if hasattr(data, "__len__") else 0
        if rows != 1 or "start" not in columns or "end" not in columns:
            raise SignatureError(
                "a time-series statsmodels model takes exactly one row with columns 'start' "
                f"and 'end'; got {rows} row(s) with columns {columns[:10]}",
                expected="one row with columns start, end",
                given=f"{rows} row(s), columns {columns[:10]}",
            )
        start, end = data["start"].iloc[0], data["end"].iloc[0]
        return self.results.predict(start=start, end=end)


# --- the array path -----------------------------------------------------------------
#
# For a model fitted without a formula, statsmodels' ``Results.predict`` turns a DataFrame
# into ``np.asarray(frame)``, predicts on that array and puts the frame's index on the
# answer (a Series, or a DataFrame for 2-D answers). Half its time at 1,000 rows is
# pandas overhead around that: ``np.asarray`` probes the frame for numpy's array
# attributes, and each probe falls back to a search of the column labels (~12 us). The
# array path gives statsmodels the same array (``to_numpy`` and ``np.asarray`` both
# return the block manager's ``as_array()``: same values, same memory layout, so the
# same floating-point result) and puts the index back as statsmodels does.


def _predicts_on_arrays(results: Any) -> bool:
    """True when ``results.predict(frame)`` is statsmodels' generic ``Results.predict``
    with no formula to apply: the only case the array path reproduces."""
    from statsmodels.base.model import Results
    from statsmodels.base.wrapper import ResultsWrapper

    inner = results._results if isinstance(results, ResultsWrapper) else results
    if isinstance(results, ResultsWrapper) and "predict" in type(results).__dict__:
        return False  # a wrapper that wraps predict's answer itself
    cls = type(inner)
    return (
        cls.predict is Results.predict
        and cls._transform_predict_exog is Results._transform_predict_exog
        and not hasattr(inner.model, "formula")
    )


def _numeric_values(data: Any) -> Any:
    """``data.to_numpy()`` for a DataFrame whose blocks are all numpy ints or floats (what
    ``np.asarray`` gives it too), else None: anything else takes statsmodels' own path."""
    pd = sys.modules.get("pandas")
    if pd is None or type(data) is not pd.DataFrame:
        return None
    arrays = getattr(getattr(data, "_mgr", None), "arrays", None)
    if arrays is None:
        return None
    for a in arrays:
        if type(a) is not np.ndarray or a.dtype.kind not in "iuf":
            return None
    return data.to_numpy()


def _as_statsmodels_gives(out: Any, data: Any) -> Any:
    """The answer with the frame's index, as ``Results.predict`` returns it for a frame."""
    if hasattr(out, "predicted_values"):
        return out
    pd = sys.modules["pandas"]
    # copy=False only for a new ndarray, which nobody else holds (pandas copies it for
    # statsmodels: the same values either way)
    copy = type(out) is not np.ndarray
    if out.ndim == 1:
        return pd.Series(out, index=data.index, copy=copy)
    return pd.DataFrame(out, index=data.index, copy=copy)


def save_model(results: Any, path: str | os.PathLike[str], **kwargs: Any) -> Manifest:
    """Save a fitted statsmodels results object; keyword arguments as
    :func:`satchel.save_model`, plus ``remove_data``."""
    from satchel.save import save_model as _save

    return _save(results, path, flavor="statsmodels", **kwargs)


def load_model(path: str | os.PathLike[str], **kwargs: Any) -> Any:
    """Load the results object of a saved statsmodels model (unpickles it)."""
    from satchel.model import load_model as _load

    model = _load(path, **kwargs)
    if model.flavor.name != "statsmodels":
        raise ModelFormatError(f"{path} is a {model.flavor.name} model, not statsmodels")
    return model.unwrap()
