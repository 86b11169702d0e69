"""Hostile input to every registry call: path-like names, SQL-ish strings, huge values."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from satchel.errors import RegistryInputError, RegistryNotFoundError
from satchel.registry.uri import parse

BAD_NAMES = ["a/b", "../x", "..", ".", "a@b", "a\\b", "c:d", "", " lead", "trail ", "x\x00y",
             "x\ny", "n" * 257, 5, None]
SQLISH = ["x'; DROP TABLE registry_models; --", "x\" OR 1=1 --", "%", "_", "x%' OR '1'='1"]


@pytest.mark.parametrize("name", BAD_NAMES, ids=repr)
def test_bad_names_are_refused_by_every_call(registry: Any, iris_model_dir: Path,
                                             name: Any) -> None:
    calls = [
        lambda: registry.register(iris_model_dir, name),
        lambda: registry.create_model(name),
        lambda: registry.get_model(name),
        lambda: registry.get_version(name, 1),
        lambda: registry.set_alias(name, "a", 1),
        lambda: registry.set_stage(name, 1, "Staging"),
        lambda: registry.set_model_tag(name, "k", "v"),
        lambda: registry.set_version_tag(name, 1, "k", "v"),
        lambda: registry.set_model_description(name, "d"),
        lambda: registry.delete_version(name, 1),
        lambda: registry.delete_model(name),
    ]
    if name is not None:  # audit(None) is the whole trail
        calls.append(lambda: registry.audit(name))
    for call in calls:
        with pytest.raises(RegistryInputError) as err:
            call()
        assert err.value.field == "name"
        assert len(str(err.value)) < 400  # never echoes a huge value
    assert registry.search_models() == []


@pytest.mark.parametrize("name", SQLISH)
def test_sql_ish_names_are_just_names(registry: Any, iris_model_dir: Path, name: str) -> None:
    v = registry.register(iris_model_dir, name, tags={name: name})
    assert registry.get_model(name).name == name
    assert registry.get_version(name, 1).tags == {name: name}
    assert registry.resolve(f"models:/{name}/1").digest == v.digest
    assert [v.name for v in registry.search_versions(tags={name: name})] == [name]
    registry.set_model_tag(name, name, name)
    assert [m.name for m in registry.search_models(tags={name: name})] == [name]
    registry.register(iris_model_dir, "other")
    assert len(registry.search_models()) == 2  # nothing dropped


@pytest.mark.parametrize("alias", ["latest", "LATEST", "v1", "V12", "a b", "a/b", "a@b", "",
                                   "1abc", "x" * 251, "a;b", None])
def test_bad_aliases(registry: Any, iris_model_dir: Path, alias: Any) -> None:
    registry.register(iris_model_dir, "m")
    with pytest.raises(RegistryInputError) as err:
        registry.set_alias("m", alias, 1)
    assert err.value.field == "alias"
    assert registry.get_model("m").aliases == {}


@pytest.mark.parametrize("version", [0, -1, "x", "1.5", 1.5, True, 2**40, "99999999999", None])
def test_bad_versions(registry: Any, iris_model_dir: Path, version: Any) -> None:
    registry.register(iris_model_dir, "m")
    with pytest.raises(RegistryInputError, match="positive integer"):
        registry.get_version("m", version)


def test_huge_and_odd_tags_and_fields(registry: Any, iris_model_dir: Path) -> None:
    registry.register(iris_model_dir, "m")
    with pytest.raises(RegistryInputError, match="limit is 5000") as err:
        registry.set_model_tag("m", "k", "v" * 5001)
    assert err.value.limit == "5000" and "vvvvvvvvvv" not in str(err.value)
    with pytest.raises(RegistryInputError, match="limit is 250"):
        registry.set_version_tag("m", 1, "k" * 251, "v")
    with pytest.raises(RegistryInputError, match="control"):
        registry.set_model_tag("m", "a\nb", "v")
    with pytest.raises(RegistryInputError, match="must be a string"):
        registry.set_model_tag("m", "k", 5)
    with pytest.raises(RegistryInputError, match="limit is 100000"):
        registry.set_model_description("m", "d" * 100_001)
    with pytest.raises(RegistryInputError, match="metadata"):
        registry.register(iris_model_dir, "m", metadata={"x": object()})
    with pytest.raises(RegistryInputError, match="metadata"):
        registry.register(iris_model_dir, "m", metadata={"x": "y" * 100_001})
    with pytest.raises(RegistryInputError, match="run_id"):
        registry.register(iris_model_dir, "m", run_id="r" * 300)
    with pytest.raises(RegistryInputError, match="max_results"):
        registry.search_models(max_results=0)
    with pytest.raises(RegistryInputError, match="max_results"):
        registry.search_versions(max_results=10**9)
    registry.set_model_tag("m", "ünïcødé ✓", "值" * 5000)
    assert registry.get_model("m").tags["ünïcødé ✓"] == "值" * 5000
    assert [v.version for v in registry.search_versions("m")] == [1]


@pytest.mark.parametrize("uri,match", [
    ("models:/", "malformed"),
    ("models:/a", "malformed"),
    ("models:/a/b/c", "malformed"),
    ("models:/a/1.5", "not a version number"),
    ("models:/a/-1", "not a version number"),
    ("models:/a@", "alias"),
    ("models:/a@latest", "reserved"),
    ("models:/../1", "name"),
    ("models:/../etc/1", "malformed"),
    ("models://host/a/1", "host or profile"),
    ("models:/a/0", "positive integer"),
    ("runs:/a", "not a models"),
])
def test_bad_models_uris(uri: str, match: str) -> None:
    with pytest.raises(RegistryInputError, match=match):
        parse(uri)


def test_uri_forms() -> None:
    assert parse("models:/fraud/3").version == 3
    assert parse("models:/fraud@champion").alias == "champion"
    assert parse("models:/fraud/production").stage == "Production"
    assert parse("models:/fraud/Latest").latest
    assert str(parse("models:/my model.v2@champ_1")) == "models:/my model.v2@champ_1"


def test_search_patterns_cannot_escape(registry: Any, iris_model_dir: Path) -> None:
    registry.register(iris_model_dir, "abc")
    assert registry.search_models("' OR 1=1 --") == []
    with pytest.raises(RegistryInputError, match="pattern"):
        registry.search_models("x" * 1001)
    with pytest.raises(RegistryNotFoundError):
        registry.get_model("abc'--")
