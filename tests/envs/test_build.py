"""Real environment builds: cached, concurrent, repaired, and their failures explained."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from satchel.cli import main
from satchel.envs import EnvCache, EnvSpec
from satchel.errors import EnvironmentBuildError, WheelhouseMissingError

from .conftest import ABSENT_PIN, copy_model, set_requirements

pytestmark = pytest.mark.slow


def _cache(root: Path, **kw: object) -> EnvCache:
    from satchel.serving.images.wheels import satchel_wheel

    return EnvCache(root, satchel_wheel=satchel_wheel, **kw)  # type: ignore[arg-type]


def test_predict_in_the_models_environment(tabulate_model_dir: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "in.json"
    data.write_text(json.dumps({"dataframe_records": [{"x": 1}, {"x": 5}]}))
    out = tmp_path / "out.json"
    # Locally the model cannot run: its library is missing here.
    assert main(["predict", "-m", str(tabulate_model_dir), "-i", str(data), "-o", str(out)]) == 1
    assert "tabulate" in capsys.readouterr().err
    assert main(["predict", "-m", str(tabulate_model_dir), "-i", str(data), "-o", str(out),
                 "--env-manager", "venv"]) == 0
    preds = json.loads(out.read_text())["predictions"]
    assert [p.split(":")[0] for p in preds] == ["0.9.0", "0.9.0"]
    assert [p.split(":")[2] for p in preds] == ["2", "10"]


def test_second_ensure_is_cached_and_validate_runs_inside(tabulate_model_dir: Path,
                                                          env_cache_dir: Path) -> None:
    spec = EnvSpec.from_model(tabulate_model_dir)
    first = _cache(env_cache_dir).ensure(spec)
    again = _cache(env_cache_dir).ensure(spec)
    assert again.built is False and again.root == first.root
    probe = subprocess.run([str(again.python), "-c",
                            "import tabulate; print(tabulate.__version__)"],
                           capture_output=True, text=True, check=True)
    assert probe.stdout.strip() == "0.9.0"


def test_concurrent_builds_make_one_environment(tabulate_model_dir: Path, tmp_path: Path) -> None:
    model = copy_model(tabulate_model_dir, tmp_path / "m")
    set_requirements(model, [ABSENT_PIN, "six==1.17.0"])  # a key no other test builds
    cache = tmp_path / "cache"
    script = ("import sys; from pathlib import Path; from satchel.envs import EnvCache, EnvSpec;"
              "from satchel.serving.images.wheels import satchel_wheel;"
              "e = EnvCache(Path(sys.argv[1]), satchel_wheel=satchel_wheel)"
              ".ensure(EnvSpec.from_model(sys.argv[2])); print(e.built, e.root)")
    procs = [subprocess.Popen([sys.executable, "-c", script, str(cache), str(model)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(3)]
    results = [p.communicate(timeout=900) for p in procs]
    assert all(p.returncode == 0 for p in procs), results
    built = [out.split()[0] for out, _ in results]
    assert built.count("True") == 1, results
    assert len({out.split()[1] for out, _ in results}) == 1
    # nothing half-built left behind
    assert [p.name for p in cache.iterdir() if p.is_dir()] == [EnvSpec.from_model(model).key]


def test_a_broken_cached_environment_is_rebuilt(tabulate_model_dir: Path,
                                                env_cache_dir: Path) -> None:
    spec = EnvSpec.from_model(tabulate_model_dir)
    env = _cache(env_cache_dir).ensure(spec)
    (env.root / "bin" / "python").unlink()
    repaired = _cache(env_cache_dir).ensure(spec)
    assert repaired.built is True
    subprocess.run([str(repaired.python), "-c", "import satchel, tabulate"], check=True)


def test_unresolvable_requirement_names_model_and_reason(iris_model_dir: Path,
                                                         tmp_path: Path) -> None:
    m = copy_model(iris_model_dir, tmp_path / "fraud")
    set_requirements(m, ["scikit-learn==0.0.1"])
    with pytest.raises(EnvironmentBuildError, match=r"model fraud: .*scikit-learn") as info:
        _cache(tmp_path / "c").ensure(EnvSpec.from_model(m))
    assert "0.0.1" in str(info.value)


def test_pip_is_used_without_uv(tabulate_model_dir: Path, tmp_path: Path) -> None:
    m = copy_model(tabulate_model_dir, tmp_path / "m")
    set_requirements(m, [ABSENT_PIN, "six==1.16.0"])
    env = _cache(tmp_path / "c", use_uv=False).ensure(EnvSpec.from_model(m))
    marker = json.loads((env.root / "satchel-env.json").read_text())
    assert marker["installer"] == "pip"
    subprocess.run([str(env.python), "-c", "import tabulate, six; assert six.__version__ == "
                    "'1.16.0'"], check=True)


def test_empty_wheelhouse_names_the_missing_wheel(tabulate_model_dir: Path,
                                                  tmp_path: Path) -> None:
    house = tmp_path / "wheels"
    house.mkdir()
    with pytest.raises(WheelhouseMissingError, match=r"has no wheel for"):
        _cache(tmp_path / "c", wheelhouse=house).ensure(EnvSpec.from_model(tabulate_model_dir))
    assert not [p for p in (tmp_path / "c").iterdir() if p.is_dir()]  # nothing cached


@pytest.mark.parametrize("use_uv", [True, False])
def test_no_network_and_no_wheelhouse_names_the_requirement(
    tabulate_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, use_uv: bool
) -> None:
    # An index nobody listens on: the installer really tries the network and fails.
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("UV_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("UV_NO_CACHE", "1")
    monkeypatch.setenv("PIP_NO_CACHE_DIR", "1")
    monkeypatch.setenv("PIP_RETRIES", "0")
    monkeypatch.delenv("PIP_FIND_LINKS", raising=False)
    with pytest.raises(EnvironmentBuildError, match=r"needed the network.*--wheelhouse"):
        _cache(tmp_path / "c", use_uv=use_uv).ensure(EnvSpec.from_model(tabulate_model_dir))


def test_env_prepare_writes_a_wheelhouse_that_builds_offline(
    tabulate_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str]
) -> None:
    m = copy_model(tabulate_model_dir, tmp_path / "m")
    set_requirements(m, [ABSENT_PIN, "six==1.15.0"])
    house = tmp_path / "house"
    monkeypatch.setenv("SATCHEL_ENV_CACHE", str(tmp_path / "c1"))
    assert main(["env", "prepare", str(m), "--wheelhouse", str(house)]) == 0
    names = {p.name.split("-")[0].lower() for p in house.glob("*.whl")}
    assert {"tabulate", "six", "satchel", "numpy", "pandas"} <= names
    # a second machine: no index at all, only the wheelhouse
    monkeypatch.setenv("SATCHEL_ENV_CACHE", str(tmp_path / "c2"))
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("UV_INDEX_URL", "http://127.0.0.1:9/simple")
    assert main(["validate", str(m), "--env-manager", "venv", "--wheelhouse", str(house)]) == 0
    assert "built the environment of m" in capsys.readouterr().err
    assert os.listdir(tmp_path / "c2")


def test_batch_and_validate_run_in_the_models_environment(
    tabulate_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import pandas as pd

    data = tmp_path / "in.csv"
    pd.DataFrame({"x": [1, 5, 7]}).to_csv(data, index=False)
    out = tmp_path / "out.csv"
    # locally the batch fails on the missing library, inside its environment it scores
    assert main(["batch", "-m", str(tabulate_model_dir), "-i", str(data), "-o", str(out),
                 "-q"]) == 1
    assert "tabulate" in capsys.readouterr().err
    assert main(["batch", "-m", str(tabulate_model_dir), "-i", str(data), "-o", str(out),
                 "-q", "--env-manager", "venv"]) == 0
    scored = pd.read_csv(out)
    assert [p.split(":")[0] for p in scored.iloc[:, -1]] == ["0.9.0"] * 3
    assert [p.split(":")[2] for p in scored.iloc[:, -1]] == ["2", "10", "14"]
    # validate re-runs itself with the environment's interpreter (digests, load)
    good = subprocess.run(
        [sys.executable, "-m", "satchel", "validate", str(tabulate_model_dir),
         "--env-manager", "venv"], capture_output=True, text=True, check=True)
    assert good.stdout.startswith("ok: digests verified")
    tampered = copy_model(tabulate_model_dir, tmp_path / "t")
    pickled = next(tampered.rglob("*.pkl"))
    pickled.write_bytes(pickled.read_bytes() + b"x")
    bad = subprocess.run([sys.executable, "-m", "satchel", "validate", str(tampered),
                          "--env-manager", "venv"], capture_output=True, text=True)
    assert bad.returncode == 1 and "digest" in bad.stderr.lower()
