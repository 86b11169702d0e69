"""Serving images: rendering and build contexts (unit), and real images on a real engine.

The ``docker`` tests need ``DOCKER_HOST`` (``eval "$(.ci/docker-up.sh)"``) and the local base
image named by ``SATCHEL_TEST_BASE_IMAGE``; without them they fail, never skip.
"""

from __future__ import annotations

import ast
import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import satchel
from satchel._version import __version__
from satchel.errors import (
    DockerUnavailableError,
    ImageBuildError,
    IntegrityError,
    MissingWheelError,
)
from satchel.manifest import Manifest
from satchel.serving.images import docker as sd
from satchel.serving.images import wheels

REPO = Path(__file__).resolve().parents[3]
BASE_IMAGE = os.environ.get("SATCHEL_TEST_BASE_IMAGE", "local/python:3.11-bookworm-slim")
HADOLINT = Path(sys.executable).parent / "hadolint"


def _values(**override: str) -> dict[str, str]:
    values = {"BASE_IMAGE": "python:3.11-slim", "PYTHON_VERSION": "3.11",
              "PLATFORM": "linux/amd64", "SATCHEL_VERSION": "0.1.0",
              "SATCHEL_WHEEL": "satchel-0.1.0-py3-none-any.whl", "MODEL_UUID": "abc123",
              "FLAVOR": "sklearn", "SIGNATURE_DIGEST": "sha256:00",
              "NO_CODE": "0", "ALLOW_MLFLOW": "0", "TRUSTED_TYPES": ","}
    values.update(override)
    return values


def _hadolint(dockerfile: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(HADOLINT), "--no-color", str(dockerfile)],
                          capture_output=True, text=True, check=False)


# --- rendering ----------------------------------------------------------------------------

def test_template_is_packaged_through_the_symlink() -> None:
    link = REPO / "serving" / "images" / "Dockerfile.template"
    assert link.is_symlink() and os.readlink(link) == "../../Dockerfile.template"
    assert sd.load_template() == (REPO / "Dockerfile.template").read_text("utf-8")


def test_every_placeholder_is_filled() -> None:
    names = {m.group(1) for m in sd.PLACEHOLDER.finditer(sd.load_template())}
    assert names == set(_values())
    out = sd.render_dockerfile(_values())
    assert "{{" not in out and "}}" not in out
    assert "FROM python:3.11-slim AS deps" in out
    assert 'satchel.model.uuid="abc123"' in out


@pytest.mark.parametrize("name", sorted(_values()))
def test_an_unfilled_placeholder_is_named(name: str) -> None:
    values = _values()
    del values[name]
    with pytest.raises(ImageBuildError, match=r"\{\{" + name + r"\}\}"):
        sd.render_dockerfile(values)


@pytest.mark.parametrize("bad", ["python:3.11\nRUN rm -rf /", 'a"b', "x$(id)", "a\\b", ""])
def test_a_value_that_could_escape_its_line_is_refused(bad: str) -> None:
    with pytest.raises(ImageBuildError, match=r"\{\{BASE_IMAGE\}\}"):
        sd.render_dockerfile(_values(BASE_IMAGE=bad))


def test_a_malformed_placeholder_is_an_error_with_its_line() -> None:
    with pytest.raises(ImageBuildError, match="line 2: malformed placeholder"):
        sd.render_dockerfile({"A": "x"}, template="FROM {{A}}\nLABEL x={{ b-c }}\n")


def test_platforms() -> None:
    assert wheels.resolve_platform("linux/amd64") == ("linux/amd64", "manylinux_2_28_x86_64")
    assert wheels.resolve_platform("linux/arm64/v8") == ("linux/arm64", "manylinux_2_28_aarch64")
    with pytest.raises(ImageBuildError, match="windows/amd64"):
        wheels.resolve_platform("windows/amd64")


