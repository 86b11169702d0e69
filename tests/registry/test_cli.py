"""``satchel registry ...`` and models:/ URIs in the other commands, as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.fixture
def cli(tmp_path: Path):  # type: ignore[no-untyped-def]
    env = {**os.environ, "SATCHEL_REGISTRY_URI": f"sqlite:///{tmp_path / 'reg.db'}",
           "SATCHEL_USER": "carol"}

    def run(*args: str, code: int = 0) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([sys.executable, "-m", "satchel", *args], capture_output=True,
                              text=True, env=env, timeout=300)
        assert done.returncode == code, (args, done.stdout, done.stderr)
        return done

    return run


def test_registry_commands_end_to_end(cli, iris_model_dir: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = cli("registry", "register", str(iris_model_dir), "--name", "fraud", "--tag",
              "team=risk", "--description", "first", "--run-id", "r1", "--metadata",
              "owner=carol", "--alias", "champion")
    assert "registered fraud version 1" in out.stdout and "alias champion -> 1" in out.stdout
    cli("registry", "register", str(iris_model_dir), "--name", "fraud")
    shown = json.loads(cli("registry", "show", "fraud@champion", "--json").stdout)
    assert shown["version"] == 1 and shown["created_by"] == "carol"
    assert shown["tags"] == {"team": "risk"} and shown["metadata"] == {"owner": "carol"}
    assert "fraud\tlatest=2\tversions=2\tchampion->1" in cli("registry", "list").stdout
    cli("registry", "alias", "fraud", "champion", "2")
    cli("registry", "alias", "fraud", "challenger", "1")
    assert "deleted alias challenger of fraud" in cli(
        "registry", "alias", "fraud", "challenger", "--delete").stdout
    err = cli("registry", "show", "fraud@challenger", code=1).stderr
    assert "has no alias 'challenger'; aliases: champion" in err
    cli("registry", "stage", "fraud", "2", "production")
    cli("registry", "tag", "fraud/2", "q=ok", "x=y")
    cli("registry", "tag", "fraud/2", "--delete", "x")
    cli("registry", "tag", "fraud", "k=v")
    cli("registry", "describe", "fraud/2", "second")
    v2 = json.loads(cli("registry", "show", "models:/fraud/Production", "--json").stdout)
    assert v2["aliases"] == ["champion"] and v2["tags"] == {"q": "ok"}
    assert v2["description"] == "second"
    listed = json.loads(cli("registry", "list", "--stage", "Production", "--json").stdout)
    assert [(v["name"], v["version"]) for v in listed] == [("fraud", 2)]
    err = cli("registry", "delete", "fraud/2", code=1).stderr
    assert err.startswith("satchel: error:") and "alias(es) champion" in err
    cli("registry", "delete", "fraud/1")
    err = cli("registry", "show", "fraud/1", code=1).stderr
    assert "has no version 1; versions: 2" in err and "Traceback" not in err
    audit = json.loads(cli("registry", "audit", "fraud", "--json").stdout)
    assert [e["action"] for e in audit][-3:] == ["set_model_tag", "set_version_description",
                                                 "delete_version"]
    assert {e["actor"] for e in audit} == {"carol"}
    assert "audit chain ok" in cli("registry", "audit", "fraud", "--verify").stdout
    # models:/ URIs everywhere a model is taken.
    info = json.loads(cli("info", "models:/fraud@champion", "--json").stdout)
    assert info["registry"]["version"] == 2
    assert "registry   fraud version 2" in cli("info", "models:/fraud/latest").stdout
    assert "predicted 5 rows" in cli("validate", "models:/fraud@champion").stdout
    rows = tmp_path / "rows.json"
    rows.write_text(json.dumps({"dataframe_split": {
        "columns": ["sepal_length", "sepal_width", "petal_length", "petal_width"],
        "data": [[5.1, 3.5, 1.4, 0.2]]}}))
    pred = cli("predict", "-m", "models:/fraud/2", "-i", str(rows), "-t", "json").stdout
    assert json.loads(pred)["predictions"] == [0]


def test_models_uris_in_batch_convert_and_generate_dockerfile(  # type: ignore[no-untyped-def]
    cli, iris_model_dir: Path, iris_model_dir_2: Path, tmp_path: Path
) -> None:
    """``satchel batch``, ``convert`` and ``generate-dockerfile`` take models:/ URIs
    (alias, number, stage) and use the version the URI names, not another one."""
    import pandas as pd

    import satchel

    cli("registry", "register", str(iris_model_dir), "--name", "fraud")
    cli("registry", "register", str(iris_model_dir_2), "--name", "fraud", "--alias",
        "champion")
    cli("registry", "stage", "fraud", "1", "Production")
    from sklearn.datasets import load_iris

    every = load_iris(as_frame=True).frame.iloc[:, :4]
    every.columns = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    one, two = (satchel.load_model(d) for d in (iris_model_dir, iris_model_dir_2))
    differ = one.predict(every) != two.predict(every)
    assert differ.any()  # rows the two versions answer differently tell them apart
    rows = every[differ].head(5).reset_index(drop=True)
    rows.to_csv(tmp_path / "rows.csv", index=False)
    expected = {1: one.predict(rows), 2: two.predict(rows)}
    for uri, version in (("models:/fraud@champion", 2), ("models:/fraud/Production", 1),
                         ("models:/fraud/1", 1), ("models:/fraud/latest", 2)):
        out = tmp_path / f"out-{version}-{uri.rsplit('/', 1)[1]}.csv"
        cli("batch", "-m", uri, "-i", str(tmp_path / "rows.csv"), "-o", str(out), "-q")
        assert pd.read_csv(out).iloc[:, -1].tolist() == list(expected[version]), uri
    cli("convert", "models:/fraud@champion", "--to", "onnx", "-o", str(tmp_path / "onnx"))
    onnx = satchel.load_model(tmp_path / "onnx")
    assert onnx.flavor.name == "onnx"
    assert list(pd.DataFrame(onnx.predict(rows)).iloc[:, 0]) == list(expected[2])
    cli("generate-dockerfile", "-m", "models:/fraud/Production", "-o", str(tmp_path / "ctx"))
    dockerfile = (tmp_path / "ctx" / "Dockerfile").read_text()
    assert 'satchel.registry.model="fraud"' in dockerfile
    assert 'satchel.registry.version="1"' in dockerfile
    assert list(satchel.load_model(tmp_path / "ctx" / "model").predict(rows)) == \
        list(expected[1])
    err = cli("batch", "-m", "models:/fraud@nobody", "-i", str(tmp_path / "rows.csv"),
              "-o", str(tmp_path / "never.csv"), code=1).stderr
    assert "has no alias 'nobody'; aliases: champion" in err and "Traceback" not in err
    assert not (tmp_path / "never.csv").exists()


def test_registry_cli_bad_input(cli, iris_model_dir: Path) -> None:  # type: ignore[no-untyped-def]
    err = cli("registry", "register", str(iris_model_dir), "--name", "../x", code=1).stderr
    assert "name '../x' is not allowed" in err
    err = cli("registry", "register", str(iris_model_dir), "--name", "m", "--tag", "novalue",
              code=1).stderr
    assert "is not KEY=VALUE" in err
    err = cli("registry", "show", "nothing", code=1).stderr
    assert "no registered model named 'nothing'; there are no registered models" in err
    err = cli("info", "models:/nothing@champion", code=1).stderr
    assert "no registered model named 'nothing'" in err
    err = cli("registry", "alias", "m", "champion", code=1).stderr
    assert "VERSION" in err
    err = cli("registry", "list", "--registry-uri", "mysql://x/y", code=1).stderr
    assert "SQLite or PostgreSQL" in err
