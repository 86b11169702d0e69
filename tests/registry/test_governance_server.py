"""Governance through a real registry server: the CLI with --registry-uri http://...,
identities and roles from tokens, the same refusals as locally (as 4xx replies)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from satchel.cli import main
from satchel.registry import Registry

from .conftest import TOKENS

POLICY = """protect: {aliases: [champion]}
approvers: [ed]
evaluation: {dataset: holdout, metrics: {accuracy: {min: 0.9}}, no_significant_regression: true}
"""


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_request_and_approve_over_http(server: Any, tmp_path: Path, iris: tuple[Any, Any],
                                       iris_model_dir: Path, iris_model_dir_2: Path,
                                       monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    local = Registry(server.db_url, actor="erin", artifact_root=server.artifact_root)
    local.register(iris_model_dir_2, "iris")
    local.register(iris_model_dir, "iris")
    local.set_alias("iris", "champion", 1)
    X, y = iris
    data = tmp_path / "holdout.csv"
    X.assign(species=y.to_numpy()).to_csv(data, index=False)
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    url = ["--registry-uri", server.url]
    monkeypatch.setenv("SATCHEL_REGISTRY_URI", server.url)
    monkeypatch.setenv("SATCHEL_REGISTRY_TOKEN", TOKENS["reader"])
    assert main(["registry", "policy", "iris", "--set", str(policy), *url]) == 1
    assert "needs the editor role" in capsys.readouterr().err
    monkeypatch.setenv("SATCHEL_REGISTRY_TOKEN", TOKENS["editor"])  # erin
    assert main(["registry", "policy", "iris", "--set", str(policy), *url]) == 0
    assert main(["registry", "alias", "iris", "champion", "2", *url]) == 1
    assert "protected by its policy" in capsys.readouterr().err
    assert main(["evaluate", "models:/iris/2", "--data", str(data), "--target", "species",
                 "--baseline", "models:/iris@champion", "--dataset-name", "holdout",
                 "--resamples", "100", "--register-results", "-q", *url]) == 0
    assert main(["registry", "request", "iris", "champion", "2", *url]) == 0
    assert "pending" in capsys.readouterr().out
    assert main(["registry", "approve", "1", *url]) == 1
    assert "another approver must approve it" in capsys.readouterr().err
    monkeypatch.setenv("SATCHEL_REGISTRY_TOKEN", TOKENS["editor2"])  # ed
    assert main(["registry", "approve", "1", "--reason", "ok", *url]) == 0
    assert "approved by ed: ok" in capsys.readouterr().out
    assert local.get_version_by_alias("iris", "champion").version == 2
    actions = [(e.action, e.actor) for e in local.audit("iris")][-3:]
    assert actions == [("request_promotion", "erin"), ("approve_request", "ed"),
                       ("set_alias", "ed")]
    assert main(["registry", "requests", "iris", "--json", *url]) == 0
    assert '"state": "approved"' in capsys.readouterr().out
    # a malformed policy is a 4xx with the parser's message, nothing stored
    (tmp_path / "bad.yaml").write_text("protect: {aliases: [champion]}\nevaluation: "
                                       "{metrics: {speed: {min: 1}}}\n")
    assert main(["registry", "policy", "iris", "--set", str(tmp_path / "bad.yaml"), *url]) == 1
    assert "unknown metric 'speed'" in capsys.readouterr().err
