"""``satchel validate MODEL``: digests, load, and the saved input example through predict."""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(sub: Any) -> None:
    """Register the subcommand."""
    p = sub.add_parser("validate", help="verify digests, load the model and predict on its example")
    p.add_argument("model", help="model directory")
    p.add_argument("--no-pickle", action="store_true", help="refuse formats that run code on load")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Load (which verifies digests) and predict on the saved example."""
    from satchel._normalize import num_rows
    from satchel.model import load_model

    model = load_model(args.model, allow_pickle=not args.no_pickle)
    print(f"ok: digests verified, loaded as {model.flavor.name}")
    example = model.input_example()
    if example is None:
        print("ok: no input example saved; nothing to predict")
        return 0
    result = model.predict_detailed(example.data, example.params)
    print(f"ok: predicted {num_rows(result.output)} rows from the input example")
    return 0
