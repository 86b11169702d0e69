"""The governance path on the command line: evaluate against the champion, attach the
result, request, a second identity approves, the alias moves; errors are one line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from satchel.cli import main

POLICY = """protect: {aliases: [champion]}
approvers: [bob]
evaluation:
  dataset: holdout
  metrics: {accuracy: {min: 0.9}}
  no_significant_regression: true
signature_compatible: true
"""


def test_evaluate_register_request_approve(tmp_path: Path, iris: tuple[Any, Any],
                                           iris_model_dir: Path, iris_model_dir_2: Path,
                                           monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    from satchel.registry.api import close_all

    uri = f"sqlite:///{tmp_path / 'reg.db'}"
    monkeypatch.setenv("SATCHEL_REGISTRY_URI", uri)
    monkeypatch.setenv("SATCHEL_USER", "alice")
    X, y = iris
    data = tmp_path / "holdout.parquet"
    X.assign(species=y.to_numpy()).to_parquet(data)
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    try:
        assert main(["registry", "register", str(iris_model_dir_2), "--name", "iris",
                     "--alias", "champion"]) == 0
        assert main(["registry", "register", str(iris_model_dir), "--name", "iris"]) == 0
        assert main(["registry", "policy", "iris", "--set", str(policy)]) == 0
        capsys.readouterr()
        # a direct move of the protected alias is refused, in one line
        assert main(["registry", "alias", "iris", "champion", "2"]) == 1
        assert "protected by its policy" in capsys.readouterr().err
        assert main(["evaluate", "models:/iris/2", "--data", str(data), "--target", "species",
                     "--baseline", "models:/iris@champion", "--dataset-name", "holdout",
                     "--resamples", "100", "--register-results", "-q"]) == 0
        assert main(["registry", "request", "iris", "champion", "2"]) == 0
        out = capsys.readouterr().out
        assert "request 1: iris alias champion -> version 2" in out and "pending" in out
        assert "gate PASS metric accuracy" in out
        assert main(["registry", "approve", "1"]) == 1
        assert "another approver must approve it" in capsys.readouterr().err
        monkeypatch.setenv("SATCHEL_USER", "bob")
        assert main(["registry", "approve", "1", "--reason", "ok"]) == 0
        assert main(["registry", "show", "iris@champion", "--json"]) == 0
        assert '"version": 2' in capsys.readouterr().out
        assert main(["registry", "requests", "iris", "--state", "approved"]) == 0
        assert "approved by bob: ok" in capsys.readouterr().out
        assert main(["registry", "audit", "iris", "--verify"]) == 0
    finally:
        close_all()


def test_request_with_failing_gates_exits_3(tmp_path: Path, iris_model_dir: Path,
                                            iris_model_dir_2: Path,
                                            monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    from satchel.registry.api import close_all

    monkeypatch.setenv("SATCHEL_REGISTRY_URI", f"sqlite:///{tmp_path / 'reg.db'}")
    (tmp_path / "p.yaml").write_text(POLICY)
    try:
        main(["registry", "register", str(iris_model_dir), "--name", "iris", "--alias",
              "champion"])
        main(["registry", "register", str(iris_model_dir_2), "--name", "iris"])
        main(["registry", "policy", "iris", "--set", str(tmp_path / "p.yaml")])
        capsys.readouterr()
        assert main(["registry", "request", "iris", "champion", "2"]) == 3
        assert "gate FAIL evaluation: no evaluation result on dataset 'holdout'" in \
            capsys.readouterr().out
        (tmp_path / "bad.yaml").write_text("protect: {aliases: [champion]}\n"
                                           "evaluation: {metrics: {speed: {min: 1}}}\n")
        assert main(["registry", "policy", "iris", "--set", str(tmp_path / "bad.yaml")]) == 1
        assert "unknown metric 'speed'" in capsys.readouterr().err
        assert main(["evaluate", str(iris_model_dir), "--data", "x.csv", "--target", "y",
                     "--register-results"]) == 1
    finally:
        close_all()


def test_reject_and_admin_override_on_the_command_line(
        tmp_path: Path, iris_model_dir: Path, iris_model_dir_2: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from satchel.registry.api import close_all

    monkeypatch.setenv("SATCHEL_REGISTRY_URI", f"sqlite:///{tmp_path / 'reg.db'}")
    monkeypatch.setenv("SATCHEL_USER", "alice")
    (tmp_path / "p.yaml").write_text("protect: {aliases: [champion]}\napprovers: [bob]\n"
                                     "admins: [root]\nmodel_card: [owner]\n")
    try:
        main(["registry", "register", str(iris_model_dir), "--name", "iris", "--alias",
              "champion", "--metadata", "owner=risk"])
        main(["registry", "register", str(iris_model_dir_2), "--name", "iris",
              "--metadata", "owner=risk"])
        main(["registry", "register", str(iris_model_dir_2), "--name", "iris"])
        assert main(["registry", "policy", "iris", "--set", str(tmp_path / "p.yaml")]) == 0
        assert main(["registry", "request", "iris", "champion", "2"]) == 0
        capsys.readouterr()
        # a reason is required; the requester is no approver
        with pytest.raises(SystemExit):
            main(["registry", "reject", "1"])
        assert main(["registry", "reject", "1", "--reason", "mine"]) == 1
        assert "not an approver" in capsys.readouterr().err
        monkeypatch.setenv("SATCHEL_USER", "bob")
        assert main(["registry", "reject", "1", "--reason", "needs the Q3 holdout"]) == 0
        assert main(["registry", "approve", "1"]) == 1
        assert "is rejected" in capsys.readouterr().err
        assert main(["registry", "requests", "iris", "--state", "rejected"]) == 0
        assert "rejected by bob: needs the Q3 holdout" in capsys.readouterr().out
        # version 3 has no model card: its gates fail, and only an admin overrides them
        monkeypatch.setenv("SATCHEL_USER", "alice")
        assert main(["registry", "request", "iris", "champion", "3"]) == 3
        assert "gate FAIL model card" in capsys.readouterr().out
        monkeypatch.setenv("SATCHEL_USER", "bob")
        assert main(["registry", "approve", "2", "--override"]) == 1
        assert "only an admin" in capsys.readouterr().err
        monkeypatch.setenv("SATCHEL_USER", "root")
        assert main(["registry", "approve", "2", "--override", "--reason", "hotfix"]) == 0
        assert main(["registry", "show", "iris@champion", "--json"]) == 0
        assert '"version": 3' in capsys.readouterr().out
        assert main(["registry", "audit", "iris", "--verify"]) == 0
        assert "audit chain ok" in capsys.readouterr().out
        assert main(["registry", "audit", "iris"]) == 0
        assert "override_gates" in capsys.readouterr().out
    finally:
        close_all()
