"""`satchel convert` (not implemented yet)."""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(sub: Any) -> None:
    """Register the subcommand."""
    p = sub.add_parser("convert", help="(not implemented yet)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Not implemented yet."""
    raise SystemExit("satchel convert: not implemented yet")
