"""models:/ URIs in Spark (resolved once on the driver) and in image builds (the image
records the version)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest


def _constant(path: Path, value: float) -> Path:
    from sklearn.dummy import DummyRegressor

    import satchel

    X = pd.DataFrame({"x": [0.0, 1.0, 2.0]})
    satchel.save_model(DummyRegressor(strategy="constant", constant=value).fit(X, [value] * 3),
                       path, input_example=X.head(2))
    return path


@pytest.fixture
def two_versions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    from satchel.registry import Registry

    db = f"sqlite:///{tmp_path / 'reg.db'}"
    monkeypatch.setenv("SATCHEL_REGISTRY_URI", db)
    reg = Registry(db, actor="ops", artifact_root=tmp_path / "art")
    reg.register(_constant(tmp_path / "m1", 1.0), "fraud")
    reg.register(_constant(tmp_path / "m2", 2.0), "fraud")
    reg.set_alias("fraud", "champion", 1)
    return reg


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    pytest.importorskip("pyspark")
    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"
    from pyspark.sql import SparkSession

    session = (SparkSession.builder.master("local[2]").appName("satchel-registry-tests")
               .config("spark.driver.host", "127.0.0.1")
               .config("spark.ui.enabled", "false").getOrCreate())
    yield session
    session.stop()


@pytest.mark.spark
def test_spark_udf_resolves_the_alias_once_on_the_driver(spark: Any, two_versions: Any) -> None:
    from satchel.serving.offline.spark import spark_udf

    udf = spark_udf(spark, "models:/fraud@champion")
    # The alias moves after the UDF was made: the job still runs the resolved version.
    two_versions.set_alias("fraud", "champion", 2)
    df = spark.createDataFrame(pd.DataFrame({"x": [float(i) for i in range(20)]}))
    values = {row[0] for row in df.select(udf("x")).collect()}
    assert values == {1.0}
    again = {row[0] for row in df.select(spark_udf(spark, "models:/fraud@champion")("x"))
             .collect()}
    assert again == {2.0}


def test_image_context_records_the_registry_version(two_versions: Any, tmp_path: Path) -> None:
    from satchel.serving.images.docker import generate_dockerfile

    dockerfile = generate_dockerfile("models:/fraud@champion", tmp_path / "ctx",
                                     platform="linux/amd64").read_text()
    v1 = two_versions.get_version("fraud", 1)
    assert 'satchel.registry.model="fraud"' in dockerfile
    assert 'satchel.registry.version="1"' in dockerfile
    assert f'satchel.registry.digest="{v1.digest}"' in dockerfile
    # The last stage carries the labels: they follow the final FROM.
    assert dockerfile.rindex("satchel.registry.version") > dockerfile.rindex("\nFROM ")
    import satchel

    assert satchel.load_model(tmp_path / "ctx" / "model").predict(
        pd.DataFrame({"x": [0.0]})).tolist() == [1.0]


@pytest.mark.docker
def test_build_docker_from_a_models_uri_records_and_serves_that_version(
    two_versions: Any, tmp_path: Path
) -> None:
    """``satchel build-docker -m models:/fraud@champion`` on a real engine: the image's
    labels name the version the alias resolved to, and the container serves it."""
    import json
    import subprocess
    import time
    import urllib.request
    import uuid

    from tests.registry.conftest import free_port

    if not os.environ.get("DOCKER_HOST"):
        pytest.fail("DOCKER_HOST is not set: start an engine with eval \"$(.ci/docker-up.sh)\"")
    from satchel.serving.images import docker as sd

    base = os.environ.get("SATCHEL_TEST_BASE_IMAGE", "local/python:3.11-bookworm-slim")
    client = sd.docker_client()
    tag = f"satchel-test/registry:{uuid.uuid4().hex[:8]}"
    container = None
    try:
        done = subprocess.run([sys.executable, "-m", "satchel", "build-docker", "-m",
                               "models:/fraud@champion", "-t", tag, "--base-image", base],
                              capture_output=True, text=True, timeout=1200)
        assert done.returncode == 0, done.stderr[-2000:]
        labels = client.inspect_image(tag)["Config"]["Labels"]
        v1 = two_versions.get_version("fraud", 1)
        assert (labels["satchel.registry.model"], labels["satchel.registry.version"],
                labels["satchel.registry.digest"]) == ("fraud", "1", v1.digest)
        # The alias moves after the build: the image still holds version 1.
        two_versions.set_alias("fraud", "champion", 2)
        port = free_port()
        container = client.create_container(
            tag, environment={"SATCHEL_PORT": str(port), "SATCHEL_HOST": "127.0.0.1"},
            host_config=client.create_host_config(network_mode="host"))["Id"]
        client.start(container)
        body = json.dumps({"dataframe_split": {"columns": ["x"], "data": [[0.5]]}}).encode()
        deadline = time.monotonic() + 120
        while True:
            try:
                req = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=body,
                                             headers={"Content-Type": "application/json"})
                with urllib.request.urlopen(req, timeout=5) as resp:
                    assert json.loads(resp.read())["predictions"] == [1.0]
                break
            except (OSError, urllib.error.URLError):
                assert time.monotonic() < deadline, client.logs(container)[-2000:]
                time.sleep(0.5)
    finally:
        if container is not None:
            client.remove_container(container, force=True)
        try:
            client.remove_image(tag, force=True)
        except Exception:  # noqa: BLE001 - the build may have failed before tagging
            pass
