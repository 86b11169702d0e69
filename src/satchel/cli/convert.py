"""``satchel convert MODEL --to onnx -o OUT [--sample FILE]``: sklearn -> ONNX, checked."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from satchel.cli._load_options import add_load_options, load_options


def add_parser(sub: Any) -> None:
    """Register the subcommand."""
    p = sub.add_parser(
        "convert",
        help="convert a saved scikit-learn model to ONNX, refusing "
        "the result unless its predictions match",
    )
    p.add_argument("model", help="model directory or models:/ URI (sklearn flavor)")
    p.add_argument("--to", required=True, choices=["onnx"], help="target format")
    p.add_argument("-o", "--output", required=True, help="directory to write the ONNX model to")
    p.add_argument(
        "--sample",
        help="CSV or JSON file of rows to compare predictions on "
        "(default: the model's input example)",
    )
    p.add_argument("--atol", type=float, default=1e-5, help="absolute tolerance (default 1e-5)")
    p.add_argument(
        "--rtol",
        type=float,
        default=1e-5,
        help="relative tolerance for regression outputs (default 1e-5)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    add_load_options(p)
    p.set_defaults(func=run)


def read_sample(path: Path) -> Any:
    """A DataFrame from a CSV file, or from JSON rows (records, split or columns form)."""
    import pandas as pd

    from satchel.errors import InputFormatError

    suffix = path.suffix.lower()
    if suffix == ".csv":
        try:
            return pd.read_csv(path)
        except (ValueError, pd.errors.ParserError) as exc:
            raise InputFormatError(f"sample {path.name} is not readable CSV: {exc}") from None
    if suffix != ".json":
        raise InputFormatError(f"sample {path.name}: give a .csv or .json file")
    try:
        raw = json.loads(path.read_text("utf-8"))
    except ValueError as exc:
        raise InputFormatError(f"sample {path.name} is not valid JSON: {exc}") from None
    if isinstance(raw, dict) and "dataframe_split" in raw:
        raw = raw["dataframe_split"]
    elif isinstance(raw, dict) and "dataframe_records" in raw:
        raw = raw["dataframe_records"]
    if isinstance(raw, list) and all(isinstance(r, dict) for r in raw):
        return pd.DataFrame.from_records(raw)
    if isinstance(raw, dict) and "data" in raw:
        return pd.DataFrame(raw["data"], columns=raw.get("columns"))
    if isinstance(raw, dict) and all(isinstance(v, list) for v in raw.values()):
        return pd.DataFrame(raw)
    raise InputFormatError(
        f"sample {path.name}: expected records, {{columns, data}}, "
        "dataframe_split or a dict of columns"
    )


def run(args: argparse.Namespace) -> int:
    """Convert, check and write; print what was written."""
    from satchel.convert import convert

    sample = read_sample(Path(args.sample)) if args.sample else None
    options = load_options(args)
    convert(
        args.model,
        args.to,
        args.output,
        sample=sample,
        rtol=args.rtol,
        atol=args.atol,
        overwrite=args.overwrite,
        **options,
    )
    print(
        f"ok: wrote {args.output} (ONNX predictions match scikit-learn within "
        f"atol={args.atol:g}, rtol={args.rtol:g})"
    )
    return 0
