"""The registry server's search reply is joined from per-version JSON fragments, each
reused only while the values it was rendered from are unchanged: the document is the
one the entities render to, a write re-renders only what it changed, and an edit made
behind the registry's back (tables edited directly, the audit trail tampered with) is
still seen. Paging parameters that are not integers are refused with a 400."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from tests.registry.conftest import TOKENS, RegistryServer


def _fill(registry: Any, model_dir: Path) -> None:
    registry.register(model_dir, "fraud", tags={"team": "risk", "note": "é ✓"},
                      run_id="run-1", description="first \"quoted\"")
    registry.register(model_dir, "fraud")
    registry.register(model_dir, "churn", tags={"team": "growth"})
    registry.set_alias("fraud", "champion", 1)
    registry.set_alias("fraud", "challenger", 1)
    registry.set_stage("fraud", 2, "Staging")


def _array(registry: Any, fragments: Any, **kw: Any) -> list[Any]:
    found = registry.store.version_rows(**kw)
    body = fragments.array(found.rows, found.tags, found.aliases)
    parsed: list[Any] = json.loads(body)
    return parsed


def test_fragments_render_the_entities_documents(registry: Any, iris_model_dir: Path) -> None:
    from satchel.serving.registry.app_mlflow import version_json
    from satchel.serving.registry.fragments import VersionFragments

    _fill(registry, iris_model_dir)
    fragments = VersionFragments()
    want = [version_json(v, "") for v in registry.search_versions()]
    assert _array(registry, fragments) == want
    # Reused fragments give the same document.
    assert _array(registry, fragments) == want
    assert fragments.rendered == 3 and fragments.reused == 3
    assert [(v["name"], v["version"]) for v in want] == [
        ("churn", "1"), ("fraud", "2"), ("fraud", "1")]
    assert want[2]["aliases"] == ["challenger", "champion"] and want[2]["run_id"] == "run-1"
    assert want[1]["current_stage"] == "Staging" and want[2]["description"] == 'first "quoted"'


def test_a_write_re_renders_only_what_it_changed_and_edits_behind_its_back_are_seen(
    registry: Any, iris_model_dir: Path
) -> None:
    from satchel.registry.audit import verify
    from satchel.serving.registry.app_mlflow import version_json
    from satchel.serving.registry.fragments import VersionFragments

    _fill(registry, iris_model_dir)
    fragments = VersionFragments()
    _array(registry, fragments)
    assert fragments.rendered == 3
    registry.set_version_tag("churn", 1, "validated", "yes")
    got = _array(registry, fragments)
    assert fragments.rendered == 4 and fragments.reused == 2
    assert {"key": "validated", "value": "yes"} in got[0]["tags"]
    # Edits that bypass the registry (no audit entry): a description, a tag value, an
    # alias moved, and an audit entry rewritten to name another model. Each changed
    # version is rendered again from what the tables now hold.
    with registry.store.engine.begin() as conn:
        conn.execute(text("UPDATE registry_versions SET description = 'sneaky' "
                          "WHERE version = 2"))
        conn.execute(text("UPDATE registry_version_tags SET value = 'fraud-ops' "
                          "WHERE key = 'team' AND value = 'risk'"))
        conn.execute(text("UPDATE registry_aliases SET version = 2 WHERE alias = 'challenger'"))
        conn.execute(text("UPDATE registry_audit SET model = 'elsewhere', version = 99"))
    got = _array(registry, fragments)
    assert fragments.rendered == 6  # fraud 2 and fraud 1 again; churn reused
    assert got == [version_json(v, "") for v in registry.search_versions()]
    assert got[1]["description"] == "sneaky" and got[1]["aliases"] == ["challenger"]
    assert got[2]["aliases"] == ["champion"]
    assert {"key": "team", "value": "fraud-ops"} in got[2]["tags"]
    with registry.store.read() as s:
        assert not verify(s).ok  # the tampering is what the audit check reports
    # A deleted version is simply not listed; filters select from the same fragments.
    registry.set_alias("fraud", "challenger", 1)
    registry.delete_version("fraud", 2)
    assert [v["version"] for v in _array(registry, fragments)] == ["1", "1"]
    assert [v["name"] for v in _array(registry, fragments, name="churn")] == ["churn"]


def test_a_bounded_fragment_cache_starts_again_and_stays_correct(
    registry: Any, iris_model_dir: Path
) -> None:
    from satchel.serving.registry.app_mlflow import version_json
    from satchel.serving.registry.fragments import VersionFragments

    _fill(registry, iris_model_dir)
    fragments = VersionFragments(max_entries=2)
    for _ in range(3):
        assert _array(registry, fragments) == [version_json(v, "")
                                               for v in registry.search_versions()]
        assert len(fragments) <= 2


SEARCH = "/api/2.0/mlflow/model-versions/search"


def _get(server: RegistryServer, path: str, **params: str) -> tuple[int, Any]:
    query = urllib.parse.urlencode(params)
    req = urllib.request.Request(f"{server.url}{path}?{query}")
    req.add_header("Authorization", f"Bearer {TOKENS['reader']}")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_server_search_pages_and_sees_every_change(
    server: RegistryServer, db_url: str, tmp_path: Path, iris_model_dir: Path
) -> None:
    from satchel.registry import Registry
    from satchel.registry.api import close_all

    reg = Registry(db_url, actor="seed", artifact_root=tmp_path / "art")
    _fill(reg, iris_model_dir)
    status, full = _get(server, SEARCH)
    assert status == 200 and "next_page_token" not in full
    names = [(v["name"], v["version"]) for v in full["model_versions"]]
    assert names == [("churn", "1"), ("fraud", "2"), ("fraud", "1")]
    # Pages of two, then one: the same versions in the same order.
    status, first = _get(server, SEARCH, max_results="2")
    assert status == 200 and first["next_page_token"] == "2"
    status, rest = _get(server, SEARCH, max_results="2", page_token=first["next_page_token"])
    assert status == 200 and "next_page_token" not in rest
    assert first["model_versions"] + rest["model_versions"] == full["model_versions"]
    # Filters the SQL does not apply (version, source, tags !=) still hold.
    status, one = _get(server, SEARCH, filter="name='fraud' AND version_number=2")
    assert [v["version"] for v in one["model_versions"]] == ["2"]
    status, other = _get(server, SEARCH, filter="tags.team != 'risk'")
    assert [v["name"] for v in other["model_versions"]] == ["churn", "fraud"]
    # A change behind the registry's back, then a write by another process: both seen.
    with reg.store.engine.begin() as conn:
        conn.execute(text("UPDATE registry_versions SET stage = 'Archived' WHERE version = 2"))
    reg.set_version_tag("churn", 1, "validated", "yes")
    status, after = _get(server, SEARCH)
    got = {(v["name"], v["version"]): v for v in after["model_versions"]}
    assert got[("fraud", "2")]["current_stage"] == "Archived"
    assert {"key": "validated", "value": "yes"} in got[("churn", "1")]["tags"]
    assert got[("fraud", "1")] == full["model_versions"][2]
    close_all()


@pytest.mark.parametrize("params, named", [
    ({"page_token": "garbage"}, "page_token"),
    ({"page_token": "1e3"}, "page_token"),
    ({"page_token": "-1"}, "page_token"),
    ({"page_token": "\x00"}, "page_token"),
    ({"page_token": "9" * 400}, "page_token"),
    ({"max_results": "ten"}, "max_results"),
    ({"max_results": "0"}, "max_results"),
    ({"max_results": "10001"}, "max_results"),
])
def test_hostile_paging_is_a_clear_400(server: RegistryServer, params: dict[str, str],
                                       named: str) -> None:
    status, body = _get(server, SEARCH, **params)
    assert status == 400, body
    assert body["error_code"] == "INVALID_PARAMETER_VALUE"
    assert named in body["message"]
    assert "garbage" not in body["message"] and "Traceback" not in body["message"]
