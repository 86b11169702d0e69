"""``--env-manager local|venv`` and ``--wheelhouse``: run a command inside the model's own
environment.

With ``venv`` the command builds (or reuses) the model's environment and runs itself
again with that environment's interpreter; the inner run sees ``SATCHEL_IN_ENV`` and
proceeds locally. Output and exit code pass through unchanged.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

IN_ENV = "SATCHEL_IN_ENV"
ENV_MANAGER = "SATCHEL_ENV_MANAGER"


def add_env_options(p: argparse.ArgumentParser, *, reexec: bool = True) -> None:
    """Add ``--env-manager`` and ``--wheelhouse``.

    ``reexec``: the command loads one model (``args.model``) and, under ``venv``, runs
    again inside its environment; ``serve`` passes False and starts model workers itself.
    """
    from satchel.envs import ENV_MANAGERS

    p.set_defaults(env_reexec=reexec)
    p.add_argument("--env-manager", choices=ENV_MANAGERS, default=None,
                   help="local: this interpreter (default); venv: the model's own cached "
                   f"virtualenv built from its requirements (env {ENV_MANAGER})")
    p.add_argument("--wheelhouse", metavar="DIR",
                   help="with --env-manager venv: install offline from this directory of wheels")


def env_manager(args: argparse.Namespace) -> str:
    """The chosen manager: the flag, else ``$SATCHEL_ENV_MANAGER``, else local."""
    chosen = getattr(args, "env_manager", None) or os.environ.get(ENV_MANAGER) or "local"
    return "local" if os.environ.get(IN_ENV) else chosen


def env_cache(args: argparse.Namespace) -> Any:
    """An :class:`EnvCache` that installs the host's satchel wheel (the image builder's)."""
    from satchel.envs import EnvCache
    from satchel.serving.images.wheels import satchel_wheel

    wheelhouse = getattr(args, "wheelhouse", None)
    return EnvCache(satchel_wheel=satchel_wheel,
                    wheelhouse=Path(wheelhouse) if wheelhouse else None)


def run_in_env(args: argparse.Namespace, argv: Sequence[str]) -> int:
    """Build or reuse the model's environment and run this command again inside it."""
    from satchel.envs import EnvSpec

    env = env_cache(args).ensure(EnvSpec.from_model(args.model))
    if env.built:
        print(f"satchel: built the environment of {Path(args.model).name} in "
              f"{env.seconds:.1f}s ({env.root})", file=sys.stderr)
    child_env = {k: v for k, v in os.environ.items()
                 if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    child_env[IN_ENV] = env.spec.key
    proc = subprocess.run([str(env.python), "-m", "satchel", *argv], env=child_env,
                          check=False)
    return proc.returncode
