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
result_path, url, token, model_dir = sys.argv[1:5]
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

    out = run_mlflow(CLIENT, served.url, TOKENS["editor"], str(iris_model_dir))
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
    # satchel reads what MLflow wrote, and the audit names MLflow's token identity.
    reg = Registry(served.db_url)
    v2 = reg.resolve("models:/fraud@champion")
    assert v2.version == 2 and v2.run_id == "run-2" and v2.created_by == "mlflow-user"
    entries = reg.audit("fraud")
    assert {e.actor for e in entries} == {"mlflow-user"}
    assert "set_alias" in [e.action for e in entries] and reg.verify_audit("fraud").ok
