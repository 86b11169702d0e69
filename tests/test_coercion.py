"""The one coercion policy (docs/coercion.md), rule by rule."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from satchel.coercion import enforce_input, enforce_params
from satchel.errors import SignatureError
from satchel.schema import (
    Array,
    ColSpec,
    DataType,
    Map,
    Object,
    ParamSchema,
    ParamSpec,
    Property,
    Schema,
    TensorSpec,
)


def one(t: DataType | Array | Object | Map, required: bool = True) -> Schema:
    return Schema([ColSpec(t, "c", required)])


@pytest.mark.parametrize(
    "values, t, want_dtype",
    [
        (np.array([1, 2], dtype=np.int32), DataType.long, "int64"),
        (np.array([1, 2], dtype=np.int64), DataType.integer, "int32"),  # fits: lossless
        (np.array([1.5, 2.0], dtype=np.float32), DataType.double, "float64"),
        (np.array([1, 2], dtype=np.int64), DataType.double, "float64"),
        (np.array([3.0, 4.0]), DataType.long, "int64"),  # integral floats
        (np.array([0.1, 2.5]), DataType.float, "float32"),  # documented rounding
        (np.array(["1.5", "2"], dtype=object), DataType.double, "float64"),
        (np.array(["7", "-3"], dtype=object), DataType.long, "int64"),
        (np.array([True, False]), DataType.boolean, "bool"),
        # pandas 3 reads an object array of strings as its "str" dtype
        (np.array(["a", "b"], dtype=object), DataType.string, "object|str"),
        (np.array([b"a", b"b"], dtype=object), DataType.binary, "object"),
        (
            np.array(["2024-01-02", "2024-01-03T04:05:06"], dtype=object),
            DataType.datetime,
            "datetime64[ns]",
        ),
        (np.array(["2024-01-02"], dtype="datetime64[s]"), DataType.datetime, "datetime64[ns]"),
        (np.array([1, 2], dtype=np.uint16), DataType.integer, "int32"),
    ],
)
def test_lossless_conversions_allowed(values: np.ndarray, t: DataType, want_dtype: str) -> None:
    out = enforce_input(pd.DataFrame({"c": values}), one(t)).data
    assert str(out["c"].dtype) in want_dtype.split("|")
    if t in (DataType.long, DataType.integer, DataType.double) and values.dtype != object:
        assert (out["c"].to_numpy() == values).all()


@pytest.mark.parametrize(
    "values, t, fragment",
    [
        (np.array([1.5]), DataType.long, "fractional part"),
        (np.array([2**40]), DataType.integer, "outside"),
        (np.array([2**53 + 1]), DataType.double, "not exactly representable"),
        (np.array([2**25 + 1]), DataType.float, "not exactly representable"),
        (np.array([1e300]), DataType.float, "overflow"),
        (np.array([True]), DataType.long, "booleans and numbers"),
        (np.array([1]), DataType.boolean, "booleans and numbers"),
        (np.array(["abc"], dtype=object), DataType.double, "not numbers"),
        (np.array(["1.5"], dtype=object), DataType.long, "not numbers"),
        (np.array([1, 2]), DataType.string, "expected string, given int64"),
        (np.array(["x"], dtype=object), DataType.binary, "expected binary"),
        (np.array(["not a date"], dtype=object), DataType.datetime, "ISO 8601"),
        (np.array([np.uint64(2**63 + 5)], dtype=np.uint64), DataType.long, "outside"),
    ],
)
def test_lossy_conversions_refused(values: np.ndarray, t: DataType, fragment: str) -> None:
    with pytest.raises(SignatureError) as info:
        enforce_input(pd.DataFrame({"c": values}), one(t))
    err = info.value
    assert fragment in str(err)
    assert err.column == "c" and err.expected == t.value
    assert "column 'c'" in str(err)


def test_error_never_echoes_the_payload() -> None:
    secret = "s3cr3t-value-" * 20
    with pytest.raises(SignatureError) as info:
        enforce_input(pd.DataFrame({"c": [secret]}), one(DataType.double))
    assert secret not in str(info.value) and "s3cr3t" not in str(info.value)


def test_missing_required_column_names_it() -> None:
    s = Schema([ColSpec(DataType.double, "a"), ColSpec(DataType.double, "b")])
    with pytest.raises(SignatureError, match=r"missing required column \['b'\]") as info:
        enforce_input(pd.DataFrame({"a": [1.0]}), s)
    assert info.value.column == "b"


def test_optional_column_may_be_absent_or_null() -> None:
    s = Schema([ColSpec(DataType.double, "a"), ColSpec(DataType.long, "b", required=False)])
    assert list(enforce_input(pd.DataFrame({"a": [1.0]}), s).data.columns) == ["a"]
    out = enforce_input(pd.DataFrame({"a": [1.0, 2.0], "b": [None, 3]}), s).data
    assert str(out["b"].dtype) == "Int64" and out["b"].isna().tolist() == [True, False]
    assert out["b"][1] == 3


def test_null_in_required_column_names_column_and_count() -> None:
    with pytest.raises(SignatureError, match=r"column 'c' is required but has 2 null values"):
        enforce_input(pd.DataFrame({"c": [1.0, np.nan, None]}), one(DataType.double))


def test_extra_columns_dropped_and_reported_in_schema_order() -> None:
    s = Schema([ColSpec(DataType.double, "a"), ColSpec(DataType.double, "b")])
    r = enforce_input(pd.DataFrame({"z": [0], "b": [2.0], "a": [1.0]}), s)
    assert list(r.data.columns) == ["a", "b"] and r.dropped == ("z",)


def test_fast_path_returns_the_same_frame() -> None:
    s = Schema([ColSpec(DataType.double, "a"), ColSpec(DataType.long, "b")])
    df = pd.DataFrame({"a": [1.0], "b": [2]})
    assert enforce_input(df, s).data is df


@pytest.mark.parametrize(
    "data",
    [
        [{"a": 1.0, "b": 2.0}],
        {"a": [1.0], "b": [2.0]},
        {"a": 1.0, "b": 2.0},
        np.array([[1.0, 2.0]]),
        pd.Series({"a": 1.0, "b": 2.0}),
    ],
)
def test_every_input_shape_becomes_the_same_frame(data: object) -> None:
    s = Schema([ColSpec(DataType.double, "a"), ColSpec(DataType.double, "b")])
    out = enforce_input(data, s).data
    assert out.to_dict("list") == {"a": [1.0], "b": [2.0]}


def test_nested_types_checked() -> None:
    s = Schema(
        [
            ColSpec(Array(DataType.long), "ids"),
            ColSpec(Object((Property("k", DataType.string),)), "o"),
            ColSpec(Map(DataType.double), "m"),
        ]
    )
    good = pd.DataFrame({"ids": [[1, 2]], "o": [{"k": "v"}], "m": [{"x": 1.5}]})
    assert enforce_input(good, s).data.shape == (1, 3)
    for col, bad, frag in [
        ("ids", ["x"], "ids' row 0[0]: expected long"),
        ("o", {"k": "v", "extra": 1}, "unknown properties"),
        ("o", {}, "missing required property 'k'"),
        ("m", {1: 1.0}, "map keys must be strings"),
    ]:
        df = good.copy()
        df[col] = [bad]
        with pytest.raises(SignatureError, match=frag.replace("[", r"\[").replace("]", r"\]")):
            enforce_input(df, s)


def test_tensor_dtype_widening_and_shape_checks() -> None:
    s = Schema([TensorSpec("float64", (-1, 2))])
    out = enforce_input(np.ones((3, 2), dtype=np.float32), s).data
    assert out.dtype == np.float64
    with pytest.raises(SignatureError, match=r"expected shape \[-1, 2\], given shape \[3, 3\]"):
        enforce_input(np.ones((3, 3)), s)
    with pytest.raises(SignatureError, match="rank 2 vs 1"):
        enforce_input(np.ones(3), s)


def test_named_tensors_from_dict_and_missing_input() -> None:
    s = Schema([TensorSpec("int64", (-1,), "a"), TensorSpec("float32", (-1, 2), "b")])
    out = enforce_input({"a": [1, 2], "b": np.zeros((2, 2)), "zz": [0]}, s)
    assert out.data["a"].dtype == np.int64 and out.data["b"].dtype == np.float32
    assert out.dropped == ("zz",)
    with pytest.raises(SignatureError, match=r"missing required input \['b'\]"):
        enforce_input({"a": [1]}, s)


def test_params_defaults_unknown_and_types() -> None:
    ps = ParamSchema(
        [
            ParamSpec("k", DataType.long, 1),
            ParamSpec("t", DataType.double, 0.5),
            ParamSpec("w", DataType.string, ["a"], (-1,)),
            ParamSpec("d", DataType.datetime, "2024-01-01T00:00:00"),
        ]
    )
    out, unknown = enforce_params({"t": 2, "zz": 1, "w": ["x", "y"], "d": "2024-05-06"}, ps)
    assert out == {"k": 1, "t": 2.0, "w": ["x", "y"], "d": np.datetime64("2024-05-06")}
    assert unknown == ["zz"]
    with pytest.raises(SignatureError, match="param 'k': expected long"):
        enforce_params({"k": 1.5}, ps)
    with pytest.raises(SignatureError, match="param 'w': expected list<string>"):
        enforce_params({"w": "x"}, ps)


def test_no_param_schema_reports_all_params_unknown() -> None:
    assert enforce_params({"a": 1}, None) == (None, ["a"])


def test_datetime_objects_and_timezones() -> None:
    out = enforce_input(
        pd.DataFrame({"c": [dt.datetime(2024, 1, 1), dt.date(2024, 1, 2)]}), one(DataType.datetime)
    ).data
    assert str(out["c"].dtype) == "datetime64[ns]"


def test_unnamed_schema_matches_columns_by_position() -> None:
    schema = Schema([ColSpec(DataType.string)])
    got = enforce_input(pd.DataFrame({"s": ["a", "b"], "extra": [1, 2]}), schema)
    assert got.data.columns.tolist() == ["0"] and got.data["0"].tolist() == ["a", "b"]
    assert got.dropped == ("extra",)
    with pytest.raises(SignatureError, match="expected string"):
        enforce_input(pd.DataFrame({"n": [1.5]}), schema)
    two = Schema([ColSpec(DataType.double), ColSpec(DataType.double)])
    with pytest.raises(SignatureError, match="missing required column"):
        enforce_input(pd.DataFrame({"x": [1.0]}), two)


def _two_float_blocks(nan_at: tuple[int, str] | None) -> pd.DataFrame:
    # A column inserted into a frame lands in its own block (statsmodels' add_constant
    # does this): the fast path reads blocks, so a null in either must be found.
    df = pd.DataFrame(np.arange(12, dtype=float).reshape(4, 3), columns=["a", "b", "c"])
    df.insert(0, "const", 1.0)
    if nan_at is not None:
        df.loc[nan_at[0], nan_at[1]] = np.nan
    return df


@pytest.mark.parametrize("row, col", [(3, "const"), (0, "c"), (2, "a")])
def test_null_in_any_block_of_a_uniform_frame_is_refused(row: int, col: str) -> None:
    s = Schema([ColSpec(DataType.double, n) for n in ("const", "a", "b", "c")])
    assert enforce_input(_two_float_blocks(None), s).data is not None
    with pytest.raises(SignatureError, match=f"column '{col}' is required but has 1 null"):
        enforce_input(_two_float_blocks((row, col)), s)


def test_uniform_frame_with_a_wrong_dtype_block_takes_the_converting_path() -> None:
    s = Schema([ColSpec(DataType.double, n) for n in ("const", "a", "b", "c")])
    df = _two_float_blocks(None).astype({"b": "float32"})
    out = enforce_input(df, s).data
    assert out is not df and str(out["b"].dtype) == "float64"
    fast = _two_float_blocks(None)
    assert enforce_input(fast, s).data is fast


def test_string_columns_of_str_pass_as_they_are() -> None:
    s = Schema([ColSpec(DataType.string, "t"), ColSpec(DataType.double, "x")])
    df = pd.DataFrame({"t": np.array(["a", "b"], dtype=object), "x": [1.0, 2.0]})
    assert enforce_input(df, s).data is df
    texts = ["good movie", "bad"]
    got = enforce_input(texts, Schema([ColSpec(DataType.string)])).data
    assert got["0"].tolist() == texts


@pytest.mark.parametrize(
    "column, fragment",
    [
        (pd.Series(["a", None], dtype=object), "required but has 1 null"),
        (pd.Series(["a", pd.NA], dtype="string"), "required but has 1 null"),
        (pd.Series(["a", 1], dtype=object), "expected string"),
        (pd.Series(["a", b"b"], dtype=object), "expected string"),
    ],
)
def test_string_column_with_nulls_or_other_values_is_refused(
    column: pd.Series, fragment: str
) -> None:
    with pytest.raises(SignatureError, match=fragment):
        enforce_input(pd.DataFrame({"c": column}), one(DataType.string))


def test_optional_string_column_keeps_its_nulls_as_none() -> None:
    out = enforce_input(
        pd.DataFrame({"c": pd.Series(["a", None], dtype=object)}),
        one(DataType.string, required=False),
    ).data
    assert out["c"].tolist()[0] == "a" and out["c"].isna().tolist() == [False, True]


def test_a_frame_checked_before_is_checked_again_for_nulls() -> None:
    # The column Index of a frame that matched is remembered (identity), the values
    # never: a NaN written into the same frame after a clean call is still refused.
    s = Schema([ColSpec(DataType.double, n) for n in ("const", "a", "b", "c")])
    df = _two_float_blocks(None)
    assert enforce_input(df, s).data is df
    assert enforce_input(df, s).data is df
    df.loc[1, "b"] = np.nan
    with pytest.raises(SignatureError, match="column 'b' is required but has 1 null"):
        enforce_input(df, s)


def test_remembered_columns_never_stand_for_other_columns() -> None:
    s = Schema([ColSpec(DataType.double, "a"), ColSpec(DataType.double, "b")])
    df = pd.DataFrame({"a": [1.0], "b": [2.0]})
    assert enforce_input(df, s).data is df
    # same labels, other order: reordered, not passed as they are
    swapped = df[["b", "a"]]
    out = enforce_input(swapped, s).data
    assert out.columns.tolist() == ["a", "b"] and out["a"].tolist() == [1.0]
    # a frame whose Index was replaced after a clean call is compared again
    renamed = df.copy()
    renamed.columns = pd.Index(["a", "z"])
    with pytest.raises(SignatureError, match=r"missing required column \['b'\]"):
        enforce_input(renamed, s)
    # labels that only look alike (non-string labels) are not the schema's names
    numbered = pd.DataFrame({0: [1.0], 1: [2.0]})
    with pytest.raises(SignatureError, match="missing required column"):
        enforce_input(numbered, s)
    # a fresh frame with equal labels (another Index object) takes the fast path
    fresh = pd.DataFrame({"a": [3.0], "b": [4.0]})
    assert enforce_input(fresh, s).data is fresh


def test_an_empty_uniform_frame_passes_and_an_empty_wrong_one_is_converted() -> None:
    s = Schema([ColSpec(DataType.double, "a"), ColSpec(DataType.double, "b")])
    empty = pd.DataFrame({"a": np.array([], dtype=float), "b": np.array([], dtype=float)})
    assert enforce_input(empty, s).data is empty
    ints = pd.DataFrame({"a": np.array([], dtype=np.int64), "b": np.array([], dtype=float)})
    assert str(enforce_input(ints, s).data["a"].dtype) == "float64"


@pytest.mark.parametrize(
    "values",
    [
        ["a", "b"],
        np.array(["a", None], dtype=object),
        np.array([1.5, np.nan]),
        np.array([1, 2], dtype=np.int32),
        np.array([b"x", b"y"], dtype=object),
        np.array([1, "a"], dtype=object),
        np.array(["2024-01-01"], dtype="datetime64[ns]"),
    ],
)
def test_one_column_frame_is_what_a_dict_builds(values: object) -> None:
    # A one-column frame is built from a 2-D array under the plan's own Index (half the
    # time of a dict); it must be the frame the dict built, and share no memory with
    # the caller's array.
    from satchel import _fits, _normalize

    plan = _fits.plan(Schema([ColSpec(DataType.string, "t")]))
    got = _normalize.to_frame(values, plan.names, _fits.column_index(plan))
    want = pd.DataFrame({"t": np.asarray(values)})
    assert got.dtypes.tolist() == want.dtypes.tolist() and got.equals(want)
    assert got.columns is _fits.column_index(plan)
    if isinstance(values, np.ndarray) and values.dtype.kind in "fi":
        assert not np.shares_memory(got["t"].to_numpy(), values)
    one = _normalize.to_frame("good movie", plan.names, _fits.column_index(plan))
    assert one.equals(pd.DataFrame({"t": ["good movie"]}))


# --- a list of texts for a predictor that takes texts (Model.predict) ---------------


class _Recorder:
    """A predictor of one string column that records which entry point got what."""

    def __init__(self, with_texts: bool) -> None:
        self.calls: list[tuple[str, list[object]]] = []
        if with_texts:
            self.predict_texts = self._texts

    def predict(self, data: object, params: dict[str, object] | None = None) -> object:
        assert isinstance(data, pd.DataFrame)
        texts = data.to_numpy().ravel().tolist()
        self.calls.append(("frame", texts))
        return np.array([len(t) for t in texts])

    def _texts(self, texts: list[str], params: dict[str, object] | None = None) -> object:
        self.calls.append(("texts", list(texts)))
        if texts == ["boom"]:
            raise RuntimeError("model failed")
        return np.array([len(t) for t in texts])


def _text_model(with_texts: bool, schema: Schema | None = None) -> tuple[object, _Recorder]:
    from pathlib import Path

    from satchel.flavor import LoadConfig
    from satchel.manifest import Manifest
    from satchel.model import Model
    from satchel.schema import Signature

    sig = Signature(schema or Schema([ColSpec(DataType.string)]), None)
    rec = _Recorder(with_texts)
    model = Model(Path("."), Manifest(signature=sig), object(), LoadConfig({}, {}), rec)  # type: ignore[arg-type]
    return model, rec


@pytest.mark.parametrize(
    "texts",
    [
        ["good movie"],
        ["a", "", "b c"],
        ["naïve café", "日本語"],
        ["tab\there"],
        "one",
        "ab\x00",
        ["ab\x00", "c\x00\x00"],  # kept whole on both paths (numpy's str_ would drop them)
        "",
    ],
)
def test_a_list_of_texts_reaches_predict_texts_as_the_frame_path_gives_it(
    texts: list | str,
) -> None:
    frame_model, frame_rec = _text_model(with_texts=False)
    texts_model, texts_rec = _text_model(with_texts=True)
    want = frame_model.predict(texts)  # type: ignore[attr-defined]
    got = texts_model.predict(texts)  # type: ignore[attr-defined]
    np.testing.assert_array_equal(got, want)
    as_list = [texts] if isinstance(texts, str) else texts  # one text is one row, kept whole
    assert texts_rec.calls == [("texts", as_list)]
    assert frame_rec.calls == [("frame", as_list)]  # the frame held exactly these texts


@pytest.mark.parametrize(
    "given",
    [
        ["\ud800"],  # pandas 3 stores UTF-8 and refuses a lone surrogate
        [],
        ["a", None],
        ["a", np.nan],
        [1],
        ("a", "b"),  # not a list
        "\ud800",
        np.array(["a"]),
    ],
)
def test_other_input_takes_the_frame_path_with_its_result_or_error(given: object) -> None:
    frame_model, _ = _text_model(with_texts=False)
    texts_model, rec = _text_model(with_texts=True)
    try:
        want: object = frame_model.predict(given)  # type: ignore[attr-defined]
    except Exception as exc:  # the same error, whatever the path
        with pytest.raises(type(exc)) as info:
            texts_model.predict(given)  # type: ignore[attr-defined]
        assert str(info.value) == str(exc)
    else:
        np.testing.assert_array_equal(texts_model.predict(given), want)  # type: ignore[attr-defined]
    assert all(kind == "frame" for kind, _ in rec.calls)


def test_texts_path_only_for_one_string_column_and_no_params() -> None:
    model, rec = _text_model(with_texts=True)
    from satchel.errors import UnknownParamsWarning

    with pytest.warns(UnknownParamsWarning):  # params: the frame path, which reports them
        model.predict(["a"], params={"x": 1})  # type: ignore[attr-defined]
    assert [k for k, _ in rec.calls] == ["frame"]
    two = Schema([ColSpec(DataType.string, "a"), ColSpec(DataType.string, "b")])
    model2, rec2 = _text_model(with_texts=True, schema=two)
    with pytest.raises(SignatureError):
        model2.predict(["a"])  # type: ignore[attr-defined]
    assert rec2.calls == []
    model3, rec3 = _text_model(with_texts=True, schema=Schema([ColSpec(DataType.long)]))
    with pytest.raises(SignatureError, match="expected long"):
        model3.predict(["a"])  # type: ignore[attr-defined]
    assert rec3.calls == []


def test_a_failing_predict_texts_is_a_prediction_error() -> None:
    from satchel.errors import PredictionError

    model, _ = _text_model(with_texts=True)
    with pytest.raises(PredictionError, match="RuntimeError: model failed"):
        model.predict(["boom"])  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "given, t, want",
    [
        (["a\x00", "b"], DataType.string, ["a\x00", "b"]),
        ([["a\x00", "x"]], DataType.string, ["a\x00"]),
        ([b"a\x00", b"b"], DataType.binary, [b"a\x00", b"b"]),
    ],
)
def test_a_list_keeps_its_texts_whole(given: list, t: DataType, want: list) -> None:
    # numpy's fixed-width text and bytes drop trailing NULs: a list must not go through them
    schema = Schema([ColSpec(t, "c"), ColSpec(DataType.string, "d")]) if isinstance(
        given[0], list) else one(t)
    assert enforce_input(given, schema).data["c"].tolist() == want


@pytest.mark.parametrize("given", [["a", 1], ["a", 1.5], [1, "a"], ["a", True]])
def test_a_list_mixing_texts_and_numbers_is_refused_for_a_string_column(given: list) -> None:
    # numpy alone would turn ["a", 1] into ["a", "1"]: the policy refuses numbers for text
    # whatever shape the input came in, as it does for a DataFrame
    with pytest.raises(SignatureError, match="column 'c': expected string, given object"):
        enforce_input(given, one(DataType.string))
    with pytest.raises(SignatureError, match="column 'c': expected string, given object"):
        enforce_input(pd.DataFrame({"c": given}, dtype=object), one(DataType.string))


def test_rows_mixing_texts_and_numbers_keep_each_value_as_given() -> None:
    schema = Schema([ColSpec(DataType.string, "s"), ColSpec(DataType.long, "n"),
                     ColSpec(DataType.double, "x")])
    got = enforce_input([["a", 1, 0.5], ["b", 2, 1]], schema).data
    assert got["s"].tolist() == ["a", "b"]
    assert got["n"].dtype == np.int64 and got["n"].tolist() == [1, 2]
    assert got["x"].dtype == np.float64 and got["x"].tolist() == [0.5, 1.0]
    with pytest.raises(SignatureError, match="column 's': expected string"):
        enforce_input([[1, 1, 0.5]], schema)


@pytest.mark.parametrize("given", [["\ud800"], ["ok", "x\udfff"], "\ud800"])
def test_a_lone_surrogate_is_a_signature_error_not_a_unicode_error(given: object) -> None:
    # pandas 3 keeps text as UTF-8 and refuses it; pandas 2 keeps it in an object column
    if pd.__version__.startswith("2"):
        assert enforce_input(given, one(DataType.string)).data["c"].iloc[-1][-1] in "\ud800\udfff"
        return
    with pytest.raises(SignatureError, match=r"not valid Unicode .*character \d") as info:
        enforce_input(given, one(DataType.string))
    assert "\ud800" not in str(info.value) and "\udfff" not in str(info.value)


@pytest.mark.parametrize(
    "t, want",
    [(DataType.string, "object"), (DataType.boolean, "bool"), (DataType.long, "int64"),
     (DataType.binary, "object"), (DataType.double, "float64")],
)
def test_an_empty_list_is_zero_rows_of_every_type(t: DataType, want: str) -> None:
    # pandas alone makes an empty list's columns float64, which text and bool refuse
    got = enforce_input([], one(t)).data
    assert len(got) == 0 and str(got["c"].dtype) == want