def test_older_glibc_tags_are_asked_for_too() -> None:
    tags = wheels.compatible_tags("manylinux_2_28_x86_64")
    assert tags[0] == "manylinux_2_28_x86_64" and "manylinux_2_17_x86_64" in tags
    assert {"manylinux2014_x86_64", "manylinux1_x86_64"} <= set(tags)
    assert not any(t.startswith("manylinux_2_29") for t in tags)
    arm = wheels.compatible_tags("manylinux_2_28_aarch64")
    assert arm[-1] == "manylinux2014_aarch64" and "manylinux_2_16_aarch64" not in arm
    assert wheels.compatible_tags("linux_x86_64") == ["linux_x86_64"]


# --- build contexts (pip downloads wheels from the index; its cache makes reruns fast) ------

@pytest.fixture(scope="module")
def context(tmp_path_factory: pytest.TempPathFactory, iris_model_dir: Path) -> Path:
    out = tmp_path_factory.mktemp("ctx") / "context"
    sd.generate_dockerfile(iris_model_dir, out, platform="linux/amd64")
    return out


def test_context_is_self_contained(context: Path, iris_model_dir: Path) -> None:
    names = sorted(p.name for p in context.iterdir())
    assert names == [".dockerignore", "Dockerfile", "model", "requirements.txt", "satchel",
                     "shrink_libs.py", "wheels"]
    # the build stage's shrinker is the packaged module, byte for byte
    from satchel.serving.images import shrink_libs

    assert (context / "shrink_libs.py").read_bytes() == Path(shrink_libs.__file__).read_bytes()
    pins = context.joinpath("requirements.txt").read_text().split()
    wheels = sorted(p.name for p in (context / "wheels").iterdir())
    # Every pin has its wheel, every wheel is pinned, and all are for CPython 3.11 x86_64.
    assert len(pins) == len(wheels)
    for whl in wheels:
        name, version = whl.split("-")[:2]
        assert f"{name.replace('_', '-').lower()}=={version}" in pins
        assert whl.endswith("-none-any.whl") or "cp311" in whl and "x86_64" in whl, whl
    pinned = {p.split("==")[0] for p in pins}
    # orjson (the serve extra's JSON reader) publishes manylinux_2_17 wheels only: found
    # because every glibc tag up to 2.28 is asked for
    assert {"scikit-learn", "starlette", "uvicorn", "pyarrow", "numpy", "pandas",
            "orjson"} <= pinned
    assert "satchel" not in pinned
    # satchel's own wheel: the running version, with the code this test runs.
    (own,) = (context / "satchel").iterdir()
    assert own.name == f"satchel-{__version__}-py3-none-any.whl"
    with zipfile.ZipFile(own) as zf:
        shipped = zf.read("satchel/serving/images/docker.py")
    assert shipped == Path(sd.__file__).read_bytes()
    # The model is copied as saved, world-readable for the image's non-root user.
    for p in iris_model_dir.rglob("*"):
        if p.is_file():
            copy = context / "model" / p.relative_to(iris_model_dir)
            assert copy.read_bytes() == p.read_bytes()
            assert copy.stat().st_mode & 0o444 == 0o444
    assert "__pycache__" in (context / ".dockerignore").read_text()


def test_dockerfile_labels_and_default_base(context: Path, iris_model_dir: Path) -> None:
    text = (context / "Dockerfile").read_text()
    manifest = Manifest.read(iris_model_dir)
    sig = json.dumps(manifest.signature.to_dict() if manifest.signature else None,
                     sort_keys=True, separators=(",", ":"))
    assert f'satchel.model.uuid="{manifest.model_uuid}"' in text
    assert f'satchel.version="{__version__}"' in text
    assert f'satchel.signature.digest="sha256:{hashlib.sha256(sig.encode()).hexdigest()}"' \
        in text
    assert "FROM python:3.11-slim AS deps" in text and "\nFROM python:3.11-slim\n" in text
    assert "--no-index" in text and "USER 10001:10001" in text


def test_hadolint_passes_on_the_rendered_dockerfile(context: Path) -> None:
    r = _hadolint(context / "Dockerfile")
    assert r.returncode == 0, r.stdout + r.stderr
    # And hadolint does judge this file: a bad line added to it is reported.
    bad = context.parent / "Dockerfile.bad"
    bad.write_text((context / "Dockerfile").read_text() + "RUN apt-get install curl\n")
    assert _hadolint(bad).returncode != 0


