"""``runs:/RUN_ID/PATH`` sources read from a local MLflow file store, and the hostile
ones: escaping run ids and paths, symbolic links out of the artifacts, stores satchel
cannot read. The store is laid out as MLflow 3.17 writes it (tests/interop checks the
same against a store real MLflow wrote)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from satchel.errors import RegistryInputError, RegistryNotFoundError

RUN = "d18dd8eee33b40e3a7786ec73700f299"
MODEL_ID = "m-3de817fdea1646cd892cbd0e06386da9"


def _store(root: Path, model_dir: Path, *, logged_model: bool) -> Path:
    """An MLflow file store with one run: the model as an MLflow 3 logged model (or, as
    MLflow 2 wrote it, under the run's artifacts), and a text artifact."""
    run = root / "0" / RUN
    (run / "artifacts" / "notes").mkdir(parents=True)
    (run / "artifacts" / "notes" / "readme.txt").write_text("hi")
    (root / "0" / "meta.yaml").write_text("experiment_id: '0'\nname: Default\n")
    (run / "meta.yaml").write_text(
        f"artifact_uri: file://{run}/artifacts\nexperiment_id: '0'\n"
        f"lifecycle_stage: active\nrun_id: {RUN}\n")
    if logged_model:
        model = root / "0" / "models" / MODEL_ID
        model.mkdir(parents=True)
        # artifact_location is never followed: the store's own layout decides
        (model / "meta.yaml").write_text(
            "artifact_location: file:///etc\ncreation_timestamp: 1\nexperiment_id: '0'\n"
            f"model_id: {MODEL_ID}\nname: model\nsource_run_id: {RUN}\n")
        shutil.copytree(model_dir, model / "artifacts")
    else:
        shutil.copytree(model_dir, run / "artifacts" / "model")
    return root


@pytest.mark.parametrize("logged_model", [True, False], ids=["mlflow3", "mlflow2"])
def test_register_a_run_model_records_the_run(
    registry: Any, iris_model_dir: Path, tmp_path: Path, logged_model: bool
) -> None:
    import satchel

    store = _store(tmp_path / "mlruns", iris_model_dir, logged_model=logged_model)
    v = registry.register(f"runs:/{RUN}/model", "fraud",
                          mlflow_tracking_uri=f"file:{store}", metadata={"owner": "a"})
    assert v.run_id == RUN and v.source == f"runs:/{RUN}/model"
    assert v.metadata["owner"] == "a" and v.metadata["mlflow_experiment_id"] == "0"
    assert v.metadata.get("mlflow_logged_model_id") == (MODEL_ID if logged_model else None)
    assert registry.search_versions(run_id=RUN)[0].version == v.version
    X = satchel.load_model(iris_model_dir).input_example().data
    got = satchel.load_model(registry.local_path(v)).predict(X)
    assert (got == satchel.load_model(iris_model_dir).predict(X)).all()


def test_tracking_uri_forms_and_environment(
    registry: Any, iris_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = _store(tmp_path / "ml runs", iris_model_dir, logged_model=True)
    monkeypatch.chdir(tmp_path)
    for uri in (store.as_uri(), "file:./ml runs", str(store)):
        assert registry.register(f"runs:/{RUN}/model", "m", mlflow_tracking_uri=uri).run_id
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store.as_uri())
    assert registry.register(f"runs:/{RUN}/model/", "m").run_id == RUN


def test_what_is_missing_is_named(
    registry: Any, iris_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    store = _store(tmp_path / "mlruns", iris_model_dir, logged_model=True)
    with pytest.raises(RegistryInputError, match="--mlflow-tracking-uri file:./mlruns"):
        registry.register(f"runs:/{RUN}/model", "m")
    for uri, word in (("sqlite:///mlflow.db", "sqlite"), ("http://127.0.0.1:5000", "http"),
                      ("databricks", None)):
        if word is None:
            with pytest.raises(RegistryNotFoundError, match="does not exist"):
                registry.register(f"runs:/{RUN}/model", "m", mlflow_tracking_uri=uri)
            continue
        with pytest.raises(RegistryInputError, match=f"a {word}: URI.*mlflow artifacts"):
            registry.register(f"runs:/{RUN}/model", "m", mlflow_tracking_uri=uri)
    with pytest.raises(RegistryNotFoundError, match=r"no run 'abc' .*experiments: 0"):
        registry.register("runs:/abc/model", "m", mlflow_tracking_uri=str(store))
    with pytest.raises(RegistryNotFoundError, match="no model at 'notes'.*notes"):
        registry.register(f"runs:/{RUN}/notes", "m", mlflow_tracking_uri=str(store))
    with pytest.raises(RegistryInputError, match="names no artifact path"):
        registry.register(f"runs:/{RUN}", "m", mlflow_tracking_uri=str(store))
    with pytest.raises(RegistryInputError, match="differs from the run"):
        registry.register(f"runs:/{RUN}/model", "m", mlflow_tracking_uri=str(store),
                          run_id="another")
    assert registry.search_models() == []


@pytest.mark.parametrize("uri", [
    "runs:/../0/model", "runs:/..", f"runs:/{RUN}/../../../etc", f"runs:/{RUN}/model/../..",
    f"runs:/{RUN}/..\\..\\x", "runs:/a/b\x00c", f"runs:/{RUN}/c:/x", "runs://etc/passwd",
    "runs:/" + "a" * 65 + "/model", f"runs:/{RUN}/" + "x/" * 3000,
])
def test_hostile_run_uris_are_refused(registry: Any, iris_model_dir: Path, tmp_path: Path,
                                      uri: str) -> None:
    store = _store(tmp_path / "mlruns", iris_model_dir, logged_model=False)
    with pytest.raises(RegistryInputError) as err:
        registry.register(uri, "m", mlflow_tracking_uri=str(store))
    assert err.value.field == "source" and len(str(err.value)) < 600


def test_symlinks_out_of_the_artifacts_are_refused(
    registry: Any, iris_model_dir: Path, tmp_path: Path
) -> None:
    store = _store(tmp_path / "mlruns", iris_model_dir, logged_model=False)
    outside = tmp_path / "outside-model"
    shutil.copytree(iris_model_dir, outside)
    (store / "0" / RUN / "artifacts" / "link").symlink_to(outside)
    with pytest.raises(RegistryInputError, match="leaves the run's artifacts"):
        registry.register(f"runs:/{RUN}/link", "m", mlflow_tracking_uri=str(store))
    # the same for a logged model whose artifacts directory is a link out
    store2 = _store(tmp_path / "mlruns2", iris_model_dir, logged_model=True)
    (store2 / "0" / "models" / MODEL_ID / "artifacts" / "sub").symlink_to(outside)
    with pytest.raises(RegistryInputError, match="leaves the run's artifacts"):
        registry.register(f"runs:/{RUN}/model/sub", "m", mlflow_tracking_uri=str(store2))


def test_runs_source_from_the_cli(iris_model_dir: Path, tmp_path: Path) -> None:
    _store(tmp_path / "mlruns", iris_model_dir, logged_model=True)
    env = {**os.environ, "SATCHEL_REGISTRY_URI": f"sqlite:///{tmp_path / 'reg.db'}",
           "SATCHEL_USER": "carol"}
    env.pop("MLFLOW_TRACKING_URI", None)

    def cli(*args: str, code: int = 0) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([sys.executable, "-m", "satchel", *args], capture_output=True,
                              text=True, env=env, timeout=300, cwd=tmp_path)
        assert done.returncode == code, (args, done.stdout, done.stderr)
        return done

    out = json.loads(cli("registry", "register", f"runs:/{RUN}/model", "--name", "fraud",
                         "--mlflow-tracking-uri", "file:./mlruns", "--json").stdout)
    assert out["run_id"] == RUN and out["source"] == f"runs:/{RUN}/model"
    err = cli("registry", "register", f"runs:/{RUN}/model", "--name", "fraud",
              code=1).stderr
    assert "--mlflow-tracking-uri" in err and "Traceback" not in err
    err = cli("registry", "register", f"runs:/{RUN}/../../x", "--name", "fraud",
              "--mlflow-tracking-uri", "file:./mlruns", code=1).stderr
    assert "must stay inside the run's artifacts" in err


def test_the_server_refuses_runs_sources_with_what_to_do(server: Any) -> None:
    import urllib.error
    import urllib.request

    from tests.registry.conftest import TOKENS

    req = urllib.request.Request(
        f"{server.url}/api/2.0/mlflow/model-versions/create", method="POST",
        data=json.dumps({"name": "m", "source": f"runs:/{RUN}/model"}).encode(),
        headers={"Authorization": f"Bearer {TOKENS['editor']}",
                 "Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=30)
    assert err.value.code == 400
    body = json.loads(err.value.read())
    assert body["error_code"] == "INVALID_PARAMETER_VALUE"
    assert "--mlflow-tracking-uri" in body["message"]
