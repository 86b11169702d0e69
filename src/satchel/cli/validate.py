"""``satchel validate MODEL``: digests, load, and the saved input example through predict."""

from __future__ import annotations

import argparse
from typing import Any

from satchel.cli._env_options import add_env_options
from satchel.cli._load_options import add_load_options, load_options


def add_parser(sub: Any) -> None:
    """Register the subcommand."""
    p = sub.add_parser("validate", help="verify digests, load the model and predict on its example")
    p.add_argument("model", help="model directory or models:/ URI")
    add_load_options(p)
    add_env_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Load (which verifies digests) and predict on the saved example."""
    from satchel._normalize import num_rows
    from satchel.model import load_model

    model = load_model(args.model, **load_options(args))
    digests = model.manifest.artifact_digests
    checked = (
        f"digests verified ({len(digests)} files)"
        if digests
        else "NO digests recorded, files not verified"
    )
    print(f"ok: {checked}, loaded as {model.flavor.name}")
    example = model.input_example()
    if example is None:
        print("ok: no input example saved; nothing to predict")
        return 0
    result = model.predict_detailed(example.data, example.params)
    print(f"ok: predicted {num_rows(result.output)} rows from the input example")
    return 0
