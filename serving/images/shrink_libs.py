"""Shrink the shared libraries of an image's virtualenv: drop their static symbol tables
(and any DWARF debug sections), as ``strip --strip-unneeded`` does, and link identical
vendored copies (numpy and scipy each vendor the same libgfortran) to one file.

Written for the serving image's build stage, which has no binutils (the base image is
the user's, and the build has no network to install them). It runs there as
``python shrink_libs.py SITE_PACKAGES``, so this file is standalone: the standard
library only, no satchel import.

Why it is safe: the dynamic loader reads a shared object through its program headers
(the segments it maps) and its dynamic section, never its section headers. ``.symtab``,
``.strtab`` and ``.debug_*`` sit in no segment; they serve debuggers and profilers only.
A file is rewritten only when every byte any segment or allocated section covers stays
where it is and unchanged: the file is cut after the last of them, the non-allocated
sections that are kept (``.shstrtab``, ``.comment``, notes) are appended, and a new
section header table is written. Anything unexpected (not 64-bit little-endian ELF,
extended section numbering, a dropped section before the cut, a kept section linking to
a dropped one) leaves the file as it is. The wheels' manylinux libraries ship their
symbol tables: pyarrow's Parquet stack goes from 102 MB to 80 MB, scipy's modules lose
9 MB.

Identical copies: auditwheel names a vendored library (``numpy.libs/``, ``scipy.libs/``) by
a hash of its content, so the same name with the same bytes in two ``*.libs`` folders is
one library twice; the second becomes a relative symlink to the first.

Then, as a check, every extension module that imported before the rewrite must still
import after it (each in a fresh interpreter); a failure names the modules and fails the
build.
"""

from __future__ import annotations

import importlib.machinery
import os
import struct
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

_EHDR = struct.Struct("<16sHHIQQQIHHHHHH")  # ELF64 file header
_PHDR = struct.Struct("<IIQQQQQQ")  # ELF64 program header
_SHDR = struct.Struct("<IIQQQQIIQQ")  # ELF64 section header
_SHT_SYMTAB, _SHT_STRTAB, _SHT_NOBITS = 2, 3, 8
_SHF_ALLOC, _SHF_INFO_LINK = 0x2, 0x40


@dataclass(frozen=True)
class _Section:
    name: int
    type: int
    flags: int
    addr: int
    offset: int
    size: int
    link: int
    info: int
    addralign: int
    entsize: int

    def pack(self) -> bytes:
        return _SHDR.pack(self.name, self.type, self.flags, self.addr, self.offset,
                          self.size, self.link, self.info, self.addralign, self.entsize)


def section_names(data: bytes) -> list[str]:
    """The section names of a 64-bit little-endian ELF file (empty for anything else)."""
    if len(data) < _EHDR.size or data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        return []
    fields = _EHDR.unpack_from(data)
    shoff, shnum, shstrndx = fields[6], fields[12], fields[13]
    if shnum == 0 or shstrndx >= shnum or shoff + shnum * _SHDR.size > len(data):
        return []
    sections = [_Section(*_SHDR.unpack_from(data, shoff + i * _SHDR.size))
                for i in range(shnum)]
    base = sections[shstrndx].offset
    return [data[base + s.name:data.index(b"\0", base + s.name)].decode("latin-1")
            for s in sections]


def strip(data: bytes) -> bytes | None:
    """``data`` (an ELF shared object) without its static symbols and debug sections, or
    None when there is nothing to drop or the file is not laid out as expected."""
    if len(data) < _EHDR.size or data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        return None  # not ELF, or not 64-bit little-endian
    (ident, etype, machine, version, entry, phoff, shoff, flags, ehsize, phentsize, phnum,
     shentsize, shnum, shstrndx) = _EHDR.unpack_from(data)
    if (shnum == 0 or shstrndx >= shnum or shentsize != _SHDR.size
            or phentsize != _PHDR.size or shoff + shnum * shentsize > len(data)):
        return None  # no sections, or extended numbering
    sections = [_Section(*_SHDR.unpack_from(data, shoff + i * shentsize)) for i in range(shnum)]
    names = sections[shstrndx]

    def name_of(s: _Section) -> bytes:
        start = names.offset + s.name
        return data[start:data.index(b"\0", start)]

    drop = set()
    for i, s in enumerate(sections):
        if s.flags & _SHF_ALLOC:
            continue
        if s.type == _SHT_SYMTAB:
            drop.add(i)
            strtab = sections[s.link] if s.link < shnum else None
            if strtab is not None and strtab.type == _SHT_STRTAB and not strtab.flags & _SHF_ALLOC:
                drop.add(s.link)
        elif name_of(s).startswith(b".debug_"):
            drop.add(i)
    drop.discard(shstrndx)
    if not drop:
        return None
    # Everything the loader may read ends here: headers, segments, allocated sections.
    cut = max(_EHDR.size, phoff + phnum * phentsize)
    for i in range(phnum):
        p = _PHDR.unpack_from(data, phoff + i * phentsize)
        cut = max(cut, p[2] + p[5])  # p_offset + p_filesz
    for s in sections:
        if s.flags & _SHF_ALLOC and s.type != _SHT_NOBITS:
            cut = max(cut, s.offset + s.size)
    if cut > len(data) or any(sections[i].offset < cut and sections[i].size for i in drop):
        return None
    index: dict[int, int] = {}
    for i in range(shnum):
        if i not in drop:
            index[i] = len(index)
    out = bytearray(data[:cut])
    kept: list[_Section] = []
    for i, s in enumerate(sections):
        if i in drop:
            continue
        linked = [s.link] + ([s.info] if s.flags & _SHF_INFO_LINK else [])
        if any(n in drop for n in linked):
            return None  # e.g. relocations of a debug section against .symtab
        moved = s
        if i and s.offset >= cut:  # a kept non-allocated section past the cut: move it
            if s.type == _SHT_NOBITS or not s.size:
                moved = replace(s, offset=len(out))
            else:
                out += b"\0" * (-len(out) % max(s.addralign, 1))
                moved = replace(s, offset=len(out))
                out += data[s.offset:s.offset + s.size]
        kept.append(replace(moved, link=index.get(s.link, s.link) if s.link else 0,
                            info=index.get(s.info, s.info) if s.flags & _SHF_INFO_LINK
                            else s.info))
    out += b"\0" * (-len(out) % 8)
    new_shoff = len(out)
    for s in kept:
        out += s.pack()
    out[:_EHDR.size] = _EHDR.pack(ident, etype, machine, version, entry, phoff, new_shoff,
                                  flags, ehsize, phentsize, phnum, shentsize, len(kept),
                                  index[shstrndx])
    return bytes(out)


