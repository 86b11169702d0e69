"""The registry server over HTTP: satchel's remote client, roles, errors, restarts."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

import satchel
from satchel.errors import (
    IntegrityError,
    RegistryAuthError,
    RegistryConflictError,
    RegistryInputError,
    RegistryNotFoundError,
    RegistryUnavailableError,
)
from tests.registry.conftest import TOKENS, RegistryServer


def _http(url: str, method: str = "GET", body: Any = None, token: str | None = None,
          raw: bytes | None = None) -> tuple[int, Any]:
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            payload = resp.read()
            return resp.status, json.loads(payload) if payload else None
    except urllib.error.HTTPError as err:
        payload = err.read()
        try:
            return err.code, json.loads(payload)
        except ValueError:
            return err.code, payload.decode(errors="replace")


def _remote(server: RegistryServer, role: str, cache: Path) -> Any:
    from satchel.registry import Registry
    from satchel.registry.client import HttpStore

    return Registry._from_store(HttpStore(server.url, token=TOKENS[role], cache_dir=cache),
                                role)


def test_remote_registry_round_trip(remote: Any, server: RegistryServer, tmp_path: Path,
                                    iris_model_dir: Path) -> None:
    v1 = remote.register(iris_model_dir, "fraud", tags={"team": "risk"}, run_id="r1",
                         metadata={"owner": "erin"})
    assert (v1.version, v1.created_by, v1.run_id) == (1, "erin", "r1")
    blobs = sorted((server.artifact_root / "blobs").rglob("*"))
    v2 = remote.register(iris_model_dir, "fraud")  # same files: nothing new stored
    assert v2.digest == v1.digest and sorted((server.artifact_root / "blobs").rglob("*")) \
        == blobs
    remote.set_alias("fraud", "champion", 1)
    remote.set_stage("fraud", 2, "Staging")
    remote.set_model_tag("fraud", "k", "v")
    remote.set_version_description("fraud", 2, "second")
    assert remote.resolve("models:/fraud@champion").version == 1
    assert remote.resolve("models:/fraud/Staging").version == 2
    assert [m.name for m in remote.search_models("fr*")] == ["fraud"]
    assert [v.version for v in remote.search_versions("fraud", stage="Staging")] == [2]
    path = remote.local_path(v1)
    assert path.is_relative_to(tmp_path / "cache")
    model = satchel.load_model(path)
    assert model.flavor.name == "sklearn"
    # Cached by digest: a second resolve of the same files needs no server.
    server.stop()
    assert remote.local_path(v2) == path
    server.start()
    entries = remote.audit("fraud")
    assert {e.actor for e in entries} == {"erin"}
    assert remote.verify_audit("fraud").ok
    with pytest.raises(RegistryNotFoundError, match="versions: 1, 2") as err:
        remote.get_version("fraud", 9)
    assert err.value.available == ["1", "2"]
    with pytest.raises(RegistryConflictError, match="already exists"):
        remote.create_model("fraud")
    with pytest.raises(RegistryInputError, match="not allowed"):
        remote.create_model("a/../b")


def test_load_model_from_a_server(remote: Any, server: RegistryServer, iris_model_dir: Path,
                                  monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    remote.register(iris_model_dir, "iris")
    remote.set_alias("iris", "champion", 1)
    monkeypatch.setenv("SATCHEL_REGISTRY_URI", server.url)
    monkeypatch.setenv("SATCHEL_REGISTRY_TOKEN", TOKENS["reader"])
    monkeypatch.setenv("SATCHEL_CACHE_DIR", str(tmp_path / "cache2"))
    model = satchel.load_model("models:/iris@champion")
    assert model.registry_version.version == 1
    assert model.path.is_relative_to(tmp_path / "cache2")


def test_roles_and_identity(server: RegistryServer, tmp_path: Path,
                            iris_model_dir: Path) -> None:
    editor = _remote(server, "editor", tmp_path / "c1")
    reader = _remote(server, "reader", tmp_path / "c2")
    admin = _remote(server, "admin", tmp_path / "c3")
    editor.register(iris_model_dir, "m")
    assert reader.get_model("m").latest_version == 1
    with pytest.raises(RegistryAuthError, match="rita \\(reader\\) may not set alias") as err:
        reader.set_alias("m", "champion", 1)
    assert not err.value.missing_identity
    with pytest.raises(RegistryAuthError, match="needs the admin role"):
        editor.delete_version("m", 1)
    admin.delete_version("m", 1)
    assert [e.actor for e in admin.audit("m")] == ["erin", "erin", "root"]
    status, body = _http(f"{server.url}/api/2.0/mlflow/registered-models/get?name=m")
    assert status == 401 and body["error_code"] == "UNAUTHENTICATED"
    status, body = _http(f"{server.url}/api/2.0/mlflow/registered-models/get?name=m",
                         token="wrong-token-wrong-token")
    assert status == 401 and "not known" in body["message"]
    status, body = _http(f"{server.url}/api/2.0/mlflow/registered-models/delete", "DELETE",
                         {"name": "m"}, token=TOKENS["editor"])
    assert status == 403 and body["error_code"] == "PERMISSION_DENIED"


def test_download_failing_verification_is_refused_and_not_cached(
    remote: Any, server: RegistryServer, tmp_path: Path, iris_model_dir: Path
) -> None:
    v = remote.register(iris_model_dir, "m")
    files = remote._store.tree(v.digest).files
    blob = server.artifact_root / "blobs" / files["model.pkl"][0][:2] / files["model.pkl"][0]
    blob.chmod(0o644)
    blob.write_bytes(b"tampered on the server")
    with pytest.raises(IntegrityError, match="model.pkl.*failed verification"):
        remote.local_path(v)
    cache = tmp_path / "cache"
    assert not (cache / "trees").exists() or not any((cache / "trees").iterdir())
    assert not any(p.is_file() for p in (cache / "blobs").rglob("*"))


def test_server_down_retries_then_clear_error(tmp_path: Path) -> None:
    import time

    from satchel.registry.client import HttpStore
    from tests.registry.conftest import free_port

    store = HttpStore(f"http://127.0.0.1:{free_port()}", retries=3, backoff=0.05,
                      cache_dir=tmp_path)
    start = time.monotonic()
    with pytest.raises(RegistryUnavailableError, match="did not answer after 4 attempts"):
        store.get_model("m")
    assert time.monotonic() - start >= 0.05 + 0.1 + 0.2  # it backed off between attempts


def test_two_editors_move_one_alias_at_once(server: RegistryServer, tmp_path: Path,
                                            iris_model_dir: Path) -> None:
    a = _remote(server, "editor", tmp_path / "a")
    b = _remote(server, "editor2", tmp_path / "b")
    for _ in range(4):
        a.register(iris_model_dir, "m")
    a.set_alias("m", "champion", 1)
    barrier = threading.Barrier(2)
    failures: list[BaseException] = []

    def move(reg: Any, versions: list[int]) -> None:
        try:
            barrier.wait()
            for n in versions:
                reg.set_alias("m", "champion", n)
        except BaseException as exc:  # noqa: BLE001
            failures.append(exc)

    # Each editor moves the alias between two versions of its own, so every move is a
    # change whatever the interleaving (a move to where the alias already points is not
    # one, and is not audited): both editors' moves must be in the trail.
    threads = [threading.Thread(target=move, args=(a, [2, 3] * 5)),
               threading.Thread(target=move, args=(b, [4, 1] * 5))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures
    moves = [e for e in a.audit("m") if e.action == "set_alias"][1:]
    assert {e.actor for e in moves} == {"erin", "ed"}
    assert len(moves) == 20
    state = 1
    for e in moves:
        assert e.before == {"champion": state}
        state = e.after["champion"]
    assert a.get_model("m").aliases == {"champion": state}
    assert a.verify_audit().ok


def test_restart_loses_nothing(server: RegistryServer, tmp_path: Path,
                               iris_model_dir: Path) -> None:
    reg = _remote(server, "editor", tmp_path / "c")
    reg.register(iris_model_dir, "m", description="keep me")
    reg.set_alias("m", "champion", 1)
    server.stop()
    server.start()
    again = _remote(server, "reader", tmp_path / "c2")
    v = again.resolve("models:/m@champion")
    assert v.description == "keep me" and v.version == 1
    assert satchel.load_model(again.local_path(v)).flavor.name == "sklearn"


@pytest.mark.parametrize("case", ["bad_json", "array_body", "unknown_method", "unknown_arg",
                                  "traversal", "bad_digest", "huge_tag", "slash_name",
                                  "sql_name", "bad_filter", "bad_page", "version_text",
                                  "upload_outside", "tree_put"])
def test_hostile_requests_get_4xx_never_500(server: RegistryServer, case: str) -> None:
    u, ed = server.url, TOKENS["editor"]
    api = f"{u}/api/2.0/mlflow"
    calls = {
        "bad_json": lambda: _http(f"{u}/api/satchel/v1/call/get_model", "POST", raw=b"{nope",
                                  token=ed),
        "array_body": lambda: _http(f"{u}/api/satchel/v1/call/get_model", "POST", [1],
                                    token=ed),
        "unknown_method": lambda: _http(f"{u}/api/satchel/v1/call/__class__", "POST", {},
                                        token=ed),
        "unknown_arg": lambda: _http(f"{u}/api/satchel/v1/call/get_model", "POST",
                                     {"name": "m", "actor": "root"}, token=ed),
        "traversal": lambda: _http(f"{u}/api/2.0/mlflow-artifacts/artifacts/uploads/..%2F..%2F"
                                   "etc/passwd", token=ed),
        "bad_digest": lambda: _http(f"{u}/api/satchel/v1/blobs/..%2F..%2Fx", token=ed),
        "huge_tag": lambda: _http(f"{api}/registered-models/create", "POST",
                                  {"name": "m", "tags": [{"key": "k", "value": "v" * 6000}]},
                                  token=ed),
        "slash_name": lambda: _http(f"{api}/registered-models/create", "POST",
                                    {"name": "a/b"}, token=ed),
        "sql_name": lambda: _http(f"{api}/registered-models/get?name=x'%20OR%201=1--",
                                  token=ed),
        "bad_filter": lambda: _http(f"{api}/model-versions/search?filter=drop%20table",
                                    token=ed),
        "bad_page": lambda: _http(f"{api}/registered-models/search?max_results=-5", token=ed),
        "version_text": lambda: _http(f"{api}/model-versions/get?name=m&version=abc",
                                      token=ed),
        "upload_outside": lambda: _http(f"{u}/api/2.0/mlflow-artifacts/artifacts/etc/x",
                                        "PUT", raw=b"x", token=ed),
        "tree_put": lambda: _http(f"{u}/api/2.0/mlflow-artifacts/artifacts/trees/x/y", "PUT",
                                  raw=b"x", token=ed),
    }
    status, body = calls[case]()
    assert 400 <= status < 500, (status, body)
    if isinstance(body, dict):
        assert "Traceback" not in json.dumps(body) and "vvvvvvvvvv" not in json.dumps(body)
