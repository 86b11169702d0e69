"""The store on SQLite and PostgreSQL: versions, aliases, stages, tags, search, delete."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

import satchel
from satchel.errors import (
    IntegrityError,
    ModelFormatError,
    RegistryConflictError,
    RegistryInputError,
    RegistryNotFoundError,
)


def test_register_versions_lineage_and_content_addressing(
    registry: Any, iris_model_dir: Path, iris_model_dir_2: Path, tmp_path: Path
) -> None:
    v1 = registry.register(iris_model_dir, "iris", description="first", tags={"team": "risk"},
                           run_id="run-1", git_commit="abc123", training_data_digest="sha:1",
                           metadata={"owner": "alice", "n": 3})
    v2 = registry.register(iris_model_dir_2, "iris")
    v3 = registry.register(iris_model_dir, "iris")
    assert (v1.version, v2.version, v3.version) == (1, 2, 3)
    assert v1.created_by == "alice" and v1.run_id == "run-1" and v1.git_commit == "abc123"
    assert v1.training_data_digest == "sha:1" and v1.metadata == {"owner": "alice", "n": 3}
    assert v1.model_uuid == satchel.load_model(iris_model_dir).manifest.model_uuid
    assert v1.signature is not None and "inputs" in v1.signature
    assert v1.source == str(iris_model_dir) and v1.tags == {"team": "risk"}
    assert "sklearn" in v1.flavors and v1.size_bytes > 0
    # Same files -> same digest, stored once; different files -> another tree.
    assert v1.digest == v3.digest != v2.digest
    root = tmp_path / "artifacts"
    assert sorted(p.name for p in (root / "trees").iterdir() if not p.name.startswith(".")) \
        == sorted({v1.digest, v2.digest})
    path = registry.local_path(v1)
    assert path == registry.local_path(v3)
    # The stored files are exactly the registered ones and load.
    model = satchel.load_model(path)
    X = satchel.load_model(iris_model_dir).input_example().data
    assert (model.predict(X) == satchel.load_model(iris_model_dir).predict(X)).all()


def test_version_files_are_immutable_copies(registry: Any, iris_model_dir: Path,
                                            tmp_path: Path) -> None:
    src = tmp_path / "m"
    shutil.copytree(iris_model_dir, src)
    v = registry.register(src, "m")
    shutil.rmtree(src)  # the source going away changes nothing
    model = satchel.load_model(registry.local_path(v))
    assert model.flavor.name == "sklearn"
    stored = registry.local_path(v) / "model.pkl"
    assert not stored.stat().st_mode & 0o222, "stored files are read-only"


def test_register_refuses_tampered_or_unsafe_directories(registry: Any, iris_model_dir: Path,
                                                         tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    shutil.copytree(iris_model_dir, bad)
    (bad / "model.pkl").write_bytes(b"evil")
    with pytest.raises(IntegrityError, match="model.pkl"):
        registry.register(bad, "m")
    link = tmp_path / "link"
    shutil.copytree(iris_model_dir, link)
    (link / "extra").symlink_to("/etc/passwd")
    with pytest.raises((ModelFormatError, IntegrityError)):
        registry.register(link, "m")
    with pytest.raises(ModelFormatError, match="MLmodel"):
        registry.register(tmp_path, "m")
    with pytest.raises(RegistryNotFoundError):
        registry.get_model("m")  # nothing half-registered


def test_aliases_move_and_resolve(registry: Any, iris_model_dir: Path,
                                  iris_model_dir_2: Path) -> None:
    registry.register(iris_model_dir, "fraud")
    registry.register(iris_model_dir_2, "fraud")
    assert registry.set_alias("fraud", "champion", 1).aliases == ("champion",)
    registry.set_alias("fraud", "challenger", 2)
    assert registry.resolve("models:/fraud@champion").version == 1
    registry.set_alias("fraud", "champion", "2")
    assert registry.resolve("models:/fraud@champion").version == 2
    assert registry.get_model("fraud").aliases == {"challenger": 2, "champion": 2}
    assert registry.get_version("fraud", 2).aliases == ("challenger", "champion")
    registry.delete_alias("fraud", "challenger")
    assert registry.get_model("fraud").aliases == {"champion": 2}
    with pytest.raises(RegistryNotFoundError, match="champion") as err:
        registry.resolve("models:/fraud@challenger")
    assert err.value.available == ["champion"]
    with pytest.raises(RegistryNotFoundError, match="versions: 1, 2"):
        registry.set_alias("fraud", "x", 7)


def test_stages_latest_and_archive_existing(registry: Any, iris_model_dir: Path) -> None:
    for _ in range(3):
        registry.register(iris_model_dir, "m")
    registry.set_stage("m", 1, "Production")
    registry.set_stage("m", 2, "staging")
    assert registry.resolve("models:/m/Production").version == 1
    assert registry.resolve("models:/m/production").version == 1
    assert registry.resolve("models:/m/latest").version == 3
    assert registry.resolve("models:/m/None").version == 3
    registry.set_stage("m", 3, "Production", archive_existing_versions=True)
    stages = {v.version: v.stage for v in registry.search_versions("m")}
    assert stages == {1: "Archived", 2: "Staging", 3: "Production"}
    with pytest.raises(RegistryNotFoundError, match="no versions in stage"):
        registry.resolve("models:/m/None")
    with pytest.raises(RegistryInputError, match="not one of"):
        registry.set_stage("m", 1, "Prod")


def test_tags_descriptions_and_search(registry: Any, iris_model_dir: Path) -> None:
    registry.register(iris_model_dir, "fraud-eu", tags={"region": "eu"})
    registry.register(iris_model_dir, "fraud-us")
    registry.register(iris_model_dir, "churn")
    registry.set_model_tag("fraud-eu", "team", "risk")
    registry.set_model_tag("churn", "team", "growth")
    registry.set_model_description("churn", "who leaves")
    registry.set_version_description("churn", 1, "baseline")
    registry.set_version_tag("fraud-us", 1, "region", "us")
    registry.set_alias("fraud-us", "champion", 1)
    assert [m.name for m in registry.search_models("fraud*")] == ["fraud-eu", "fraud-us"]
    assert [m.name for m in registry.search_models("%")] == ["churn", "fraud-eu", "fraud-us"]
    assert [m.name for m in registry.search_models(tags={"team": "risk"})] == ["fraud-eu"]
    assert [m.name for m in registry.search_models(alias="champion")] == ["fraud-us"]
    assert [v.name for v in registry.search_versions(tags={"region": "us"})] == ["fraud-us"]
    assert [v.name for v in registry.search_versions(name_like="fraud-?u")] == ["fraud-eu"]
    assert [v.name for v in registry.search_versions(alias="champion")] == ["fraud-us"]
    assert registry.search_versions(stage="Production") == []
    assert registry.get_model("churn").description == "who leaves"
    assert registry.get_version("churn", 1).description == "baseline"
    registry.delete_model_tag("churn", "team")
    assert registry.get_model("churn").tags == {}
    registry.delete_version_tag("fraud-us", 1, "region")
    assert registry.get_version("fraud-us", 1).tags == {}
    with pytest.raises(RegistryInputError, match="no tag"):
        registry.delete_model_tag("churn", "team")
    page = registry.search_models(max_results=2, offset=1)
    assert [m.name for m in page] == ["fraud-eu", "fraud-us"]


def test_delete_version_refused_while_aliased_and_numbers_not_reused(
    registry: Any, iris_model_dir: Path
) -> None:
    registry.register(iris_model_dir, "m")
    registry.register(iris_model_dir, "m")
    registry.set_alias("m", "champion", 2)
    with pytest.raises(RegistryConflictError, match="champion"):
        registry.delete_version("m", 2)
    with pytest.raises(RegistryConflictError, match="champion -> 2"):
        registry.delete_model("m")
    registry.delete_version("m", 1)
    assert [v.version for v in registry.search_versions("m")] == [2]
    assert registry.register(iris_model_dir, "m").version == 3
    registry.delete_alias("m", "champion")
    registry.delete_version("m", 2)
    with pytest.raises(RegistryNotFoundError, match="versions: 3"):
        registry.get_version("m", 2)
    registry.delete_model("m")
    with pytest.raises(RegistryNotFoundError, match="there are no registered models"):
        registry.get_model("m")


def test_create_model_twice_is_a_conflict(registry: Any) -> None:
    registry.create_model("m", description="d", tags={"a": "b"})
    assert registry.get_model("m").tags == {"a": "b"}
    with pytest.raises(RegistryConflictError, match="already exists"):
        registry.create_model("m")


def test_unknown_names_say_what_exists(registry: Any, iris_model_dir: Path) -> None:
    registry.register(iris_model_dir, "fraud")
    with pytest.raises(RegistryNotFoundError, match="registered models: fraud") as err:
        registry.resolve("models:/frad/1")
    assert err.value.kind == "model" and err.value.available == ["fraud"]
    with pytest.raises(RegistryNotFoundError, match="has no version 5; versions: 1"):
        registry.resolve("models:/fraud/5")
    with pytest.raises(RegistryNotFoundError, match="aliases: there are no aliases|no alias"):
        registry.resolve("models:/fraud@champion")


def test_load_model_takes_models_uris(registry: Any, iris_model_dir: Path,
                                      monkeypatch: pytest.MonkeyPatch, db_url: str) -> None:
    registry.register(iris_model_dir, "iris")
    registry.set_alias("iris", "champion", 1)
    monkeypatch.setenv("SATCHEL_REGISTRY_URI", db_url)
    for uri in ("models:/iris/1", "models:/iris@champion", "models:/iris/latest",
                "models:/iris/None"):
        model = satchel.load_model(uri)
        assert model.registry_version.version == 1, uri
        assert model.registry_version.name == "iris"
    with pytest.raises(RegistryNotFoundError):
        satchel.load_model("models:/iris@nope")


def test_restart_loses_nothing(db_url: str, tmp_path: Path, iris_model_dir: Path) -> None:
    from satchel.registry import Registry
    from satchel.registry.api import close_all

    reg = Registry(db_url, actor="a", artifact_root=tmp_path / "art")
    reg.register(iris_model_dir, "m")
    reg.set_alias("m", "champion", 1)
    close_all()
    again = Registry(db_url, actor="b")  # the artifact root is remembered in the database
    v = again.resolve("models:/m@champion")
    assert v.version == 1 and again.local_path(v).parent.parent == tmp_path / "art"
    assert [e.action for e in again.audit("m")] == ["create_model", "register", "set_alias"]


def test_guards_see_every_change_and_can_refuse(registry: Any, iris_model_dir: Path) -> None:
    from satchel.errors import PolicyError
    from satchel.registry import Change

    seen: list[tuple[str, Any, Any]] = []

    def protect_champion(change: Change) -> None:
        seen.append((change.action, change.before, change.after))
        if change.action == "set_alias" and "champion" in (change.after or {}) \
                and not change.context.get("approved"):
            raise PolicyError("champion is protected: request an approval",
                              checks=["approval missing"])

    registry.add_guard(protect_champion)
    registry.register(iris_model_dir, "m")
    registry.register(iris_model_dir, "m")
    with pytest.raises(PolicyError, match="protected") as err:
        registry.set_alias("m", "champion", 1)
    assert err.value.checks == ["approval missing"]
    assert registry.get_model("m").aliases == {}  # nothing applied
    assert "set_alias" not in [e.action for e in registry.audit("m")]  # nothing audited
    registry.store.set_alias("m", "champion", 2, actor="approver", context={"approved": 7})
    assert registry.get_model("m").aliases == {"champion": 2}
    registry.set_alias("m", "challenger", 1)  # unprotected aliases move directly
    assert ("set_alias", None, {"champion": 2}) in seen
    assert [a for a, _, _ in seen][:3] == ["create_model", "register", "register"]
    registry.store.guards.clear()