def _platform_wheel(directory: Path, name: str, tag: str) -> Path:
    """A minimal valid wheel of ``name`` 1.0 that exists for one platform tag only."""
    info = f"{name}-1.0.dist-info"
    files = {f"{name}.py": "X = 1\n",
             f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n",
             f"{info}/WHEEL": f"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: false\n"
                              f"Tag: py3-none-{tag}\n"}
    path = directory / f"{name}-1.0-py3-none-{tag}.whl"
    record = []
    with zipfile.ZipFile(path, "w") as zf:
        for arc, text in files.items():
            zf.writestr(arc, text)
            digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest())
            record.append(f"{arc},sha256={digest.rstrip(b'=').decode()},{len(text)}")
        zf.writestr(f"{info}/RECORD", "\n".join([*record, f"{info}/RECORD,,"]) + "\n")
    return path


def test_a_missing_wheel_for_the_platform_names_the_package(
        tmp_path: Path, iris: Any, iris_logreg: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    links = tmp_path / "links"
    links.mkdir()
    _platform_wheel(links, "satchel_test_onlyx86", "manylinux_2_28_x86_64")
    monkeypatch.setenv("PIP_FIND_LINKS", str(links))
    model = tmp_path / "m"
    satchel.save_model(iris_logreg, model, input_example=iris[0].head(2),
                       extra_pip_requirements=["satchel-test-onlyx86==1.0"])
    with pytest.raises(MissingWheelError, match="satchel-test-onlyx86.*linux/arm64") as err:
        sd.generate_dockerfile(model, tmp_path / "arm", platform="linux/arm64")
    assert err.value.package == "satchel-test-onlyx86"
    assert not (tmp_path / "arm").exists()  # nothing half-written
    # The same requirement resolves where its wheel exists: the platform made the difference.
    sd.generate_dockerfile(model, tmp_path / "amd", platform="linux/amd64")
    assert "satchel-test-onlyx86==1.0" in (tmp_path / "amd/requirements.txt").read_text()


def test_the_models_satchel_pin_must_match_the_builder(tmp_path: Path, iris_logreg: Any) -> None:
    model = tmp_path / "m"
    satchel.save_model(iris_logreg, model, pip_requirements=["satchel==0.0.1", "scikit-learn"])
    with pytest.raises(ImageBuildError, match=r"satchel==0\.0\.1.*" + __version__):
        sd.generate_dockerfile(model, tmp_path / "ctx")


def test_a_tampered_model_is_refused_before_any_download(tmp_path: Path,
                                                         iris_model_dir: Path) -> None:
    shutil.copytree(iris_model_dir, tmp_path / "m")
    (tmp_path / "m" / "requirements.txt").write_text("evil\n")
    with pytest.raises(IntegrityError, match="requirements.txt"):
        sd.generate_dockerfile(tmp_path / "m", tmp_path / "ctx")


def test_an_existing_output_directory_is_kept(tmp_path: Path, iris_model_dir: Path) -> None:
    (tmp_path / "ctx").mkdir()
    (tmp_path / "ctx" / "mine.txt").write_text("keep")
    with pytest.raises(FileExistsError):
        sd.generate_dockerfile(iris_model_dir, tmp_path / "ctx")
    assert (tmp_path / "ctx" / "mine.txt").read_text() == "keep"


def test_repacked_installed_distribution_is_a_valid_wheel(tmp_path: Path) -> None:
    from importlib import metadata

    dist = metadata.distribution("cloudpickle")  # a regular (non-editable) install
    wheel = wheels.repack_installed(dist, tmp_path)
    target = tmp_path / "target"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "--no-index", "--target", str(target), str(wheel)], check=True)
    for f in dist.files or ():
        if f.suffix == ".py" and f.parts[0] == "cloudpickle":
            assert (target / f).read_bytes() == Path(str(dist.locate_file(f))).read_bytes()


