"""``satchel monitor MODEL --data FILE``: drift of a data file against the reference profile.

The data (Parquet, CSV, JSONL, or a directory of payload logs) is read in Arrow batches
and counted into the profile's bins, so memory stays flat whatever the file size. Exit
code 1 when a column's PSI exceeds ``--fail-psi``, for CI and cron jobs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

DEFAULT_FAIL_PSI = 0.2


def add_parser(sub: Any) -> None:
    """Register the subcommand."""
    p = sub.add_parser("monitor", help="measure drift of a data file against the model's profile",
                       description="Compare current data with the reference profile saved in "
                       "the model: PSI, Jensen-Shannon distance, null and out-of-range rates.")
    p.add_argument("model", help="model directory")
    p.add_argument("--data", required=True,
                   help="current data: .parquet/.csv/.jsonl file or a payload-log directory")
    p.add_argument("--format", choices=("parquet", "csv", "jsonl"),
                   help="data format (default: from the suffix)")
    p.add_argument("--report", metavar="HTML", help="write a self-contained HTML report")
    p.add_argument("--json", metavar="FILE", dest="json_out",
                   help="write the figures as JSON ('-' for stdout)")
    p.add_argument("--fail-psi", type=float, default=DEFAULT_FAIL_PSI, metavar="X",
                   help=f"exit 1 when any column's PSI exceeds X (default {DEFAULT_FAIL_PSI})")
    p.add_argument("--no-predict", action="store_true",
                   help="do not score the data (output drift only from payload logs)")
    p.add_argument("--batch-rows", type=int, default=65_536, metavar="N",
                   help="rows per batch (default 65536)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from satchel.model import load_model
    from satchel.monitoring.profile import Profile
    from satchel.monitoring.scan import data_frames, scan

    if args.batch_rows < 1:
        raise SystemExit("satchel: error: --batch-rows must be at least 1")
    if not 0 <= args.fail_psi < float("inf"):  # also refuses nan (no PSI exceeds it)
        raise SystemExit(f"satchel: error: --fail-psi must be a number of at least 0, "
                         f"not {args.fail_psi:g}")
    model = load_model(Path(args.model))
    profile = Profile.read(model.path)
    if profile is None:
        print("satchel: note: the model has no reference profile; reporting raw "
              "distributions only (run `satchel profile` to add one)", file=sys.stderr)
    tally = scan(profile, data_frames(args.data, fmt=args.format, batch_rows=args.batch_rows),
                 None if args.no_predict else model)
    report = tally.report()
    over = [f["column"] for f in report["inputs"] + report["outputs"]
            if f["psi"] is not None and f["psi"] > args.fail_psi]
    report["threshold"] = args.fail_psi
    report["over_threshold"] = over
    if args.json_out:
        text = json.dumps(report, indent=1)
        if args.json_out == "-":
            print(text)
        else:
            Path(args.json_out).write_text(text + "\n", "utf-8")
    if args.report:
        from satchel.monitoring.report import render

        page = render(tally, title=f"Drift report: {model.path.name}", threshold=args.fail_psi,
                      source=str(args.data))
        Path(args.report).write_text(page, "utf-8")
    _summary(report, args.fail_psi)
    return 1 if over else 0


def _summary(report: dict[str, Any], threshold: float) -> None:
    rows = sorted(report["inputs"] + report["outputs"], key=lambda f: -(f["psi"] or 0.0))
    for f in rows:
        psi = "-" if f["psi"] is None else f"{f['psi']:.4f}"
        flag = "  DRIFT" if f["psi"] is not None and f["psi"] > threshold else ""
        print(f"{f['column']:<32} psi={psi:<8} rows={f['count']:.0f}{flag}")
