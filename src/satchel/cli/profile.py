"""``satchel profile MODEL --data FILE``: save a reference profile into a model directory.

The profile (reference_profile.json) is what the server and ``satchel monitor`` measure
drift against. The directory is rewritten atomically with new digests.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_parser(sub: Any) -> None:
    """Register the subcommand."""
    p = sub.add_parser("profile", help="save a reference profile of training data into a model",
                       description="Profile reference data (the training or validation set) "
                       "and the model's predictions on it, for drift monitoring.")
    p.add_argument("model", help="model directory")
    p.add_argument("--data", required=True, help="reference data (.parquet, .csv, .jsonl)")
    p.add_argument("--format", choices=("parquet", "csv", "jsonl"),
                   help="data format (default: from the suffix)")
    p.add_argument("--max-rows", type=int, default=1_000_000, metavar="N",
                   help="profile at most the first N rows (default 1000000)")
    p.add_argument("--categorical", nargs="+", default=[], metavar="COL",
                   help="columns to profile as categories even when numeric")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from satchel.datafiles import read_frame
    from satchel.model import load_model
    from satchel.monitoring.reference import profile_model, write_profile

    if args.max_rows < 1:
        raise SystemExit("satchel: error: --max-rows must be at least 1")
    model = load_model(Path(args.model))
    data = read_frame(args.data, fmt=args.format, max_rows=args.max_rows)
    profile = profile_model(model, data, categorical=args.categorical)
    write_profile(args.model, profile)
    print(f"profiled {profile.rows} rows: {len(profile.inputs)} input and "
          f"{len(profile.outputs)} output columns -> {Path(args.model) / 'reference_profile.json'}")
    return 0