def test_cli_generate_dockerfile(tmp_path: Path, iris_model_dir: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "satchel.cli", "generate-dockerfile", "-m",
                        str(iris_model_dir), "-o", str(tmp_path / "ctx"), "--base-image",
                        "registry.example/team/python:3.11", "--no-parquet"],
                       capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str(tmp_path / "ctx" / "Dockerfile")
    text = (tmp_path / "ctx" / "Dockerfile").read_text()
    assert "FROM registry.example/team/python:3.11 AS deps" in text
    pins = (tmp_path / "ctx" / "requirements.txt").read_text()
    assert "starlette==" in pins and "pyarrow" not in pins


def test_no_engine_is_one_clear_error(tmp_path: Path, iris_model_dir: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    sock = f"unix://{tmp_path}/nothing.sock"
    monkeypatch.setenv("DOCKER_HOST", sock)
    with pytest.raises(DockerUnavailableError, match=f"DOCKER_HOST={sock}.*start dockerd"):
        sd.build_image(iris_model_dir, "never:1")
    r = subprocess.run([sys.executable, "-m", "satchel.cli", "build-docker", "-m",
                        str(iris_model_dir), "-t", "never:1"], capture_output=True, text=True,
                       check=False, env={**os.environ, "DOCKER_HOST": sock})
    assert r.returncode == 1
    assert r.stderr.count("\n") == 1 and "DOCKER_HOST=" in r.stderr, r.stderr


# --- real images on a real engine ---------------------------------------------------------

@pytest.fixture(scope="module")
def engine() -> Iterator[Any]:
    """The engine at DOCKER_HOST with the local base image; fails (never skips) without."""
    if not os.environ.get("DOCKER_HOST"):
        pytest.fail("DOCKER_HOST is not set: start an engine with eval \"$(.ci/docker-up.sh)\"")
    try:
        client = sd.docker_client()
    except DockerUnavailableError as exc:
        pytest.fail(str(exc))
    try:
        client.inspect_image(BASE_IMAGE)
    except Exception:  # noqa: BLE001 - docker.errors.ImageNotFound
        pytest.fail(f"base image {BASE_IMAGE} is missing: .ci/docker-up.sh builds it")
    tags: list[str] = []
    client.satchel_test_tags = tags
    yield client
    for tag in tags:
        try:
            client.remove_image(tag, force=True)
        except Exception:  # noqa: BLE001 - already gone
            pass
    # The cached build stages of these builds (see the LABEL in Dockerfile.template).
    client.prune_images(filters={"dangling": True, "label": "satchel.stage=build"})


def _build(engine: Any, model: Path, name: str) -> sd.BuiltImage:
    tag = f"satchel-test/{name}:{uuid.uuid4().hex[:8]}"
    engine.satchel_test_tags.append(tag)
    return sd.build_image(model, tag, base_image=BASE_IMAGE, progress=lambda _line: None)


class Container:
    """A detached container on the host network, removed on exit."""

    def __init__(self, engine: Any, image: str, port: int, command: list[str] | None = None,
                 environment: dict[str, str] | None = None) -> None:
        import docker

        self.engine, self.port = engine, port
        self.id = engine.create_container(
            image, command=command,
            environment={"SATCHEL_PORT": str(port), "SATCHEL_HOST": "127.0.0.1",
                         **(environment or {})},
            host_config=engine.create_host_config(network_mode="host"),
            # Only the timing is overridden: the probe command is the image's own.
            healthcheck=docker.types.Healthcheck(interval=500_000_000,
                                                 start_period=500_000_000))["Id"]

    def __enter__(self) -> Container:
        self.engine.start(self.id)
        return self

    def __exit__(self, *exc: object) -> None:
        self.engine.remove_container(self.id, force=True)

    def logs(self) -> str:
        return self.engine.logs(self.id).decode(errors="replace")[-2000:]

    def wait_ready(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.engine.inspect_container(self.id)["State"]["Running"]:
                pytest.fail(f"container exited:\n{self.logs()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/ping", timeout=2):
                    return
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.2)
        pytest.fail(f"no /ping answer within {timeout} s:\n{self.logs()}")

    def post(self, body: dict[str, Any]) -> Any:
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}/invocations",
                                     data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read())

    def exec(self, *cmd: str, user: str = "") -> tuple[int, str]:
        ex = self.engine.exec_create(self.id, list(cmd), user=user)
        out = self.engine.exec_start(ex["Id"]).decode(errors="replace")
        return int(self.engine.exec_inspect(ex["Id"])["ExitCode"]), out

    def health(self, timeout: float = 30) -> str:
        deadline, status = time.monotonic() + timeout, "none"
        while time.monotonic() < deadline:
            status = self.engine.inspect_container(self.id)["State"]["Health"]["Status"]
            if status == "healthy":
                break
            time.sleep(0.3)
        return str(status)


