"""An unmodified MLflow 3.17 client against ``satchel registry serve`` (in the side venv).

MLflow creates a registered model, uploads a model directory through its artifact
repository, creates versions, moves aliases and stages, searches, and loads
``models:/NAME@ALIAS`` with ``mlflow.pyfunc.load_model``; satchel reads back what MLflow
wrote, with MLflow's token identity in the audit trail.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.registry.conftest import TOKENS, RegistryServer

pytestmark = [pytest.mark.interop]

CLIENT = """
import json, os, sys, uuid
result_path, url, token, model_dir, admin_token = sys.argv[1:6]
os.environ["MLFLOW_TRACKING_TOKEN"] = token
# Only the registry is remote; MLflow's tracking side stays a local database.
os.environ["MLFLOW_TRACKING_URI"] = "sqlite:///" + os.path.abspath(uuid.uuid4().hex + ".db")
import mlflow, pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.store.artifact.http_artifact_repo import HttpArtifactRepository

mlflow.set_registry_uri(url)
client = MlflowClient(registry_uri=url)
out = {}
rm = client.create_registered_model("fraud", tags={"team": "risk"}, description="fraud model")
out["created"] = [rm.name, rm.tags, rm.description]
versions = []
for run in ("run-1", "run-2"):
    up = uuid.uuid4().hex
    HttpArtifactRepository(f"{url}/api/2.0/mlflow-artifacts/artifacts/uploads/{up}"
                           ).log_artifacts(model_dir)
    mv = client.create_model_version("fraud", source=f"mlflow-artifacts:/uploads/{up}",
                                     run_id=run, tags={"run": run}, description=run)
    versions.append([mv.version, mv.status, mv.run_id, mv.tags, mv.user_id])
out["versions"] = versions
client.set_registered_model_alias("fraud", "champion", "1")
client.set_registered_model_alias("fraud", "challenger", "2")
client.set_registered_model_alias("fraud", "champion", "2")
out["by_alias"] = client.get_model_version_by_alias("fraud", "champion").version
out["aliases"] = client.get_registered_model("fraud").aliases
client.delete_registered_model_alias("fraud", "challenger")
client.transition_model_version_stage("fraud", "1", "Production")
client.transition_model_version_stage("fraud", "2", "Production", archive_existing_versions=True)
out["stages"] = {v.version: v.current_stage for v in client.search_model_versions("name='fraud'")}
out["latest_prod"] = [v.version for v in client.get_latest_versions("fraud", ["Production"])]
out["search_models"] = [m.name for m in client.search_registered_models("name LIKE 'fra%'")]
out["search_tag"] = [m.name for m in client.search_registered_models("tags.team = 'risk'")]
client.set_model_version_tag("fraud", "1", "validated", "yes")
client.update_model_version("fraud", "1", description="first version")
client.set_registered_model_tag("fraud", "owner", "ml")
out["v1"] = [client.get_model_version("fraud", "1").description,
             client.get_model_version("fraud", "1").tags]
out["download_uri"] = client.get_model_version_download_uri("fraud", "2")
model = mlflow.pyfunc.load_model("models:/fraud@champion")
X = pd.DataFrame([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]],
                 columns=["sepal_length", "sepal_width", "petal_length", "petal_width"])
out["predictions"] = [int(p) for p in model.predict(X)]
out["by_stage"] = [int(p) for p in mlflow.pyfunc.load_model("models:/fraud/Production").predict(X)]
try:
    client.get_model_version_by_alias("fraud", "nope")
except MlflowException as exc:
    out["missing_alias"] = [exc.error_code, str(exc.message)]
try:
    client.delete_model_version("fraud", "1")
except MlflowException as exc:
    out["editor_delete"] = exc.error_code
try:
    client.rename_registered_model("fraud", "fraud-renamed")
except MlflowException as exc:
    out["editor_rename"] = exc.error_code
os.environ["MLFLOW_TRACKING_TOKEN"] = admin_token  # read per request by MLflow's client
client.rename_registered_model("fraud", "fraud-renamed")  # MLflow 3 returns None
renamed = client.get_registered_model("fraud-renamed")
out["renamed"] = [renamed.name, renamed.aliases]
out["renamed_alias"] = client.get_model_version_by_alias("fraud-renamed", "champion").version
out["renamed_stages"] = {v.version: v.current_stage
                         for v in client.search_model_versions("name='fraud-renamed'")}
out["renamed_predictions"] = [
    int(p) for p in mlflow.pyfunc.load_model("models:/fraud-renamed@champion").predict(X)]
try:
    client.get_registered_model("fraud")
except MlflowException as exc:
    out["old_name"] = exc.error_code
try:
    client.rename_registered_model("fraud-renamed", "../escape")
except MlflowException as exc:
    out["bad_rename"] = exc.error_code
