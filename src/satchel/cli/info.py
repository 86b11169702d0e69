"""``satchel info MODEL``: flavors, signature, requirements, size, digest status."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from satchel.schema import ColSpec, ParamSchema, Schema, TensorSpec


def add_parser(sub: Any) -> None:
    """Register the subcommand."""
    p = sub.add_parser("info", help="describe a model directory")
    p.add_argument("model", help="model directory or models:/NAME/VERSION|@ALIAS|/STAGE")
    p.add_argument("--json", action="store_true", help="print the description as JSON")
    p.set_defaults(func=run)


def describe(path: Path) -> dict[str, Any]:
    """What ``satchel info`` reports, as a dict (also used by tests and --json)."""
    from satchel import plugins
    from satchel._fs import verify_digests
    from satchel.env import read_requirements
    from satchel.errors import IntegrityError, SatchelError
    from satchel.flavor import LoadConfig
    from satchel.manifest import Manifest

    manifest = Manifest.read(path)
    if manifest.artifact_digests is None:
        digests = "none recorded (saved without satchel)"
    else:
        try:
            verify_digests(path, manifest.artifact_digests)
            digests = f"ok ({len(manifest.artifact_digests)} files)"
        except IntegrityError as exc:
            digests = f"FAILED: {exc}"
    pyfunc = manifest.pyfunc or {}
    loader = "unavailable"
    unsafe = None
    try:
        flavor = plugins.for_manifest(manifest)
        loader = flavor.name
        check = getattr(flavor, "unsafe_format", None)
        if check is not None:
            unsafe = check(
                LoadConfig(
                    section=dict(manifest.flavors.get(flavor.name) or {}), pyfunc=dict(pyfunc)
                )
            )
    except SatchelError as exc:
        loader = f"unavailable: {exc}"
    code = pyfunc.get("code")
    if code:
        runs = f"python code paths in {code}/ (refused when allow_code=False)"
        unsafe = f"{unsafe}; {runs}" if unsafe else runs
    sig = manifest.signature
    return {
        "path": str(path),
        "flavors": sorted(manifest.flavors),
        "loaded_by": loader,
        "loader_module": pyfunc.get("loader_module"),
        "runs_code_on_load": unsafe,
        "python_version": manifest.python_version,
        "model_uuid": manifest.model_uuid,
        "created": manifest.utc_time_created,
        "size_bytes": manifest.model_size_bytes,
        "satchel_version": manifest.satchel_version,
        "digests": digests,
        "inputs": _rows(sig.inputs) if sig and sig.inputs else None,
        "outputs": _rows(sig.outputs) if sig and sig.outputs else None,
        "params": _param_rows(sig.params) if sig and sig.params else None,
        "requirements": read_requirements(path),
        "requirements_status": requirement_status(read_requirements(path)),
        "input_example": bool(manifest.saved_input_example_info),
        "metadata": manifest.metadata,
    }


def requirement_status(lines: list[str]) -> dict[str, str]:
    """For each requirement line not met here: ``"not installed"`` or ``"installed X"``
    (a ``==`` pin at another version). Options and ``-r``/``-c`` lines are skipped."""
    import re

    from satchel.env import installed_version, requirement_name

    out: dict[str, str] = {}
    for line in lines:
        if line.startswith("-"):
            continue
        have = installed_version(requirement_name(line))
        if have is None:
            out[line] = "not installed"
            continue
        pinned = re.search(r"==\s*([^\s;,]+)", line)
        if pinned and pinned.group(1) != have:
            out[line] = f"installed {have}"
    return out


def _rows(schema: Schema) -> list[list[str]]:
    rows = []
    for name, spec in zip(schema.names(), schema.inputs):
        if isinstance(spec, TensorSpec):
            rows.append([name, f"tensor {spec.dtype}", str(list(spec.shape))])
        elif isinstance(spec, ColSpec):
            rows.append([name, spec.type_name, "required" if spec.required else "optional"])
    return rows


def _param_rows(params: ParamSchema) -> list[list[str]]:
    return [[p.name, p.type_name, f"default {json.dumps(p.default, default=str)}"] for p in params]


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "    " + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows
    )


def _format_line(unsafe: str | None) -> str:
    return f"runs code on load: {unsafe}" if unsafe else "no code runs on load"


def run(args: argparse.Namespace) -> int:
    """Print the description."""
    from satchel.registry.uri import is_models_uri

    version = None
    if is_models_uri(args.model):
        from satchel.registry.api import model_dir

        path, version = model_dir(args.model)
    else:
        path = Path(args.model)
    info = describe(path.resolve())
    if version is not None:
        info["registry"] = {"name": version.name, "version": version.version,
                            "digest": version.digest, "aliases": list(version.aliases),
                            "stage": version.stage}
    if args.json:
        print(json.dumps(info, indent=2, default=str))
        return 0
    size = info["size_bytes"]
    reg = info.get("registry")
    lines = [
        f"model      {info['path']}",
        *([f"registry   {reg['name']} version {reg['version']} (stage {reg['stage']}, "
           f"aliases {', '.join(reg['aliases']) or '-'})"] if reg else []),
        f"flavors    {', '.join(info['flavors'])} (loaded by: {info['loaded_by']})",
        f"format     {_format_line(info['runs_code_on_load'])}",
        f"python     {info['python_version'] or 'unknown'}",
        f"uuid       {info['model_uuid'] or '-'}   created {info['created'] or '-'}",
        f"size       {size if size is not None else '?'} bytes",
        f"digests    {info['digests']}",
    ]
    for key in ("inputs", "outputs", "params"):
        rows = info[key]
        lines.append(f"{key}:" if rows else f"{key:<10} none")
        if rows:
            lines.append(_table(rows))
    reqs = info["requirements"]
    status = info["requirements_status"]
    lines.append("requirements:" if reqs else "requirements none")
    lines.extend(f"    {r}" + (f"   <- {status[r]}" if status.get(r) else "") for r in reqs)
    lines.append(f"example    {'yes' if info['input_example'] else 'no'}")
    print("\n".join(lines))
    return 0