@pytest.fixture(scope="module")
def sklearn_image(engine: Any, iris_model_dir: Path) -> sd.BuiltImage:
    return _build(engine, iris_model_dir, "iris")


@pytest.mark.docker
def test_sklearn_image_serves_what_predict_returns(engine: Any, sklearn_image: sd.BuiltImage,
                                                   iris_model_dir: Path, iris: Any,
                                                   port: int) -> None:
    X = iris[0]
    expected = satchel.load_model(iris_model_dir).predict(X)
    with Container(engine, sklearn_image.id, port) as c:
        c.wait_ready()
        got = c.post({"dataframe_split": {"columns": list(X.columns),
                                          "data": X.values.tolist()}})
        assert got["predictions"] == expected.tolist()
        assert c.health() == "healthy"
        code, uid = c.exec("id", "-u")
        assert code == 0 and uid.strip() == "10001"


# The default scikit-learn image (pyarrow kept for Parquet) must stay under this; it was
# 600 MB before pyarrow's unused parts and the symbol tables were dropped, 494 MB after
# (on a 169 MB minbase); 450 MB on the slim base (125 MB, as python:3.11-slim) tests use.
SKLEARN_IMAGE_LIMIT = 500_000_000


@pytest.mark.docker
def test_sklearn_image_keeps_parquet_under_500_mb(engine: Any, sklearn_image: sd.BuiltImage,
                                                  iris: Any, iris_model_dir: Path,
                                                  port: int) -> None:
    """pyarrow is trimmed in the image (Flight, S3, headers...): the image stays under
    500 MB, and Parquet bodies still score and `satchel batch` still reads and writes
    Parquet files in it."""
    import io

    size = engine.inspect_image(sklearn_image.id)["Size"]  # `docker image inspect` .Size
    print(f"sklearn image: {size / 1e6:.1f} MB")
    assert 0 < size < SKLEARN_IMAGE_LIMIT, f"the sklearn image is {size / 1e6:.1f} MB"

    X = iris[0].head(5)
    buf = io.BytesIO()
    X.to_parquet(buf, index=False)
    expected = satchel.load_model(iris_model_dir).predict(X).tolist()
    with Container(engine, sklearn_image.id, port) as c:
        c.wait_ready()
        req = urllib.request.Request(f"http://127.0.0.1:{port}/invocations",
                                     data=buf.getvalue(),
                                     headers={"Content-Type": "application/vnd.apache.parquet"})
        with urllib.request.urlopen(req, timeout=30) as r:
            assert json.loads(r.read())["predictions"] == expected
        code, out = c.exec("sh", "-c", "ls /opt/venv/lib/python3.11/site-packages/pyarrow")
        assert code == 0 and "libarrow_flight" not in out and "libparquet" in out
        # writing Parquet works too, as the image's user
        code, out = c.exec("python", "-c", "import io, pandas as pd; b = io.BytesIO(); "
                           "pd.DataFrame({'a': [1.5], 's': ['x']}).to_parquet(b); "
                           "b.seek(0); print(pd.read_parquet(b).to_dict('list'))")
        assert code == 0 and out.strip() == "{'a': [1.5], 's': ['x']}", out
        # offline scoring of a Parquet file, as the image's user, Parquet out
        code, out = c.exec("sh", "-c", "cd /tmp && python -c \"import pandas as pd; "
                           f"pd.DataFrame({X.to_dict('list')!r}).to_parquet('in.parquet')\" "
                           "&& satchel batch -q -m /opt/model -i in.parquet -o out.parquet "
                           "&& python -c \"import pyarrow.parquet as pq; "
                           "print(pq.read_table('out.parquet').to_pydict())\"")
        assert code == 0, out
        scored = ast.literal_eval(out.strip().splitlines()[-1])  # a dict printed by Python
        assert list(scored.values())[-1] == expected, scored