json.dump(out, open(result_path, "w"))
"""


@pytest.fixture
def served(tmp_path: Path) -> Iterator[RegistryServer]:
    tokens = tmp_path / "tokens"
    tokens.write_text(f"{TOKENS['editor']} mlflow-user editor\n{TOKENS['admin']} root admin\n")
    srv = RegistryServer(f"sqlite:///{tmp_path / 'reg.db'}", tmp_path / "art", tokens).start()
    try:
        yield srv
    finally:
        srv.stop()


def test_mlflow_client_against_satchel_registry(
    served: RegistryServer, run_mlflow: Callable[..., Any], iris_model_dir: Path,
    tmp_path: Path, iris: tuple[Any, Any],
) -> None:
    import satchel
    from satchel.registry import Registry

    out = run_mlflow(CLIENT, served.url, TOKENS["editor"], str(iris_model_dir),
                     TOKENS["admin"])
    assert out["created"] == ["fraud", {"team": "risk"}, "fraud model"]
    assert [v[:4] for v in out["versions"]] == [
        ["1", "READY", "run-1", {"run": "run-1"}], ["2", "READY", "run-2", {"run": "run-2"}]]
    assert out["by_alias"] == "2"
    assert out["aliases"] == {"challenger": "2", "champion": "2"}
    assert out["stages"] == {"1": "Archived", "2": "Production"}
    assert out["latest_prod"] == ["2"]
    assert out["search_models"] == ["fraud"] and out["search_tag"] == ["fraud"]
    assert out["v1"] == ["first version", {"run": "run-1", "validated": "yes"}]
    assert out["download_uri"].startswith(served.url + "/api/2.0/mlflow-artifacts/artifacts/")
    X = iris[0].iloc[[0, 100]]
    want = satchel.load_model(iris_model_dir).predict(X).tolist()
    assert out["predictions"] == want and out["by_stage"] == want
    assert out["missing_alias"][0] == "RESOURCE_DOES_NOT_EXIST"
    assert "aliases: champion" in out["missing_alias"][1]
    assert out["editor_delete"] == "PERMISSION_DENIED"
    # MlflowClient.rename_registered_model: admin only; aliases and stages follow.
    assert out["editor_rename"] == "PERMISSION_DENIED"
    assert out["renamed"] == ["fraud-renamed", {"champion": "2"}]
    assert out["renamed_alias"] == "2"
    assert out["renamed_stages"] == {"1": "Archived", "2": "Production"}
    assert out["renamed_predictions"] == want
    assert out["old_name"] == "RESOURCE_DOES_NOT_EXIST"
    assert out["bad_rename"] == "INVALID_PARAMETER_VALUE"
    # satchel reads what MLflow wrote, and the audit names MLflow's token identities.
    reg = Registry(served.db_url)
    v2 = reg.resolve("models:/fraud-renamed@champion")
    assert v2.version == 2 and v2.run_id == "run-2" and v2.created_by == "mlflow-user"
    entries = reg.audit("fraud-renamed")
    assert {e.actor for e in entries} == {"mlflow-user", "root"}
    assert entries[0].model == "fraud" and entries[-1].action == "rename_model"
    assert entries[-1].actor == "root" and entries[-1].before == {"name": "fraud"}
    assert "set_alias" in [e.action for e in entries] and reg.verify_audit("fraud-renamed").ok


RUN_SCRIPT = """
import json, os, sys
result_path = sys.argv[1]
os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"  # MLflow 3.17 keeps the file store opt-in
import mlflow, pandas as pd
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
X, y = load_iris(return_X_y=True, as_frame=True)
X.columns = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
with mlflow.start_run() as run:
    info = mlflow.sklearn.log_model(LogisticRegression(max_iter=500).fit(X, y), name="model",
                                    input_example=X.head(3))
json.dump({"run_id": run.info.run_id, "tracking_uri": mlflow.get_tracking_uri(),
           "predictions": [int(p) for p in mlflow.pyfunc.load_model(
               f"runs:/{run.info.run_id}/model").predict(X.head(10))]},
          open(result_path, "w"))
"""


def test_register_a_run_that_mlflow_logged_to_a_file_store(
    run_mlflow: Callable[..., Any], tmp_path: Path, iris: tuple[Any, Any],
) -> None:
    import satchel
    from satchel.registry import Registry

    out = run_mlflow(RUN_SCRIPT)
    assert out["tracking_uri"].startswith("file:")
    reg = Registry(f"sqlite:///{tmp_path / 'reg.db'}", actor="alice",
                   artifact_root=tmp_path / "art")
    v = reg.register(f"runs:/{out['run_id']}/model", "iris",
                     mlflow_tracking_uri=out["tracking_uri"])
    assert v.run_id == out["run_id"] and v.source == f"runs:/{out['run_id']}/model"
    assert v.metadata["mlflow_logged_model_id"].startswith("m-")
    X = iris[0].head(10)
    got = satchel.load_model(reg.local_path(v))
    assert [int(p) for p in got.predict(X)] == out["predictions"]
    with pytest.raises(Exception, match="no run 'nope'"):
        reg.register("runs:/nope/model", "iris", mlflow_tracking_uri=out["tracking_uri"])
