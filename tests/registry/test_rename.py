"""Renaming a registered model: versions, aliases, stages, tags and policy follow it,
the old name is freed, the audit trail follows it across names, and every entry point
(Python API, CLI, satchel's server API, MLflow's REST route) does the same."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

import satchel
from satchel.errors import (
    PolicyError,
    RegistryAuthError,
    RegistryConflictError,
    RegistryInputError,
    RegistryNotFoundError,
)


def test_rename_moves_versions_aliases_stages_and_tags(
    registry: Any, iris_model_dir: Path, iris_model_dir_2: Path, tmp_path: Path
) -> None:
    registry.register(iris_model_dir, "fraud", tags={"team": "risk"})
    v2 = registry.register(iris_model_dir_2, "fraud")
    registry.set_alias("fraud", "champion", 2)
    registry.set_stage("fraud", 1, "Production")
    registry.set_model_tag("fraud", "owner", "alice")
    registry.set_version_tag("fraud", 1, "ok", "yes")
    registry.resolve("models:/fraud@champion")  # fills the read cache under the old name

    renamed = registry.rename_model("fraud", "fraud-v2")
    assert renamed.name == "fraud-v2" and renamed.aliases == {"champion": 2}
    assert renamed.versions == 2 and renamed.latest_version == 2
    assert renamed.tags == {"owner": "alice"}
    moved = registry.resolve("models:/fraud-v2@champion")
    assert (moved.name, moved.version, moved.digest) == ("fraud-v2", 2, v2.digest)
    assert registry.get_version("fraud-v2", 1).stage == "Production"
    assert registry.get_version("fraud-v2", 1).tags == {"team": "risk", "ok": "yes"}
    assert registry.resolve("models:/fraud-v2/Production").version == 1
    # The files did not move or change: it still loads from the same tree.
    assert registry.local_path(moved) == registry.local_path(v2)
    satchel.load_model(registry.local_path(moved))
    # The old name no longer resolves, and says what exists now.
    with pytest.raises(RegistryNotFoundError, match="fraud-v2"):
        registry.resolve("models:/fraud@champion")
    assert [m.name for m in registry.search_models()] == ["fraud-v2"]
    assert {v.name for v in registry.search_versions(name_like="fraud*")} == {"fraud-v2"}
    # Version numbers continue where they were.
    assert registry.register(iris_model_dir, "fraud-v2").version == 3


def test_rename_is_audited_and_audit_follows_the_model(
    registry: Any, iris_model_dir: Path
) -> None:
    registry.register(iris_model_dir, "a")
    registry.set_alias("a", "champion", 1)
    registry.rename_model("a", "b")
    registry.set_model_tag("b", "k", "v")
    # The freed name is taken by another model: its history is its own.
    registry.register(iris_model_dir, "a")
    registry.rename_model("b", "c")

    history = registry.audit("c")
    assert [(e.action, e.model) for e in history] == [
        ("create_model", "a"), ("register", "a"), ("set_alias", "a"),
        ("rename_model", "b"), ("set_model_tag", "b"), ("rename_model", "c")]
    rename = history[3]
    assert rename.before == {"name": "a"} and rename.after == {"name": "b"}
    assert rename.actor == "alice"
    # The new model "a" sees only its own entries, not the renamed model's past.
    assert [(e.action, e.model) for e in registry.audit("a")] == [
        ("create_model", "a"), ("register", "a")]
    assert registry.audit("c", limit=2)[0].action == "set_model_tag"
    report = registry.verify_audit("c")
    assert report.ok and report.entries == 6


def test_rename_refusals(registry: Any, iris_model_dir: Path) -> None:
    registry.register(iris_model_dir, "one")
    registry.register(iris_model_dir, "two")
    with pytest.raises(RegistryConflictError, match="'two' already exists"):
        registry.rename_model("one", "two")
    with pytest.raises(RegistryNotFoundError, match="no registered model named 'zero'"):
        registry.rename_model("zero", "three")
    with pytest.raises(RegistryInputError, match="already named"):
        registry.rename_model("one", "one")
    for bad in ("../x", "a/b", "x@y", "", " x", "a:b", "x" * 257, 7, None):
        with pytest.raises(RegistryInputError, match="new_name"):
            registry.rename_model("one", bad)
    # Nothing changed, nothing audited.
    assert [m.name for m in registry.search_models()] == ["one", "two"]
    assert "rename_model" not in {e.action for e in registry.audit()}


def test_rename_keeps_the_governance_policy(registry: Any, iris_model_dir: Path) -> None:
    from satchel.registry.governance.service import Governance

    registry.register(iris_model_dir, "fraud")
    registry.register(iris_model_dir, "fraud")
    registry.set_alias("fraud", "champion", 1)
    gov = Governance(registry)
    gov.set_policy("fraud", "protect:\n  aliases: [champion]\napprovers: [bob]\n")
    registry.rename_model("fraud", "fraud2")
    # The protection moved with the model: a direct move is still refused.
    with pytest.raises(PolicyError, match="protected"):
        registry.set_alias("fraud2", "champion", 2)
    assert gov.get_policy("fraud2") is not None and gov.get_policy("fraud") is None
    # A model that takes the freed name starts without the policy.
    registry.register(iris_model_dir, "fraud")
    registry.set_alias("fraud", "champion", 1)


def test_rename_from_the_cli(iris_model_dir: Path, tmp_path: Path) -> None:
    env = {**os.environ, "SATCHEL_REGISTRY_URI": f"sqlite:///{tmp_path / 'reg.db'}",
           "SATCHEL_USER": "carol"}

    def cli(*args: str, code: int = 0) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([sys.executable, "-m", "satchel", *args], capture_output=True,
                              text=True, env=env, timeout=300)
        assert done.returncode == code, (args, done.stdout, done.stderr)
        return done

    cli("registry", "register", str(iris_model_dir), "--name", "fraud", "--alias", "champion")
    out = cli("registry", "rename", "fraud", "fraud-eu").stdout
    assert "renamed fraud to fraud-eu (1 versions, aliases champion->1)" in out
    shown = json.loads(cli("registry", "show", "fraud-eu@champion", "--json").stdout)
    assert shown["name"] == "fraud-eu" and shown["version"] == 1
    err = cli("registry", "rename", "fraud", "x", code=1).stderr
    assert "no registered model named 'fraud'; registered models: fraud-eu" in err
    err = cli("registry", "rename", "fraud-eu", "a/b", code=1).stderr
    assert "new_name 'a/b' is not allowed" in err and "Traceback" not in err
    audit = json.loads(cli("registry", "audit", "fraud-eu", "--json").stdout)
    assert audit[-1]["action"] == "rename_model" and audit[-1]["actor"] == "carol"
    assert audit[0]["model"] == "fraud"


def _post(url: str, body: dict[str, Any], token: str) -> tuple[int, dict[str, Any]]:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Authorization": f"Bearer {token}",
                                          "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_rename_over_http(server: Any, remote: Any, iris_model_dir: Path,
                          tmp_path: Path) -> None:
    from satchel.registry import Registry
    from satchel.registry.client import HttpStore
    from tests.registry.conftest import TOKENS

    remote.register(iris_model_dir, "fraud")
    remote.set_alias("fraud", "champion", 1)
    # Editors may not rename (it frees a name deployments resolve): admin only.
    with pytest.raises(RegistryAuthError, match="needs the admin role"):
        remote.rename_model("fraud", "fraud2")
    admin = Registry._from_store(
        HttpStore(server.url, token=TOKENS["admin"], cache_dir=tmp_path / "c2"), "root")
    renamed = admin.rename_model("fraud", "fraud2")
    assert renamed.name == "fraud2" and renamed.aliases == {"champion": 1}
    assert remote.resolve("models:/fraud2@champion").version == 1
    assert admin.audit("fraud2")[-1].actor == "root"  # the token's identity

    # MLflow's REST route: same roles, MLflow's error codes, never a 500.
    url = f"{server.url}/api/2.0/mlflow/registered-models/rename"
    status, body = _post(url, {"name": "fraud2", "new_name": "fraud3"}, TOKENS["reader"])
    assert status == 403 and body["error_code"] == "PERMISSION_DENIED"
    status, body = _post(url, {"name": "fraud2"}, TOKENS["admin"])
    assert status == 400 and "new_name" in body["message"]
    status, body = _post(url, {"name": "nope", "new_name": "x"}, TOKENS["admin"])
    assert status == 404 and body["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    status, body = _post(url, {"name": "fraud2", "new_name": "../etc"}, TOKENS["admin"])
    assert status == 400 and body["error_code"] == "INVALID_PARAMETER_VALUE"
    assert "../etc" in body["message"] and len(body["message"]) < 400
    remote.register(iris_model_dir, "taken")
    status, body = _post(url, {"name": "fraud2", "new_name": "taken"}, TOKENS["admin"])
    assert status == 409 and body["error_code"] == "RESOURCE_ALREADY_EXISTS"
    status, body = _post(url, {"name": "fraud2", "new_name": "fraud3"}, TOKENS["admin"])
    assert status == 200
    model = body["registered_model"]
    assert model["name"] == "fraud3"
    assert model["aliases"] == [{"alias": "champion", "version": "1"}]
    assert remote.resolve("models:/fraud3@champion").version == 1