@pytest.mark.docker
def test_sklearn_image_libraries_are_shrunk(engine: Any, sklearn_image: sd.BuiltImage,
                                            port: int) -> None:
    """The wheels' symbol tables are dropped (shrink_libs.py in the build stage), the
    library numpy and scipy both vendor is kept once, and what serving loads still loads."""
    import io
    import tarfile

    from satchel.serving.images import shrink_libs

    site = "/opt/venv/lib/python3.11/site-packages"
    with Container(engine, sklearn_image.id, port) as c:
        code, out = c.exec("sh", "-c", f"ls {site}/pyarrow/libarrow.so.* && "
                           f"find {site}/scipy.libs -type l | wc -l && "
                           f"find {site} -name '*.pyi' -not -path '*/satchel/*' | wc -l")
        lines = out.split()
        assert code == 0, out
        assert int(lines[1]) >= 1  # scipy.libs links to numpy.libs' identical copies
        assert int(lines[2]) == 0  # no type stubs
        stream, _ = engine.get_archive(c.id, lines[0])
        with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
            member = tar.next()
            assert member is not None
            extracted = tar.extractfile(member)
            assert extracted is not None
            names = shrink_libs.section_names(extracted.read())
        assert ".dynsym" in names and ".symtab" not in names and ".strtab" not in names
        code, out = c.exec("python", "-c", "import scipy.sparse.linalg, scipy.optimize, "
                           "sklearn.ensemble, sklearn.neighbors, pyarrow.compute; print('ok')")
        assert code == 0 and out.strip() == "ok", out


@pytest.mark.docker
def test_sagemaker_starts_the_image_with_serve(engine: Any, sklearn_image: sd.BuiltImage,
                                              iris: Any, port: int) -> None:
    """`docker run IMAGE serve`: the argument is ignored, 8080 is the image's port, and
    SATCHEL_* variables still apply (here the port, so the test needs no fixed port)."""
    env = engine.inspect_image(sklearn_image.id)["Config"]["Env"]
    assert "SATCHEL_PORT=8080" in env and "SATCHEL_HOST=0.0.0.0" in env
    X = iris[0].head(3)
    with Container(engine, sklearn_image.id, port, command=["serve"],
                   environment={"SATCHEL_MAX_BODY_SIZE": "100000"}) as c:
        c.wait_ready()
        got = c.post({"dataframe_split": {"columns": list(X.columns),
                                          "data": X.values.tolist()}})
        assert len(got["predictions"]) == 3
        with pytest.raises(urllib.error.HTTPError) as too_big:
            c.post({"dataframe_split": {"columns": list(X.columns),
                                        "data": X.values.tolist() * 3000}})
        assert too_big.value.code == 413


@pytest.mark.docker
def test_sklearn_image_metadata_and_contents(engine: Any, sklearn_image: sd.BuiltImage,
                                             iris_model_dir: Path, port: int) -> None:
    config = engine.inspect_image(sklearn_image.id)["Config"]
    manifest = Manifest.read(iris_model_dir)
    assert config["User"] == "10001:10001"
    assert "8080/tcp" in config["ExposedPorts"]
    assert config["Entrypoint"] == ["satchel", "serve", "-m", "/opt/model"]
    assert "curl" not in json.dumps(config["Healthcheck"])
    labels = config["Labels"]
    assert labels["satchel.model.uuid"] == manifest.model_uuid
    assert labels["satchel.version"] == __version__
    assert labels["satchel.signature.digest"] == sd.signature_digest(manifest)
    assert labels["satchel.signature.digest"].startswith("sha256:")
    assert sklearn_image.size == engine.inspect_image(sklearn_image.id)["Size"] > 0
    with Container(engine, sklearn_image.id, port) as c:
        tools = "gcc cc c++ g++ make java javac pip pip3 curl wget"
        code, found = c.exec("sh", "-c", f"for t in {tools}; do command -v $t; done; "
                             # What the build added (the base image's own files are its business).
                             "find /opt /tmp /root /var/cache \\( -name '*.whl' -o -name '*.deb' "
                             "-o -name pip -o -name .cache \\) -print 2>/dev/null; "
                             "ls -d /build /var/lib/apt/lists/*_Packages 2>/dev/null; "
                             "python -c 'import pip' 2>/dev/null && echo pip-importable",
                             user="root")  # root, so that nothing is hidden from find
        assert found.strip() == "", found
        code, out = c.exec("python", "-c", "import satchel, sys; print(satchel.__version__, "
                           "'%d.%d' % sys.version_info[:2])")
        assert out.split() == [__version__, "3.11"]


