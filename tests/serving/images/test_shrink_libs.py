"""shrink_libs.py, the serving image's library shrinker, on real shared objects of this
environment: stripped extension modules still import and compute, the result agrees with
binutils' own view of the file, and anything unexpected is left alone."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from satchel.serving.images import shrink_libs

READELF = shutil.which("readelf")


def _unstripped_extension() -> Path:
    """A real extension module that still has its symbol table (pyarrow's wheels ship
    them), imported below from a copy."""
    import pyarrow

    for path in sorted(Path(pyarrow.__file__).parent.glob("_compute.cpython-*.so")):
        if ".symtab" in shrink_libs.section_names(path.read_bytes()):
            return path
    pytest.skip("no unstripped pyarrow extension module here")  # pragma: no cover


def test_strip_drops_the_symbol_table_and_keeps_what_the_loader_reads(tmp_path: Path) -> None:
    source = _unstripped_extension()
    data = source.read_bytes()
    stripped = shrink_libs.strip(data)
    assert stripped is not None and len(stripped) < len(data)
    names = shrink_libs.section_names(stripped)
    assert ".symtab" not in names and ".strtab" not in names
    assert {".dynsym", ".dynstr", ".text", ".shstrtab"} <= set(names)
    # every byte up to the end of the last allocated section is unchanged
    assert stripped[64:len(stripped) // 2] == data[64:len(stripped) // 2]
    assert shrink_libs.strip(stripped) is None  # nothing left to drop
    if READELF:  # binutils reads the result as a well-formed ELF file
        out = tmp_path / source.name
        out.write_bytes(stripped)
        proc = subprocess.run([READELF, "-S", "-l", "-d", "--wide", str(out)],
                              capture_output=True, text=True, check=False)
        assert proc.returncode == 0 and "Warning" not in proc.stderr, proc.stderr
        assert ".symtab" not in proc.stdout and "NEEDED" in proc.stdout


def test_a_stripped_extension_module_still_imports_and_computes(tmp_path: Path) -> None:
    """A copy of pyarrow, shrunk by the tool's own entry point, computes as before in a
    fresh interpreter (the tool itself checks every extension module still imports)."""
    import pyarrow

    site = tmp_path / "site"
    site.mkdir()
    shutil.copytree(Path(pyarrow.__file__).parent, site / "pyarrow",
                    ignore=shutil.ignore_patterns("tests", "include", "src", "*flight*"))
    before = sum(p.stat().st_size for p in shrink_libs.shared_objects(site))
    env = {**os.environ, "PYTHONPATH": str(site)}  # its import checks load the copy
    proc = subprocess.run([sys.executable, shrink_libs.__file__, str(site)],
                          capture_output=True, text=True, check=False, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "MB of symbol tables dropped" in proc.stdout
    after = sum(p.stat().st_size for p in shrink_libs.shared_objects(site))
    assert after < before * 0.9
    check = ("import sys; sys.path.insert(0, sys.argv[1]); import pyarrow, pyarrow.compute as pc;"
             " import pyarrow.parquet as pq, io; assert pyarrow.__file__.startswith(sys.argv[1]);"
             " t = pyarrow.table({'a': [1.5, 2.5]}); b = io.BytesIO(); pq.write_table(t, b);"
             " b.seek(0); print(pc.sum(pq.read_table(b)['a']).as_py())")
    proc = subprocess.run([sys.executable, "-c", check, str(site)], capture_output=True,
                          text=True, check=False)
    assert proc.returncode == 0 and proc.stdout.strip() == "4.0", proc.stderr[-2000:]


@pytest.mark.parametrize("data", [
    b"",
    b"not an ELF file at all" * 10,
    b"\x7fELF\x01\x01\x01" + b"\0" * 100,  # 32-bit
    b"\x7fELF\x02\x02\x01" + b"\0" * 100,  # big-endian
])
def test_anything_but_a_64_bit_little_endian_elf_is_left_alone(data: bytes) -> None:
    assert shrink_libs.strip(data) is None
    assert shrink_libs.section_names(data) == []


def test_a_truncated_or_odd_file_is_left_alone() -> None:
    data = _unstripped_extension().read_bytes()
    assert shrink_libs.strip(data[:4096]) is None  # section headers past the end
    odd = bytearray(data)
    struct.pack_into("<H", odd, 60, 0)  # e_shnum 0: extended numbering
    assert shrink_libs.strip(bytes(odd)) is None


def test_a_symbol_table_inside_a_segment_is_left_alone() -> None:
    """patchelf appends segments after the sections (numpy's vendored OpenBLAS): the
    symbol table then lies before the end of what the loader maps, and stays."""
    data = bytearray(_unstripped_extension().read_bytes())
    fields = struct.unpack_from("<16sHHIQQQIHHHHHH", data)
    phoff = fields[5]
    # stretch the first program header's file size over the whole file
    struct.pack_into("<Q", data, phoff + 32, len(data))
    assert shrink_libs.strip(bytes(data)) is None


def test_strip_file_keeps_mode_and_reports_the_bytes(tmp_path: Path) -> None:
    target = tmp_path / "lib.so"
    data = _unstripped_extension().read_bytes()
    target.write_bytes(data)
    target.chmod(0o755)
    saved = shrink_libs.strip_file(target)
    assert saved == len(data) - target.stat().st_size > 0
    assert target.stat().st_mode & 0o777 == 0o755
    assert shrink_libs.strip_file(target) == 0
    text = tmp_path / "notes.so.1"
    text.write_text("not a library")
    assert shrink_libs.strip_file(text) == 0 and text.read_text() == "not a library"


def test_identical_vendored_libraries_become_one(tmp_path: Path) -> None:
    a, b, c = tmp_path / "numpy.libs", tmp_path / "scipy.libs", tmp_path / "other"
    for d in (a, b, c):
        d.mkdir()
    same = np.random.default_rng(0).bytes(100_000)
    (a / "libgfortran-abc.so.5").write_bytes(same)
    (b / "libgfortran-abc.so.5").write_bytes(same)
    (b / "libquadmath-x.so.0").write_bytes(same[:-1] + b"!")  # same size, other bytes
    (a / "libquadmath-x.so.0").write_bytes(same)
    (c / "libgfortran-abc.so.5").write_bytes(same)  # not a *.libs folder: untouched
    assert shrink_libs.link_duplicates(tmp_path) == len(same)
    link = b / "libgfortran-abc.so.5"
    assert link.is_symlink() and link.read_bytes() == same
    assert str(link.readlink()) == "../numpy.libs/libgfortran-abc.so.5"
    assert not (b / "libquadmath-x.so.0").is_symlink()
    assert not (c / "libgfortran-abc.so.5").is_symlink()
    assert shrink_libs.link_duplicates(tmp_path) == 0  # idempotent


def test_extension_module_names(tmp_path: Path) -> None:
    import importlib.machinery

    suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
    (tmp_path / "pkg" / "sub").mkdir(parents=True)
    (tmp_path / "pkg" / "sub" / f"_fast{suffix}").write_bytes(b"x")
    (tmp_path / "pkg" / "libhelper.so.1").write_bytes(b"x")  # a library, not a module
    (tmp_path / "pkg.libs").mkdir()
    (tmp_path / "pkg.libs" / "libz-1.so").write_bytes(b"x")
    assert shrink_libs.extension_modules(tmp_path) == ["pkg.sub._fast"]
