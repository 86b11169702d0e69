"""The ``satchel`` command: the composition root.

Each subcommand lives in its own module with ``add_parser(subparsers)`` and a ``run(args)``
it sets as the parser default; a module imports what it needs (serving, pandas, ...)
inside ``run`` so ``satchel --help`` and ``satchel info`` stay fast.

Exit codes: 0 success, 1 a model or data error (one line on stderr; ``--debug`` adds
the traceback), 2 a usage error.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import traceback
from collections.abc import Sequence

from satchel._version import __version__

COMMANDS = (
    "info",
    "predict",
    "validate",
    "serve",
    "batch",
    "convert",
    "generate_dockerfile",
    "build_docker",
    "profile",
    "monitor",
    "evaluate",
    "registry",
    "env",
)


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The argument parser with every subcommand registered (``only``: that one alone,
    named as in COMMANDS)."""
    parser = argparse.ArgumentParser(
        prog="satchel",
        description="Package, inspect and serve models in MLflow's model directory format.",
    )
    parser.add_argument("--version", action="version", version=f"satchel {__version__}")
    parser.add_argument("--debug", action="store_true", help="print tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS if only is None else (only,):
        importlib.import_module(f"satchel.cli.{name}").add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code."""
    words = list(sys.argv[1:] if argv is None else argv)
    # A command named first needs only its own parser: importing and building all
    # thirteen costs ~0.1 s, which `serve --env-manager venv` would spend before it
    # starts its model workers. Anything else (global options, --help, a typo) gets
    # the full parser and its messages.
    named = words[0].replace("-", "_") if words else None
    parser = build_parser(named if named in COMMANDS else None)
    args = parser.parse_args(words)
    from satchel.errors import SatchelError

    try:
        if getattr(args, "env_reexec", False):
            from satchel.cli._env_options import env_manager, run_in_env

            if env_manager(args) == "venv":
                return run_in_env(args, list(argv) if argv is not None else sys.argv[1:])
        code = args.func(args)
        return int(code or 0)
    except (SatchelError, OSError) as exc:
        if args.debug:
            traceback.print_exc()
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"satchel: error: {message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("satchel: interrupted", file=sys.stderr)
        return 130


def entry() -> None:
    """Console-script entry point."""
    sys.exit(main())