def shared_objects(root: Path) -> Iterator[Path]:
    """Regular files named like shared libraries under ``root`` (``x.so``, ``x.so.1.2``)."""
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            path = Path(dirpath, name)
            if (name.endswith(".so") or ".so." in name) and path.is_file() \
                    and not path.is_symlink():
                yield path


def strip_file(path: Path) -> int:
    """Rewrite ``path`` stripped (atomically, mode kept); the bytes saved."""
    data = path.read_bytes()
    stripped = strip(data)
    if stripped is None or len(stripped) >= len(data):
        return 0
    tmp = path.with_name(path.name + ".strip-tmp")
    tmp.write_bytes(stripped)
    os.chmod(tmp, path.stat().st_mode & 0o7777)
    os.replace(tmp, path)
    return len(data) - len(stripped)


def link_duplicates(site: Path) -> int:
    """Replace each vendored library (in a ``*.libs`` folder) that another ``*.libs``
    folder holds byte for byte, under the same name, by a relative symlink to it; the
    bytes saved."""
    first: dict[tuple[str, int], list[Path]] = {}
    saved = 0
    for folder in sorted(p for p in site.iterdir() if p.name.endswith(".libs") and p.is_dir()):
        for path in sorted(folder.iterdir()):
            if not path.is_file() or path.is_symlink():
                continue
            key = (path.name, path.stat().st_size)
            same = next((o for o in first.get(key, []) if o.read_bytes() == path.read_bytes()),
                        None)
            if same is None:
                first.setdefault(key, []).append(path)
                continue
            tmp = path.with_name(path.name + ".link-tmp")
            tmp.symlink_to(os.path.relpath(same, path.parent))
            os.replace(tmp, path)
            saved += key[1]
    return saved


def extension_modules(site: Path) -> list[str]:
    """Dotted names of the Python extension modules under ``site``."""
    suffixes = sorted(importlib.machinery.EXTENSION_SUFFIXES, key=len, reverse=True)
    out = []
    for path in shared_objects(site):
        rel = path.relative_to(site).as_posix()
        suffix = next((s for s in suffixes if rel.endswith(s)), None)
        parts = rel[:-len(suffix)].split("/") if suffix else []
        if parts and all(p.isidentifier() for p in parts):
            out.append(".".join(parts))
    return sorted(out)


_IMPORT_ALL = """
import importlib, sys
for name in sys.argv[1:]:
    try:
        importlib.import_module(name)
    except Exception:
        print("-" + name, flush=True)
    else:
        print("+" + name, flush=True)
"""


def importable(modules: list[str]) -> set[str]:
    """The modules of ``modules`` that import: all in one fresh interpreter, in order; a
    module that crashes it counts as failing and the rest go on in a new one."""
    ok: set[str] = set()
    todo = list(modules)
    while todo:
        proc = subprocess.run([sys.executable, "-c", _IMPORT_ALL, *todo], capture_output=True,
                              text=True, check=False)
        done = [line for line in proc.stdout.splitlines() if line[:1] in "+-"]
        ok.update(line[1:] for line in done if line[0] == "+")
        todo = todo[len(done) + (proc.returncode != 0):]
    return ok


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: shrink_libs.py SITE_PACKAGES", file=sys.stderr)
        return 2
    site = Path(argv[0])
    modules = extension_modules(site)
    before = importable(modules)
    saved = files = 0
    for path in shared_objects(site):
        n = strip_file(path)
        if n:
            saved, files = saved + n, files + 1
    linked = link_duplicates(site)
    broken = sorted(before - importable(sorted(before)))
    print(f"shrink_libs: {saved / 1e6:.1f} MB of symbol tables dropped from {files} shared "
          f"objects, {linked / 1e6:.1f} MB of duplicate libraries linked; {len(before)} of "
          f"{len(modules)} extension modules import as before")
    if broken:
        print(f"shrink_libs: these extension modules no longer import: {broken[:20]}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
