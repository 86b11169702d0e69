"""sklearn stored with skops: trust comes from the caller, never from the model's manifest."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

import satchel
from satchel.errors import ModelFormatError, PickleNotAllowedError, UntrustedTypeError
from satchel.flavors import sklearn as sk_flavor
from satchel.testing import check_flavor

skops_io = pytest.importorskip("skops.io")

TREE = "sklearn.tree._tree.Tree"


@pytest.fixture(scope="module")
def forest(iris: Any) -> Any:
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(n_estimators=5, random_state=0).fit(*iris)


def _section(path: Path) -> dict[str, Any]:
    return dict(yaml.safe_load((path / "MLmodel").read_text())["flavors"]["sklearn"])


def test_conformance_skops(iris: Any, iris_logreg: Any) -> None:
    passed = check_flavor(
        "sklearn", iris_logreg, iris[0].head(5), save_options={"serialization_format": "skops"}
    )
    assert "predict_matches_native" in passed


def test_skops_layout_matches_mlflow(iris: Any, iris_logreg: Any, tmp_path: Path) -> None:
    sk_flavor.save_model(
        iris_logreg, tmp_path / "m", serialization_format="skops", input_example=iris[0].head(3)
    )
    section = _section(tmp_path / "m")
    assert section["pickled_model"] == "model.skops"
    assert section["serialization_format"] == "skops"
    assert section["skops_trusted_types"] is None
    pyfunc = yaml.safe_load((tmp_path / "m" / "MLmodel").read_text())["flavors"]["python_function"]
    assert pyfunc["model_path"] == "model.skops"
    assert not (tmp_path / "m" / "model.pkl").exists()
    assert "skops==" in (tmp_path / "m" / "requirements.txt").read_text()


def test_skops_loads_with_allow_pickle_false(iris: Any, iris_logreg: Any, tmp_path: Path) -> None:
    sk_flavor.save_model(iris_logreg, tmp_path / "m", serialization_format="skops")
    model = satchel.load_model(tmp_path / "m", allow_code=False)
    np.testing.assert_array_equal(model.predict(iris[0]), iris_logreg.predict(iris[0]))
    # the pickle formats are refused outright
    sk_flavor.save_model(iris_logreg, tmp_path / "p", serialization_format="pickle")
    with pytest.raises(PickleNotAllowedError, match="pickle"):
        satchel.load_model(tmp_path / "p", allow_code=False)


def test_save_refuses_types_the_saver_did_not_vouch_for(forest: Any, tmp_path: Path) -> None:
    with pytest.raises(UntrustedTypeError, match=TREE) as err:
        sk_flavor.save_model(forest, tmp_path / "m", serialization_format="skops")
    assert err.value.types == [TREE]
    assert list(tmp_path.iterdir()) == []  # nothing written, no temporary directory left


def test_manifest_trust_list_is_written_but_never_used(
    forest: Any, iris: Any, tmp_path: Path
) -> None:
    sk_flavor.save_model(
        forest,
        tmp_path / "m",
        serialization_format="skops",
        skops_trusted_types=[TREE],
        input_example=iris[0].head(3),
    )
    assert _section(tmp_path / "m")["skops_trusted_types"] == [TREE]  # for MLflow
    with pytest.raises(UntrustedTypeError) as err:
        satchel.load_model(tmp_path / "m")
    assert err.value.types == [TREE]
    assert "trusted_types" in str(err.value) and "SATCHEL_SKOPS_TRUSTED_TYPES" in str(err.value)
    model = satchel.load_model(tmp_path / "m", trusted_types=[TREE])
    np.testing.assert_array_equal(model.predict(iris[0]), forest.predict(iris[0]))


def test_trust_from_environment(
    forest: Any, iris: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sk_flavor.save_model(
        forest, tmp_path / "m", serialization_format="skops", skops_trusted_types=[TREE]
    )
    monkeypatch.setenv("SATCHEL_SKOPS_TRUSTED_TYPES", f" numpy.foo , {TREE} ")
    estimator = sk_flavor.load_model(tmp_path / "m")
    np.testing.assert_array_equal(estimator.predict(iris[0]), forest.predict(iris[0]))


def test_tampered_trust_list_does_not_widen_trust(forest: Any, tmp_path: Path) -> None:
    """A file holding a dangerous callable, whose manifest vouches for it, is still refused."""
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    dangerous = make_pipeline(FunctionTransformer(os.system), forest)
    found = skops_io.get_untrusted_types(data=skops_io.dumps(dangerous))
    risky = [t for t in found if t != TREE]
    assert risky  # e.g. posix.system
    sk_flavor.save_model(
        dangerous, tmp_path / "m", serialization_format="skops", skops_trusted_types=found
    )
    with pytest.raises(UntrustedTypeError) as err:
        satchel.load_model(tmp_path / "m", trusted_types=[TREE])
    assert err.value.types == risky
    assert all(t in str(err.value) for t in risky)


def test_corrupt_skops_file(iris_logreg: Any, tmp_path: Path) -> None:
    sk_flavor.save_model(iris_logreg, tmp_path / "m", serialization_format="skops")
    (tmp_path / "m" / "model.skops").write_bytes(b"PK\x03\x04 not a zip")
    with pytest.raises(ModelFormatError, match="model.skops is not a readable skops file"):
        satchel.load_model(tmp_path / "m", verify=False)


def test_mlflow_style_skops_directory_loads(iris: Any, iris_logreg: Any, tmp_path: Path) -> None:
    """A directory laid out as MLflow 3 writes it (no digests, no satchel keys) loads."""
    root = tmp_path / "mlflow_like"
    root.mkdir()
    skops_io.dump(iris_logreg, root / "model.skops")
    (root / "MLmodel").write_text(
        yaml.safe_dump(
            {
                "flavors": {
                    "python_function": {
                        "loader_module": "mlflow.sklearn",
                        "model_path": "model.skops",
                        "predict_fn": "predict_proba",
                        "python_version": "3.11.7",
                        "env": {"conda": "conda.yaml", "virtualenv": "python_env.yaml"},
                    },
                    "sklearn": {
                        "pickled_model": "model.skops",
                        "serialization_format": "skops",
                        "sklearn_version": "1.9.1",
                        "skops_trusted_types": None,
                        "code": None,
                    },
                },
                "mlflow_version": "3.17.2",
            }
        )
    )
    got = satchel.load_model(root).predict(iris[0].head(4))
    np.testing.assert_allclose(got, iris_logreg.predict_proba(iris[0].head(4)))
