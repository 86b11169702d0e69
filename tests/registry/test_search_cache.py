"""Listings read only what they show and the rest on first use; the registry server
keeps rendered search replies per registry generation, and a write from anywhere (another
process, another worker, the server itself) is seen by the next read."""

from __future__ import annotations

import gc
import json
import pickle
import subprocess
import sys
import urllib.error
import urllib.request
import weakref
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text

from satchel.errors import RegistryInputError, RegistryNotFoundError
from tests.registry.conftest import TOKENS, RegistryServer


def _statements(registry: Any) -> list[str]:
    """The SQL the store's engine runs from now on (an event listener, no stand-in)."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    event.listen(registry.store.engine, "before_cursor_execute", record)
    return seen


def _three_versions(registry: Any, model_dir: Path) -> None:
    registry.register(model_dir, "fraud", tags={"team": "risk"}, run_id="r1",
                      git_commit="abc123", training_data_digest="sha256:feed",
                      metadata={"owner": "erin", "n": [1, 2]}, description="first")
    registry.register(model_dir, "fraud", metadata={"owner": "ed"})
    registry.register(model_dir, "churn", tags={"team": "growth"})
    registry.set_alias("fraud", "champion", 1)
    registry.set_alias("fraud", "challenger", 1)


@pytest.mark.parametrize("in_chunk", [900, 2])
def test_a_listing_selects_no_blobs_and_reads_details_once_on_first_use(
    registry: Any, iris_model_dir: Path, monkeypatch: pytest.MonkeyPatch, in_chunk: int
) -> None:
    from satchel.registry import convert

    # in_chunk=2 makes the listing "long": its details are one query over the listing's
    # filters instead of IN lists of ids.
    monkeypatch.setattr(convert, "IN_CHUNK", in_chunk)
    _three_versions(registry, iris_model_dir)
    full = [registry.get_version("churn", 1), registry.get_version("fraud", 2),
            registry.get_version("fraud", 1)]
    seen = _statements(registry)
    listed = registry.search_versions(name_like="*r*")
    listing_sql = " ".join(seen).lower()
    for blob in ("signature", "metadata", "model_uuid", "flavors", "size_bytes"):
        assert blob not in listing_sql, blob
    # Registered after the listing: it matches the listing's filters, which its details
    # are read with when it is long, but it is not part of it.
    registry.register(iris_model_dir, "fraud", metadata={"owner": "late"})
    # What a listing shows is there without another query.
    before = len(seen)
    assert [(v.name, v.version, v.aliases, v.tags, v.description, v.run_id) for v in listed] \
        == [("churn", 1, (), {"team": "growth"}, "", None),
            ("fraud", 2, (), {}, "", None),
            ("fraud", 1, ("challenger", "champion"), {"team": "risk"}, "first", "r1")]
    assert len(seen) == before
    # The first detail read fills every listed version in one query.
    assert listed[2].metadata == {"owner": "erin", "n": [1, 2]}
    assert len(seen) == before + 1
    assert [v.signature for v in listed] == [v.signature for v in full]
    assert listed[2].git_commit == "abc123" and listed[2].training_data_digest == "sha256:feed"
    assert all(v.size_bytes > 0 and v.flavors == full[0].flavors for v in listed)
    assert len(seen) == before + 1
    assert listed == full
    assert [v.to_dict() for v in listed] == [v.to_dict() for v in full]
    # Each version has its own metadata dict (a caller changing one changes no other).
    listed[1].metadata["x"] = 1
    assert "x" not in listed[2].metadata and "x" not in registry.get_version(
        "fraud", 2).metadata


def test_details_of_a_version_deleted_after_listing_are_refused_by_name(
    registry: Any, iris_model_dir: Path
) -> None:
    _three_versions(registry, iris_model_dir)
    listed = registry.search_versions("fraud")
    registry.delete_version("fraud", 2)
    with pytest.raises(RegistryNotFoundError, match="version 2 of 'fraud' was deleted"):
        _ = listed[0].signature
    # The other version of the listing still reads its details; the deleted one keeps
    # what the listing showed.
    assert listed[1].metadata["owner"] == "erin"
    assert (listed[0].name, listed[0].version, listed[0].stage) == ("fraud", 2, "None")
    with pytest.raises(RegistryNotFoundError):
        _ = listed[0].metadata


def test_listed_versions_pickle_complete_and_without_the_loader(
    registry: Any, iris_model_dir: Path
) -> None:
    _three_versions(registry, iris_model_dir)
    listed = registry.search_versions("fraud")
    copy = pickle.loads(pickle.dumps(listed[1]))
    assert "_details" not in copy.__dict__
    assert copy == registry.get_version("fraud", 1)
    assert copy.metadata == {"owner": "erin", "n": [1, 2]}
    with pytest.raises(AttributeError):
        _ = listed[1].no_such_field


def test_a_dropped_listing_is_freed_without_the_cyclic_collector(
    registry: Any, iris_model_dir: Path
) -> None:
    _three_versions(registry, iris_model_dir)
    gc.disable()
    try:
        listed = registry.search_versions()
        ref = weakref.ref(listed[0])
        del listed
        assert ref() is None
    finally:
        gc.enable()


@pytest.mark.parametrize("kwargs, field", [
    ({"offset": "3"}, "offset"), ({"offset": True}, "offset"), ({"offset": 1.5}, "offset"),
    ({"offset": 10**30}, "offset"),
    ({"max_results": "10"}, "max_results"), ({"max_results": 0}, "max_results"),
    ({"run_id": 5}, "run_id"), ({"run_id": "x" * 300}, "run_id"),
    ({"run_id": "a\x00b"}, "run_id"), ({"digest": "f" * 65}, "digest"), ({"digest": 7}, "digest"),
    ({"name_like": "x" * 1001}, "name_like"), ({"stage": "Prod"}, "stage"),
    ({"tags": {"k" * 300: "v"}}, "tag"), ({"alias": "bad alias"}, "alias"),
])
def test_hostile_search_arguments_are_refused_by_name(registry: Any, kwargs: dict[str, Any],
                                                      field: str) -> None:
    with pytest.raises(RegistryInputError) as err:
        registry.search_versions(**kwargs)
    assert field in str(err.value).lower() or field in str(getattr(err.value, "field", ""))


def test_generation_moves_with_every_write_from_any_process(
    db_url: str, registry: Any, iris_model_dir: Path, tmp_path: Path
) -> None:
    store = registry.store
    g0 = store.generation()
    registry.register(iris_model_dir, "m")
    g1 = store.generation()
    assert g1 > g0
    registry.set_alias("m", "champion", 1)
    g2 = store.generation()
    registry.set_alias("m", "champion", 1)  # no change, no write
    assert store.generation() == g2 > g1
    # A write by another process is seen by this one's next read of the generation.
    code = ("from satchel.registry import Registry; "
            f"Registry({db_url!r}, actor='other', artifact_root={str(tmp_path / 'a')!r})"
            ".set_version_tag('m', 1, 'k', 'v')")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
    assert store.generation() > g2


# ---------------------------------------------------------------- the server's cache

SEARCH = "/api/2.0/mlflow/model-versions/search?filter=name%3D%27fraud%27"
MODELS = "/api/2.0/mlflow/registered-models/search?max_results=10"


def _get(server: RegistryServer, path: str, token: str = TOKENS["reader"]) -> tuple[int, Any]:
    req = urllib.request.Request(server.url + path)
    req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def _descriptions(server: RegistryServer) -> dict[str, str]:
    status, body = _get(server, SEARCH)
    assert status == 200
    return {v["version"]: v["description"] for v in body["model_versions"]}


@pytest.mark.parametrize("workers", ["1", "2"])
def test_search_replies_are_cached_until_a_write_from_anywhere(
    db_url: str, tmp_path: Path, token_file: Path, iris_model_dir: Path, workers: str
) -> None:
    from satchel.registry import Registry
    from satchel.registry.api import close_all

    reg = Registry(db_url, actor="seed", artifact_root=tmp_path / "art")
    reg.register(iris_model_dir, "fraud", description="one")
    reg.register(iris_model_dir, "fraud", description="two")
    close_all()
    srv = RegistryServer(db_url, tmp_path / "art", token_file,
                         extra=("--workers", workers)).start()
    try:
        # Warm every worker's cache (each call is a new connection, and the kernel
        # hands connections to the workers at random: 30 leave none out in practice).
        for _ in range(30):
            assert _descriptions(srv) == {"2": "two", "1": "one"}
            _get(srv, MODELS)
        # A change made behind the registry's back (no write, so no new generation) is
        # not seen: the replies come from the cache.
        engine = Registry(db_url).store.engine
        with engine.begin() as conn:
            conn.execute(text("UPDATE registry_versions SET description = 'sneaky' "
                              "WHERE version = 2"))
        for _ in range(4):
            assert _descriptions(srv)["2"] == "two"
        # A write by another process (this one, on the database directly) is seen by
        # the next read of every worker.
        reg = Registry(db_url, actor="other", artifact_root=tmp_path / "art")
        reg.set_version_tag("fraud", 1, "validated", "yes")
        for _ in range(6):
            status, body = _get(srv, SEARCH)
            got = {v["version"]: v for v in body["model_versions"]}
            assert got["2"]["description"] == "sneaky"
            assert got["1"]["tags"] == [{"key": "validated", "value": "yes"}]
        # A write through the server is seen too, by the models search as well.
        status, _ = _post(srv, "/api/2.0/mlflow/registered-models/set-tag",
                          {"name": "fraud", "key": "team", "value": "risk"})
        assert status == 200
        for _ in range(6):
            status, body = _get(srv, MODELS)
            assert body["registered_models"][0]["tags"] == [{"key": "team", "value": "risk"}]
        # Filters are part of the key: a search by tag is answered for itself.
        status, body = _get(srv, "/api/2.0/mlflow/model-versions/search?filter="
                            "tags.validated%3D%27yes%27")
        assert [v["version"] for v in body["model_versions"]] == ["1"]
        # Roles still hold on a cached route, and errors are not cached.
        assert _get(srv, SEARCH, token="wrong-token")[0] == 401
        for _ in range(2):
            status, body = _get(srv, "/api/2.0/mlflow/registered-models/get?name=nope")
            assert status == 404 and "nope" in body["message"]
    finally:
        srv.stop()
        close_all()


def _post(server: RegistryServer, path: str, body: dict[str, Any]) -> tuple[int, Any]:
    req = urllib.request.Request(server.url + path, data=json.dumps(body).encode(),
                                 method="POST")
    req.add_header("Authorization", f"Bearer {TOKENS['editor']}")
    req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=30) as resp:
        return resp.status, json.loads(resp.read() or b"{}")


def test_response_cache_bounds_and_keys() -> None:
    from satchel.serving.registry.response_cache import ResponseCache, render, request_key

    cache = ResponseCache(max_bytes=100)
    k1 = request_key("search", {"filter": "name='a'", "max_results": "5"})
    assert k1 == request_key("search", {"max_results": "5", "filter": "name='a'"})
    assert k1 != request_key("search", {"filter": "name='b'", "max_results": "5"})
    assert request_key("s", {"stages": ["a", "b"]}) != request_key("s", {"stages": "a"})
    cache.put(k1, 7, b"x" * 20)
    assert cache.get(k1, 7) == b"x" * 20
    assert cache.get(k1, 8) is None  # another generation: stale
    cache.put("big", 7, b"y" * 26)  # over a quarter of the bound: not kept
    assert cache.get("big", 7) is None
    for i in range(10):
        cache.put(i, 7, b"z" * 20)
    assert len(cache) <= 5 and cache.get(9, 7) == b"z" * 20 and cache.get(k1, 7) is None
    # The rendered JSON is the json module's document, with or without orjson.
    value = {"a": ["é", 1, None, {"b": "\ud800"}]}
    assert json.loads(render(value).decode("utf-8", "surrogatepass")) == value
