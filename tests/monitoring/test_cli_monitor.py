"""``satchel profile`` and ``satchel monitor`` from the command line, on real files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from satchel.cli import main
from satchel.monitoring import PROFILE_FILE

from ..conftest import make_frame


def _write(frame: Any, path: Path) -> Path:
    if path.suffix == ".parquet":
        frame.to_parquet(path)
    elif path.suffix == ".csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_json(path, orient="records", lines=True)
    return path


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".jsonl"])
def test_monitor_flags_only_the_shifted_column(
    profiled_model_dir: Path, tmp_path: Path, suffix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    current = make_frame(3000, seed=9, shift=25.0)
    data = _write(current, tmp_path / f"current{suffix}")
    out = tmp_path / "drift.json"
    code = main(["monitor", str(profiled_model_dir), "--data", str(data), "--json", str(out),
                 "--batch-rows", "500"])
    assert code == 1
    report = json.loads(out.read_text())
    assert "income" in report["over_threshold"]
    assert "age" not in report["over_threshold"] and "city" not in report["over_threshold"]
    assert "DRIFT" in capsys.readouterr().out


def test_monitor_passes_on_reference_like_data(profiled_model_dir: Path, tmp_path: Path) -> None:
    data = _write(make_frame(2000, seed=11), tmp_path / "ok.parquet")
    assert main(["monitor", str(profiled_model_dir), "--data", str(data)]) == 0


def test_monitor_reads_a_payload_log_directory(profiled_model_dir: Path, tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    frame = make_frame(500, seed=4)
    frame["output.prediction"] = 1  # the model always answering 1: output drift
    _write(frame.iloc[:250], logs / "part-0.parquet")
    _write(frame.iloc[250:], logs / "part-1.parquet")
    out = tmp_path / "d.json"
    assert main(["monitor", str(profiled_model_dir), "--data", str(logs), "--no-predict",
                 "--json", str(out)]) == 1
    report = json.loads(out.read_text())
    assert report["over_threshold"] == ["prediction"]
    assert report["outputs"][0]["count"] == 500


def test_profile_command_adds_a_profile(
    profiled_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import satchel

    copy = tmp_path / "m"
    shutil.copytree(profiled_model_dir, copy)
    data = _write(make_frame(400, seed=2), tmp_path / "ref.csv")
    assert main(["profile", str(copy), "--data", str(data), "--categorical", "city"]) == 0
    assert "profiled 400 rows" in capsys.readouterr().out
    satchel.load_model(copy)  # digests rewritten
    assert json.loads((copy / PROFILE_FILE).read_text())["rows"] == 400


def test_monitor_without_profile_says_so(
    iris_model_dir: Path, iris: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _write(iris[0], tmp_path / "iris.parquet")
    out = tmp_path / "r.json"
    assert main(["monitor", str(iris_model_dir), "--data", str(data), "--json", str(out)]) == 0
    assert "no reference profile" in capsys.readouterr().err
    assert json.loads(out.read_text())["has_reference"] is False


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("data.txt", b"a,b\n1,2\n", "cannot tell the format"),
        ("bad.parquet", b"not parquet at all", "cannot read bad.parquet as parquet"),
        ("missing.csv", None, "does not exist"),
    ],
)
def test_monitor_bad_data_is_a_clear_error(
    profiled_model_dir: Path, tmp_path: Path, name: str, content: bytes | None, message: str,
    capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    assert main(["monitor", str(profiled_model_dir), "--data", str(path)]) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".jsonl"])
def test_monitor_reads_files_in_batches_of_at_most_batch_rows(tmp_path: Path,
                                                              suffix: str) -> None:
    """Constant memory: a file is read as frames of at most --batch-rows rows."""
    from satchel.monitoring.scan import data_frames

    data = _write(make_frame(3000, seed=12), tmp_path / f"big{suffix}")
    sizes = [len(frame) for frame in data_frames(data, batch_rows=500)]
    assert sum(sizes) == 3000 and max(sizes) <= 500 and len(sizes) >= 6


@pytest.mark.parametrize("threshold, shifted, code", [
    ("10", True, 0),      # a shift under a lax threshold passes
    ("0.2", True, 1),
    ("0.2", False, 0),
    ("0", True, 1),       # any drift at all fails
])
def test_fail_psi_sets_the_exit_code(profiled_model_dir: Path, tmp_path: Path, threshold: str,
                                     shifted: bool, code: int) -> None:
    frame = make_frame(2000, seed=13, shift=25.0 if shifted else 0.0)
    data = _write(frame, tmp_path / "current.parquet")
    out = tmp_path / "r.json"
    assert main(["monitor", str(profiled_model_dir), "--data", str(data), "--fail-psi",
                 threshold, "--json", str(out)]) == code
    report = json.loads(out.read_text())
    assert report["threshold"] == float(threshold)
    assert bool(report["over_threshold"]) == bool(code)


@pytest.mark.parametrize("bad", ["nan", "-0.1", "inf"])
def test_fail_psi_must_be_a_number_of_at_least_zero(profiled_model_dir: Path, tmp_path: Path,
                                                     bad: str) -> None:
    data = _write(make_frame(100, seed=14), tmp_path / "d.parquet")
    with pytest.raises(SystemExit, match="--fail-psi must be a number of at least 0"):
        main(["monitor", str(profiled_model_dir), "--data", str(data), "--fail-psi", bad])


def test_a_column_of_only_nulls_is_reported_not_a_crash(profiled_model_dir: Path,
                                                         tmp_path: Path) -> None:
    frame = make_frame(300, seed=15)
    frame["age"] = None
    data = _write(frame, tmp_path / "nulls.parquet")
    out = tmp_path / "r.json"
    main(["monitor", str(profiled_model_dir), "--data", str(data), "--no-predict",
          "--json", str(out)])
    age = next(f for f in json.loads(out.read_text())["inputs"] if f["column"] == "age")
    assert age["null_rate"] == 1.0 and age["count"] == 300
