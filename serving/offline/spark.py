"""Score a Spark DataFrame with a model directory: :func:`spark_udf`.

The model directory is zipped once on the driver and added to the SparkContext as an
archive, so executors read Spark's copy (``SparkFiles``), never the driver's path. Each
Python worker loads the model once and keeps it in :data:`_MODELS`, keyed by a digest of
the directory; every Arrow batch of every task that worker runs reuses it.

Batches arrive as Arrow arrays (``arrow_udf``, Spark 4.1+; older Spark uses an iterator
``pandas_udf`` and Spark's own pandas conversion). They become model input through
``satchel.serving.offline.tabular`` and ``Model.predict_detailed``, as in ``satchel batch``, and
outputs become the result type through ``satchel.serving.offline.spark_types``. This is the one
UDF; ``satchel batch --spark`` (``spark_batch``) and ``satchel evaluate --spark``
(``spark_evaluation``) build on it, and ``spark_session`` holds their shared Spark
plumbing. pyspark is imported inside functions. See docs/spark.md.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import shutil
import tempfile
import threading
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from satchel import plugins
from satchel._fs import MANIFEST_NAME, compute_digests, verify_digests
from satchel.code_policy import check_load_options
from satchel.coercion import enforce_params
from satchel.errors import (
    ModelFormatError,
    OutputError,
    SignatureError,
    UnknownParamsWarning,
)
from satchel.manifest import Manifest
from satchel.model import Model, load_model
from satchel.schema import Schema
from satchel.serving.offline import spark_types, tabular
from satchel.serving.offline.spark_session import pandas3_notice_handled, quote

# digest -> model, in each executor's Python worker (and the driver, in local mode)
_MODELS: dict[str, Model] = {}
_LOCK = threading.Lock()
# (application id, digest) pairs already added to a SparkContext, on the driver
_SHIPPED: set[tuple[str, str]] = set()
_ARCHIVE_DIR: list[Path] = []


@dataclass(frozen=True)
class _Plan:
    """What an executor needs: plain, picklable values (never the model itself)."""

    archive: str
    digest: str
    params: dict[str, Any] | None
    arrow_type: Any
    type_name: str
    load_options: tuple[tuple[str, Any], ...] = ()
    env_python: str | None = None  # env_manager="venv": the environment's interpreter
    env_wheels: str | None = None  # and the shipped wheelhouse to build it from elsewhere


def spark_udf(spark: Any, model_uri: str | os.PathLike[str], result_type: Any = None,
              params: dict[str, Any] | None = None, *, env_manager: str = "local",
              wheelhouse: str | os.PathLike[str] | None = None,
              **load_options: Any) -> SparkUDF:
    """A Spark column function that scores rows with the model at ``model_uri``.

    Args:
        spark: a (classic) SparkSession.
        model_uri: a local model directory (or ``file://`` URI) on the driver, or a
            ``models:/`` registry URI (resolved once, on the driver).
        result_type: a Spark DataType or DDL string; inferred from the output signature
            when None (scalar types, ``array<...>`` for 2-D outputs such as predict_proba,
            ``struct<...>`` for several named outputs).
        params: inference params, checked once here against the param schema and passed
            to every predict call.
        env_manager: ``"local"`` (default): the Python workers load the model themselves;
            ``"venv"``: the model's own environment is built (or reused) once here, on
            the driver, and each Python worker predicts through one model worker running
            in it (see :mod:`satchel.serving.offline.spark_env` for where that works).
        wheelhouse: with ``"venv"``, build offline from this directory of wheels; it is
            also shipped to the executors, and one whose host lacks the environment
            builds it there from these wheels (``satchel env prepare --wheelhouse``).
        **load_options: as :func:`satchel.load_model` (``allow_code``, ``trusted_types``,
            ``allow_mlflow`` ...), checked here and used by every executor's load.

    Returns:
        A :class:`SparkUDF`: ``udf()``, ``udf("a", "b")``, ``udf(col1, col2)`` or
        ``udf(struct(...))`` give a Column.

    Raises:
        ModelFormatError, IntegrityError: the directory is not a usable model.
        FlavorNotFoundError: no installed flavor loads it.
        SignatureError: params do not fit the param schema.
        OutputError: ``result_type`` is unsupported, or cannot be inferred.
    """
    root = _local_dir(model_uri)
    manifest = Manifest.read(root)
    if manifest.artifact_digests:
        verify_digests(root, manifest.artifact_digests)
    plugins.for_manifest(manifest, source=str(root / MANIFEST_NAME))
    # A model refused for running code is refused here, not in every executor.
    check_load_options(root, **load_options)
    from satchel.serving.offline import spark_env

    env_python = spark_env.prepare(root, env_manager, wheelhouse)
    env_wheels = (spark_env.ship_wheelhouse(spark, wheelhouse)
                  if env_python is not None and wheelhouse is not None else None)
    sig = manifest.signature
    checked: dict[str, Any] | None = dict(params) if params else None
    if sig is not None:
        checked, unknown = enforce_params(params, sig.params)
        if unknown:
            warnings.warn(UnknownParamsWarning(
                f"ignored params not in the param schema: {unknown}"), stacklevel=2)
    spark_type = _parse_type(result_type if result_type is not None
                             else spark_types.infer_ddl(sig.outputs if sig is not None else None))
    arrow_type = _arrow_type(spark_type, spark_type.simpleString())  # OutputError if unsupported
    archive, digest = _ship(spark, root, manifest)
    plan = _Plan(archive, digest, checked, arrow_type, spark_type.simpleString(),
                 tuple(sorted(load_options.items())), env_python, env_wheels)
    return SparkUDF(plan, spark_type, sig.inputs if sig is not None else None, root.name)


class SparkUDF:
    """A model as a Spark column function (see :func:`spark_udf`).

    Columns are bound to the model's inputs on the driver: no arguments means every
    input of the signature by name; string arguments that all name signature inputs are
    matched by name; otherwise arguments are positional, in the signature's order. A
    single struct column stands for its fields, matched by field name.
    """

    def __init__(self, plan: _Plan, return_type: Any, inputs: Schema | None, name: str) -> None:
        self._plan = plan
        self._inputs = inputs
        self._name = name
        self.returnType = return_type

    def __call__(self, *cols: Any) -> Any:
        names, columns = self._bind(cols)
        return _make_udf(self._plan, names, self.returnType)(*columns)

    def _bind(self, cols: tuple[Any, ...]) -> tuple[list[str], list[Any]]:
        from pyspark.sql import functions as F

        schema = self._inputs
        if not cols:
            if schema is None:
                raise SignatureError(f"model '{self._name}' has no input signature, so udf() "
                                     "cannot pick columns; pass them: udf('a', 'b') or "
                                     "udf(struct(...))")
            if schema.is_tensor and not schema.has_names:
                raise SignatureError(f"model '{self._name}' takes one unnamed tensor; pass its "
                                     "array column: udf('features')")
            names = schema.names()
            return names, [F.col(quote(n)) for n in names]
        columns = [F.col(quote(c)) if isinstance(c, str) else c for c in cols]
        if schema is None or (schema.is_tensor and not schema.has_names):
            # no names to match: string columns keep theirs; one unnamed tensor takes one
            # array column or several scalar columns (as one 2-D array)
            strs = all(isinstance(c, str) for c in cols)
            return [str(c) if strs else str(i) for i, c in enumerate(cols)], columns
        expected = schema.names()
        if all(isinstance(c, str) for c in cols) and len(set(cols)) == len(cols) \
                and set(cols) <= set(expected):
            names = [str(c) for c in cols]
        elif len(cols) > len(expected):
            raise SignatureError(f"model '{self._name}' takes {len(expected)} inputs "
                                 f"{expected}; the UDF was given {len(cols)} columns",
                                 expected=f"{len(expected)} columns", given=f"{len(cols)} columns")
        else:
            names = expected[:len(cols)]
        # One argument may be a struct holding every input; only the executor sees its type.
        missing = [n for n in schema.required_names() if n not in names]
        if missing and len(cols) > 1:
            raise SignatureError(f"missing required input{'s' if len(missing) > 1 else ''} "
                                 f"{missing}; the model expects {expected}", column=missing[0])
        return names, columns


def _local_dir(model_uri: str | os.PathLike[str]) -> Path:
    text = os.fspath(model_uri)
    if text.startswith("models:"):
        # Resolved once on the driver; executors get the resolved version's files, so an
        # alias that moves mid-job never splits one job across two versions.
        from satchel.registry.api import fetch

        return fetch(text)[1].resolve()
    if text.startswith("file://"):
        text = text[len("file://"):]
    elif "://" in text or text.split(":", 1)[0] in ("runs", "models"):
        raise ModelFormatError(f"spark_udf reads a local model directory; {text} is a remote "
                               "URI: download it first", path=text)
    return Path(text).expanduser().resolve()


# --- shipping and the per-worker cache ------------------------------------------------


def _digest(root: Path, manifest: Manifest) -> str:
    """sha256 of MLmodel, whose artifact_digests pin every other file; a directory saved
    without them (by MLflow) adds the sha256 of each of its files."""
    h = hashlib.sha256((root / MANIFEST_NAME).read_bytes())
    if not manifest.artifact_digests:
        for rel, digest in sorted(compute_digests(root).items()):
            h.update(f"\n{rel}\0{digest}".encode())
    return h.hexdigest()


def _archive_dir() -> Path:
    if not _ARCHIVE_DIR:
        d = Path(tempfile.mkdtemp(prefix="satchel-spark-"))
        # Executors fetch the archive from the driver while jobs run: keep it until exit.
        atexit.register(shutil.rmtree, d, True)
        _ARCHIVE_DIR.append(d)
    return _ARCHIVE_DIR[0]


def _ship(spark: Any, root: Path, manifest: Manifest) -> tuple[str, str]:
    try:
        sc = spark.sparkContext
    except Exception as exc:  # Spark Connect has no SparkContext
        raise ModelFormatError("spark_udf needs a classic SparkSession (it ships the model "
                               f"with SparkContext.addArchive): {exc}") from None
    digest = _digest(root, manifest)
    name = f"satchel-model-{digest[:24]}.zip"
    key = (str(sc.applicationId), digest)
    if key in _SHIPPED:
        return name, digest
    archive = _archive_dir() / name
    if not archive.exists():
        tmp = archive.with_suffix(".tmp")
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as z:
            for dirpath, dirnames, filenames in os.walk(root):
                dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
                for f in sorted(filenames):
                    p = Path(dirpath, f)
                    z.write(p, p.relative_to(root).as_posix())
        os.replace(tmp, archive)
    sc.addArchive(str(archive))
    _SHIPPED.add(key)
    return name, digest


def _worker_model(plan: _Plan) -> Model:
    """The model for ``plan`` in this Python worker, loaded from Spark's copy on first use."""
    if plan.env_python is not None:
        from pyspark import SparkFiles

        from satchel.serving.offline import spark_env

        return spark_env.remote_model(plan.env_python, SparkFiles.get(plan.archive),  # type: ignore[no-any-return]
                                      dict(plan.load_options), plan.env_wheels)
    key = f"{plan.digest}:{plan.load_options!r}"  # the same model loaded another way differs
    model = _MODELS.get(key)
    if model is None:
        with _LOCK:
            model = _MODELS.get(key)
            if model is None:
                from pyspark import SparkFiles

                model = load_model(SparkFiles.get(plan.archive), **dict(plan.load_options))
                _MODELS[key] = model
    return model


# --- the UDF --------------------------------------------------------------------------


def batch_inputs(plan: _Plan, names: list[str], batches: Any) -> Any:
    """Executor side, shared by every satchel UDF: the worker's model and, for each Arrow
    batch, its model input and row count (``None`` for an empty batch)."""
    model = _worker_model(plan)
    sig = model.signature
    schema = sig.inputs if sig is not None else None
    for batch in batches:
        arrays = batch if isinstance(batch, tuple) else (batch,)
        rows = len(arrays[0])
        if not rows:
            yield model, None, 0
            continue
        columns, fields = tabular.expand_struct(arrays, names, schema)
        yield model, tabular.model_input(columns, fields or names, schema), rows


def _score(plan: _Plan, names: list[str], batches: Any) -> Any:
    """Executor side: Arrow batches in, Arrow arrays of the result type out."""
    for model, data, rows in batch_inputs(plan, names, batches):
        if data is None:
            yield _empty(plan.arrow_type)
            continue
        result = model.predict_detailed(data, plan.params)
        yield spark_types.fit(result.output, plan.arrow_type, plan.type_name, rows)


def _empty(arrow_type: Any) -> Any:
    import pyarrow as pa

    return pa.array([], type=arrow_type)


def _make_udf(plan: _Plan, names: list[str], return_type: Any,
              scorer: Any = None) -> Any:
    from collections.abc import Iterator

    scorer = scorer or _score
    if _arrow_udf_available():
        import pyarrow as pa
        from pyspark.sql.pandas.functions import arrow_udf

        def predict(batches: Any) -> Any:
            return scorer(plan, names, batches)

        # real objects, not strings: pyspark reads these hints to pick the UDF kind
        predict.__annotations__ = {"batches": Iterator[tuple[pa.Array, ...]],
                                   "return": Iterator[pa.Array]}
        factory: Any = arrow_udf  # pyspark's overloads cannot type a UDF built at runtime
        with pandas3_notice_handled():
            return factory(predict, return_type)
    return _make_pandas_udf(plan, names, return_type, scorer)


def _arrow_udf_available() -> bool:
    import pyspark.sql.pandas.functions as pf

    return hasattr(pf, "arrow_udf")


def _make_pandas_udf(plan: _Plan, names: list[str], return_type: Any,
                     scorer: Any = None) -> Any:
    """Spark < 4.1: the same scorer behind an iterator pandas_udf (Spark converts to pandas,
    so integer columns with nulls arrive as float64: see docs/spark.md)."""
    from collections.abc import Iterator
    from typing import Union

    import pandas as pd
    from pyspark.sql.pandas.functions import pandas_udf

    struct = _is_struct(plan.arrow_type)

    def predict(batches: Any) -> Any:
        import pyarrow as pa

        def arrow(x: Any) -> Any:
            if isinstance(x, pd.DataFrame):
                return pa.StructArray.from_arrays(
                    [pa.array(x[c], from_pandas=True) for c in x.columns],
                    names=[str(c) for c in x.columns])
            return pa.array(x, from_pandas=True)

        inputs = (tuple(arrow(x) for x in (b if isinstance(b, tuple) else (b,)))
                  for b in batches)
        for out in (scorer or _score)(plan, names, inputs):
            if struct:
                yield pd.DataFrame({f.name: out.field(i).to_pandas()
                                    for i, f in enumerate(out.type)})
            else:
                yield out.to_pandas()

    predict.__annotations__ = {
        "batches": Iterator[tuple[Union[pd.Series, pd.DataFrame], ...]],
        "return": Iterator[pd.DataFrame] if struct else Iterator[pd.Series]}
    factory: Any = pandas_udf  # pyspark's overloads cannot type a UDF built at runtime
    with pandas3_notice_handled():
        return factory(predict, return_type)


def _is_struct(t: Any) -> bool:
    import pyarrow as pa

    return bool(pa.types.is_struct(t))


# --- result types ---------------------------------------------------------------------


def _parse_type(result_type: Any) -> Any:
    from pyspark.sql import types as T

    if isinstance(result_type, str):
        text = result_type.strip()
        text = "boolean" if text.lower() == "bool" else text
        try:
            parsed = T.DataType.fromDDL(text) if hasattr(T.DataType, "fromDDL") else \
                T._parse_datatype_string(text)
        except Exception as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise OutputError(f"result_type {result_type!r} is not a Spark type: {reason}",
                              expected=spark_types.ALLOWED, given=result_type) from None
    elif isinstance(result_type, T.DataType):
        parsed = result_type
    else:
        raise OutputError(f"result_type must be a Spark DataType or a DDL string, not "
                          f"{type(result_type).__name__}", given=type(result_type).__name__)
    return parsed


def _arrow_type(t: Any, whole: str, top: bool = True) -> Any:
    """The Arrow type Spark expects for Spark type ``t``; OutputError if unsupported
    (a struct only at the top: its fields and array items are scalars or arrays)."""
    import pyarrow as pa
    from pyspark.sql import types as T

    prims = [(T.BooleanType, pa.bool_()), (T.ByteType, pa.int8()), (T.ShortType, pa.int16()),
             (T.IntegerType, pa.int32()), (T.LongType, pa.int64()), (T.FloatType, pa.float32()),
             (T.DoubleType, pa.float64()), (T.StringType, pa.string()),
             (T.BinaryType, pa.binary())]
    for cls, at in prims:
        if isinstance(t, cls):
            return at
    if isinstance(t, T.ArrayType):
        return pa.list_(pa.field("element", _arrow_type(t.elementType, whole, False),
                                 nullable=t.containsNull))
    if isinstance(t, T.StructType) and t.fields and top:
        return pa.struct([pa.field(f.name, _arrow_type(f.dataType, whole, False),
                                   nullable=f.nullable) for f in t.fields])
    raise OutputError(f"result_type {whole} is not supported: {t.simpleString()} cannot hold "
                      f"a prediction; use {spark_types.ALLOWED}", expected=spark_types.ALLOWED,
                      given=whole)
