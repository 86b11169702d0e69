"""Images carry no host files: the model is copied without following symlinks out of it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from satchel._fs import copy_model_tree
from satchel.errors import ModelFormatError

from .conftest import edit_manifest, run_cli


@pytest.fixture
def host_secrets(tmp_path: Path) -> Path:
    d = tmp_path / "host"
    (d / "ssh").mkdir(parents=True)
    (d / "ssh" / "id_rsa").write_text("PRIVATE KEY")
    (d / "token").write_text("s3cr3t")
    return d


@pytest.mark.parametrize("digests", [True, False])
@pytest.mark.parametrize("kind", ["folder", "hidden"])
def test_generate_dockerfile_refuses_symlinks_out(
    tmp_path: Path, iris_model_dir: Path, host_secrets: Path, digests: bool, kind: str
) -> None:
    model = tmp_path / "m"
    shutil.copytree(iris_model_dir, model)
    if not digests:
        edit_manifest(model, lambda d: d.pop("artifact_digests"))
    if kind == "folder":
        (model / "extra").symlink_to(host_secrets / "ssh", target_is_directory=True)
    else:
        (model / ".cache").symlink_to(host_secrets / "token")
    out = tmp_path / "ctx"
    proc = run_cli("generate-dockerfile", "-m", str(model), "-o", str(out), timeout=600)
    assert proc.returncode != 0
    name = "extra" if kind == "folder" else ".cache"
    assert name in proc.stderr and "symlink" in proc.stderr, proc.stderr[-500:]
    assert "Traceback" not in proc.stderr
    assert not out.exists()
    assert not any("PRIVATE KEY" in p.read_text(errors="ignore")
                   for p in tmp_path.rglob("*") if p.is_file() and "host" not in p.parts)


def test_copy_checks_every_entry(tmp_path: Path, host_secrets: Path) -> None:
    model = tmp_path / "m"
    (model / "sub").mkdir(parents=True)
    (model / "MLmodel").write_text("flavors: {}\n")
    (model / "sub" / "inner.txt").write_text("model file")
    (model / "alias.txt").symlink_to("sub/inner.txt")  # stays inside: copied as a file
    copy_model_tree(model, tmp_path / "copy")
    assert (tmp_path / "copy" / "alias.txt").read_text() == "model file"
    assert not (tmp_path / "copy" / "alias.txt").is_symlink()
    (model / "sub" / "leak").symlink_to(host_secrets / "token")
    with pytest.raises(ModelFormatError, match="sub/leak"):
        copy_model_tree(model, tmp_path / "copy2")
