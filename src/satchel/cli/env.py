"""``satchel env prepare MODEL [--wheelhouse DIR]`` and ``satchel env list``.

``prepare`` builds (or reuses) the model's environment; with ``--wheelhouse`` it first
downloads every wheel the environment needs into DIR (the image builder's wheel
gathering), then builds from DIR offline, so the same DIR later builds it on a machine
without an index.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path
from typing import Any


def add_parser(sub: Any) -> None:
    """Register the subcommand."""
    p = sub.add_parser("env", help="build, list and prepare per-model environments")
    env_sub = p.add_subparsers(dest="env_command", metavar="ACTION", required=True)
    prep = env_sub.add_parser("prepare", help="build the model's environment (and a wheelhouse)")
    prep.add_argument("model", help="model directory")
    prep.add_argument("--wheelhouse", metavar="DIR",
                      help="download every wheel it needs into DIR, then build offline from it")
    prep.set_defaults(func=run_prepare)
    ls = env_sub.add_parser("list", help="list cached environments")
    ls.add_argument("--json", action="store_true", help="print as JSON")
    ls.set_defaults(func=run_list)


def run_prepare(args: argparse.Namespace) -> int:
    from satchel.envs import EnvCache, EnvSpec
    from satchel.serving.images.wheels import download_wheels, resolve_platform, satchel_wheel

    spec = EnvSpec.from_model(args.model)
    wheelhouse = Path(args.wheelhouse).resolve() if args.wheelhouse else None
    if wheelhouse is not None:
        wheelhouse.mkdir(parents=True, exist_ok=True)
        own = satchel_wheel(wheelhouse / ".satchel")
        pins = download_wheels(list(spec.requirements), own, wheelhouse,
                               platform=resolve_platform(None)[0],
                               python_version=f"{sys.version_info.major}.{sys.version_info.minor}")
        own.replace(wheelhouse / own.name)
        (wheelhouse / ".satchel").rmdir()
        print(f"wheelhouse {wheelhouse}: {len(pins)} wheels + {own.name}")
    env = EnvCache(satchel_wheel=satchel_wheel, wheelhouse=wheelhouse).ensure(spec)
    state = f"built in {env.seconds:.1f}s" if env.built else "already cached"
    print(f"environment {spec.key} ({state}): {env.root}")
    return 0


def run_list(args: argparse.Namespace) -> int:
    from satchel.envs import default_cache_dir
    from satchel.envs.cache import MARKER

    root = default_cache_dir()
    rows = []
    for marker in sorted(root.glob(f"*/{MARKER}")) if root.is_dir() else []:
        try:
            info = json.loads(marker.read_text("utf-8"))
        except (OSError, ValueError):
            continue
        rows.append({"key": marker.parent.name, "path": str(marker.parent),
                     "requirements": info.get("requirements", []),
                     "installer": info.get("installer")})
    if args.json:
        print(json.dumps(rows, indent=1))
    else:
        for r in rows:
            print(f"{r['key']}  {', '.join(r['requirements']) or '(no requirements)'}")
        if not rows:
            print(f"no environments under {root} (Python {platform.python_version()})")
    return 0
