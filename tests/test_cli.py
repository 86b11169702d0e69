"""The satchel command: info, validate, exit codes and one-line errors."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SATCHEL = [sys.executable, "-m", "satchel.cli"]


def run(*args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*SATCHEL, *args], capture_output=True, text=True, input=input, timeout=120
    )


def test_info_describes_the_model(iris_model_dir: Path) -> None:
    r = run("info", str(iris_model_dir))
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "python_function, sklearn (loaded by: sklearn)" in out
    assert "runs code on load: cloudpickle" in out
    assert "digests    ok (6 files)" in out
    assert "sepal_length" in out and "double" in out and "scikit-learn==" in out


def test_info_json(iris_model_dir: Path) -> None:
    info = json.loads(run("info", "--json", str(iris_model_dir)).stdout)
    assert info["inputs"][0] == ["sepal_length", "double", "required"]
    assert info["loader_module"] == "mlflow.sklearn"


def test_info_reports_tampering_without_failing(tmp_path: Path, iris_model_dir: Path) -> None:
    shutil.copytree(iris_model_dir, tmp_path / "m")
    (tmp_path / "m/requirements.txt").write_text("evil\n")
    r = run("info", str(tmp_path / "m"))
    assert r.returncode == 0 and "FAILED: requirements.txt was modified" in r.stdout


def test_validate_ok_and_tampered(tmp_path: Path, iris_model_dir: Path) -> None:
    r = run("validate", str(iris_model_dir))
    assert r.returncode == 0 and "predicted 5 rows" in r.stdout
    shutil.copytree(iris_model_dir, tmp_path / "m")
    with open(tmp_path / "m/model.pkl", "ab") as f:
        f.write(b"x")
    r = run("validate", str(tmp_path / "m"))
    assert r.returncode == 1
    assert r.stderr.strip() == (
        "satchel: error: model.pkl was modified after the model was "
        "saved (sha256 does not match MLmodel's artifact_digests)"
    )
    assert "Traceback" not in r.stderr


def test_debug_prints_traceback(tmp_path: Path) -> None:
    r = run("--debug", "info", str(tmp_path))
    assert r.returncode == 1 and "Traceback" in r.stderr and "has no MLmodel file" in r.stderr


@pytest.mark.parametrize("args", [(), ("info",), ("frobnicate",), ("info", "--bogus", "x")])
def test_usage_errors_exit_2(args: tuple[str, ...]) -> None:
    assert run(*args).returncode == 2


def test_version() -> None:
    r = run("--version")
    assert r.returncode == 0 and r.stdout.startswith("satchel ")


def test_serve_defaults_are_the_options_classes_defaults(monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    """Issue 12: every serve default is written once, in the options dataclasses; the
    CLI (and its environment variables' fallback) derive theirs from them."""
    from satchel.cli import build_parser
    from satchel.cli._serve_args import ENV
    from satchel.cli._serve_args import from_env as _from_env
    from satchel.serving.server.options import BatchOptions, Limits, ProcessOptions, ServeOptions

    for _, (variable, _) in ENV.items():
        monkeypatch.delenv(variable, raising=False)
    args = build_parser().parse_args(["serve", "-m", "x"])
    _from_env(args)
    batch, limits, process, serve = BatchOptions(), Limits(), ProcessOptions(), ServeOptions()
    assert (args.max_batch_size, args.max_batch_delay_ms) == (batch.max_batch_size,
                                                              batch.max_batch_delay_ms)
    assert (args.port, args.host, args.workers) == (process.port, process.host,
                                                    process.workers)
    assert (args.timeout, args.max_queue, args.max_body_size, args.predict_threads) == (
        limits.timeout, limits.max_queue, limits.max_body_size, limits.predict_threads)
    assert (args.batching, args.grpc_port) == (serve.batching, serve.grpc_port)
    # the help text shows the same number, not a copy of it
    helptext = subprocess.run([sys.executable, "-m", "satchel", "serve", "--help"],
                              capture_output=True, text=True, check=True).stdout
    assert f"default {batch.max_batch_size}" in " ".join(helptext.split())


def test_a_command_named_first_builds_only_its_own_parser() -> None:
    # `serve --env-manager venv` starts its model workers right after parsing: the other
    # twelve commands' modules are not imported for it; anything else gets them all
    probe = ("import sys\nfrom satchel.cli import main\n"
             "try:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
             "print(sorted(m for m in sys.modules if m.startswith('satchel.cli.')))")
    def modules(*argv: str) -> list[str]:
        out = subprocess.run([sys.executable, "-c", probe, *argv], capture_output=True,
                             text=True, check=True).stdout
        return list(json.loads(out.strip().splitlines()[-1].replace("'", '"')))

    assert "satchel.cli.registry" not in modules("generate-dockerfile", "--help")
    assert "satchel.cli.generate_dockerfile" in modules("generate-dockerfile", "--help")
    assert "satchel.cli.registry" in modules("--debug", "info", "--help")
    # an unknown command still lists every command
    done = subprocess.run([sys.executable, "-m", "satchel", "servee"], capture_output=True,
                          text=True)
    assert done.returncode == 2 and "'serve'" in done.stderr and "'registry'" in done.stderr
