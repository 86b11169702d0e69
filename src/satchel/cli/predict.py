"""``satchel predict -m MODEL [-i INPUT] [-o OUTPUT] [-t json|csv|parquet]``: score a file.

The input is what ``POST /invocations`` takes (JSON with dataframe_split,
dataframe_records, instances or inputs, plus params; CSV; Parquet), read by the same
codecs; the JSON output is the server's ``{"predictions": ...}`` reply.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from satchel.cli._env_options import add_env_options
from satchel.cli._load_options import add_load_options, load_options

KINDS = ("json", "csv", "parquet")
_EXTENSIONS = {".json": "json", ".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}




def add_parser(sub: Any) -> None:
    """Register the subcommand."""
    p = sub.add_parser("predict", help="score an input file (or stdin) with a model",
                       description="Score a JSON, CSV or Parquet input with a model; the "
                       "formats are those of the REST server's /invocations.")
    p.add_argument("-m", "--model", required=True, help="model directory or models:/ URI")
    p.add_argument("-i", "--input", help="input file (default or '-': stdin)")
    p.add_argument("-o", "--output", help="output file (default or '-': stdout)")
    p.add_argument("-t", "--content-type", dest="input_type", metavar="TYPE",
                   help="input format: json, csv, parquet, or a full content type such as "
                   "'text/csv; charset=utf-8' (default: from the input file's extension, "
                   "else json)")
    p.add_argument("--output-format", choices=KINDS,
                   help="output format (default: from the output file's extension, else json)")
    add_env_options(p)
    add_load_options(p)
    p.set_defaults(func=run)


def _kind(explicit: str | None, path: str | None) -> str:
    if explicit:
        return explicit
    if path and path != "-":
        return _EXTENSIONS.get(Path(path).suffix.lower(), "json")
    return "json"


def run(args: argparse.Namespace) -> int:
    """Read, predict, write; data errors raise SatchelError (one line, exit 1)."""
    from satchel.model import load_model
    from satchel.serving.protocols import mlflow, tables
    from satchel.serving.server.execution import predict
    from satchel.serving.server.repository import READY, ServedModel

    kind = _kind(args.input_type, args.input)
    if "/" in kind:
        media = kind  # a full content type, checked like a request's header
    elif kind in KINDS:
        media = {"json": mlflow.JSON, "csv": mlflow.CSV, "parquet": mlflow.PARQUET}[kind]
    else:
        raise SystemExit(f"satchel predict: -t must be one of {', '.join(KINDS)} or a "
                         f"content type, not {kind!r}")
    body = (Path(args.input).read_bytes() if args.input and args.input != "-"
            else sys.stdin.buffer.read())
    model = load_model(args.model, **load_options(args))
    served = ServedModel("model", model=model, state=READY)
    sig = model.signature
    parsed = mlflow.parse_request(body, media, sig.inputs if sig is not None else None)
    result = predict(served, parsed.data, parsed.params)
    if result.dropped_columns:
        print(f"satchel: note: ignored input columns not in the signature: "
              f"{list(result.dropped_columns)}", file=sys.stderr)
    if result.unknown_params:
        print(f"satchel: note: ignored params not in the param schema: "
              f"{list(result.unknown_params)}", file=sys.stderr)
    out_kind = _kind(args.output_format, args.output)
    if out_kind == "json":
        data = mlflow.format_predictions(result.output) + b"\n"
    else:
        data = tables.write_table(tables.output_frame(result.output), out_kind)
    if args.output and args.output != "-":
        Path(args.output).write_bytes(data)
    else:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    return 0
