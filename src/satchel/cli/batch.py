"""``satchel batch -m MODEL -i INPUT -o OUTPUT``: score a large file in constant memory.

Parquet, CSV or JSONL in and out, one Arrow batch at a time (satchel.serving.offline.batch);
``--spark MASTER`` runs the same job on Spark. The output appears only when the run
completes: an error, Ctrl-C or SIGTERM leaves neither it nor a temporary file.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Any

from satchel.cli._env_options import add_env_options
from satchel.cli._load_options import add_load_options, load_options

FORMATS = ("parquet", "csv", "jsonl")




def add_parser(sub: Any) -> None:
    """Register the subcommand."""
    p = sub.add_parser("batch", help="score a Parquet, CSV or JSONL file in constant memory",
                       description="Score every row of a Parquet, CSV or JSONL file, batch by "
                       "batch, and write the kept columns plus the predictions.")
    p.add_argument("-m", "--model", required=True, help="model directory or models:/ URI")
    p.add_argument("-i", "--input", required=True, help="input file (.parquet, .csv, .jsonl)")
    p.add_argument("-o", "--output", required=True,
                   help="output file (a directory of part files with --spark)")
    p.add_argument("--format", choices=FORMATS,
                   help="output format (default: from the output's suffix)")
    p.add_argument("--input-format", choices=FORMATS,
                   help="input format (default: from the input's suffix)")
    p.add_argument("--batch-rows", type=int, default=None, metavar="N",
                   help="rows per batch (default 65536); memory grows with N, not the file")
    p.add_argument("--keep", nargs="+", action="extend", default=[], metavar="COL",
                   help="input columns to copy into the output, before the predictions")
    p.add_argument("--spark", metavar="MASTER",
                   help="run on Spark (e.g. local[4], spark://host:7077, yarn)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    add_env_options(p)
    add_load_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Score the file; data errors raise SatchelError (one line, exit 1)."""
    from satchel.serving.offline import batch

    if args.spark:
        result = batch.score_on_spark(args.model, args.input, args.output, args.spark,
                                      output_format=args.format,
                                      input_format=args.input_format, keep=args.keep,
                                      overwrite=args.overwrite, **load_options(args))
        if not args.quiet:
            print(f"satchel batch: wrote {result.output} (Spark part files) in "
                  f"{result.seconds:.1f}s", file=sys.stderr)
        return 0
    from satchel.model import load_model
    from satchel.serving.offline.progress import Progress

    rows = args.batch_rows if args.batch_rows is not None else batch.DEFAULT_BATCH_ROWS
    model = load_model(args.model, **load_options(args))
    if not model.row_independent and not args.quiet:
        print(f"satchel batch: note: the model does not declare its rows independent; it "
              f"sees the input {rows} rows at a time", file=sys.stderr)
    progress = None if args.quiet else Progress(sys.stderr)
    with _sigterm_interrupts():
        batch.score_file(model, args.input, args.output, output_format=args.format,
                         input_format=args.input_format, batch_rows=rows, keep=args.keep,
                         overwrite=args.overwrite, progress=progress)
    return 0


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """Turn SIGTERM into SystemExit(143) so the temporary output is removed on the way out."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