@pytest.mark.docker
def test_model_only_rebuild_reuses_the_dependency_layers(
        engine: Any, sklearn_image: sd.BuiltImage, tmp_path: Path, iris: Any) -> None:
    from sklearn.linear_model import LogisticRegression

    other = tmp_path / "other"
    satchel.save_model(LogisticRegression(C=0.3, max_iter=500).fit(*iris), other,
                       input_example=iris[0].head(3))
    rebuilt = _build(engine, other, "iris-other")
    before = engine.inspect_image(sklearn_image.id)["RootFS"]["Layers"]
    after = engine.inspect_image(rebuilt.id)["RootFS"]["Layers"]
    # base, user, venv, satchel, satchel's script: the same layers; the model: new.
    assert len(after) == len(before) and after[:-1] == before[:-1]
    assert after[-1] != before[-1]
    log = "\n".join(rebuilt.log)
    pip_step = log.index("--requirement /build/requirements.txt")
    assert log[pip_step:].lstrip().split("\n", 1)[1].strip().startswith("---> Using cache")
    assert "COPY model/ /opt/model/" in log


@pytest.mark.docker
def test_a_failing_build_step_is_named_with_its_output(engine: Any, tmp_path: Path,
                                                       iris_model_dir: Path) -> None:
    model = tmp_path / "py312"
    shutil.copytree(iris_model_dir, model)
    manifest = (model / "MLmodel").read_text()  # not covered by the artifact digests
    (model / "MLmodel").write_text(re.sub(r"python_version: \S+", "python_version: 3.12.1",
                                          manifest))
    with pytest.raises(ImageBuildError, match=r"Step 3/\d+ : RUN python3 .*: the model needs "
                       r"Python 3\.12, the base image \S+ has 3\.11 \(exit code 1\)$"):
        _build(engine, model, "py312")


@pytest.mark.docker
def test_cli_build_docker_prints_id_tag_and_size(engine: Any, sklearn_image: sd.BuiltImage,
                                                 iris_model_dir: Path) -> None:
    tag = f"satchel-test/iris-cli:{uuid.uuid4().hex[:8]}"
    engine.satchel_test_tags.append(tag)
    r = subprocess.run([sys.executable, "-m", "satchel.cli", "build-docker", "-m",
                        str(iris_model_dir), "-t", tag, "--base-image", BASE_IMAGE],
                       capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stderr[-2000:]
    image_id, printed_tag, size = r.stdout.split()
    assert printed_tag == tag and int(size) == engine.inspect_image(tag)["Size"]
    assert image_id == engine.inspect_image(tag)["Id"]
    assert "Step 1/" in r.stderr and "Using cache" in r.stderr  # progress was streamed


@pytest.mark.docker
def test_onnx_image_serves_what_predict_returns(engine: Any, tmp_path: Path, iris: Any,
                                                iris_logreg: Any, port: int) -> None:
    import numpy as np
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    onnx_model = convert_sklearn(iris_logreg, initial_types=[("input", FloatTensorType([None, 4]))],
                                 options={"zipmap": False})
    path = tmp_path / "onnx"
    satchel.save_model(onnx_model, path)
    X = iris[0].to_numpy(dtype="float32")
    expected = satchel.load_model(path).predict(X)
    image = _build(engine, path, "iris-onnx")
    with Container(engine, image.id, port) as c:
        c.wait_ready()
        got = c.post({"inputs": {"input": X.tolist()}})["predictions"]
        assert got["label"] == expected["label"].tolist()
        np.testing.assert_allclose(got["probabilities"], expected["probabilities"], rtol=1e-6)
        assert c.health() == "healthy"
