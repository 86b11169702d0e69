"""``satchel evaluate MODEL --data FILE --target COL``: metrics with intervals, a baseline
comparison, slices, an HTML report, a JSON result, and threshold gates.

Exit codes: 0 evaluated (and every gate passed), 1 a model or data error, 3 evaluated but
a gate of ``--thresholds`` failed.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Iterator
from typing import Any

GATES_FAILED = 3


def add_parser(sub: Any) -> None:
    """Register the subcommand."""
    p = sub.add_parser(
        "evaluate", help="evaluate a model on a table: metrics, intervals, slices, a report",
        description="Evaluate a model on a Parquet, CSV or JSONL table read in batches: "
        "metrics with bootstrap intervals, a paired comparison with a baseline, metrics per "
        "slice with bias figures, a self-contained HTML report, threshold gates.")
    p.add_argument("model", help="model directory or reference")
    p.add_argument("--data", required=True, help="evaluation table (.parquet, .csv, .jsonl)")
    p.add_argument("--target", required=True, metavar="COL", help="the column holding the truth")
    p.add_argument("--baseline", metavar="MODEL", help="a model to compare against")
    p.add_argument("--slice-by", nargs="+", action="extend", default=[], metavar="COL",
                   help="metrics per value of COL (COL=V1,V2 for chosen values only)")
    p.add_argument("--task", choices=("classifier", "regressor"),
                   help="the task, when neither the model nor the target tells")
    p.add_argument("--report", metavar="HTML", help="write the HTML report here")
    p.add_argument("--json", metavar="FILE", help="write the result as JSON here")
    p.add_argument("--thresholds", metavar="YAML", help="gates to check (exit 3 if one fails)")
    p.add_argument("--dataset-name", metavar="NAME",
                   help="a name for the evaluation data, recorded with the result")
    p.add_argument("--resamples", type=int, default=1000, metavar="N",
                   help="bootstrap resamples for the intervals (default 1000; 0: none)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    p.add_argument("--batch-rows", type=int, default=65_536, metavar="N",
                   help="rows per batch read (default 65536)")
    p.add_argument("--spark", metavar="MASTER",
                   help="read, predict and fold each partition on Spark's executors (e.g. "
                   "local[4]); the driver merges one small state per partition; figures "
                   "as in memory")
    p.add_argument("--register-results", nargs="?", const="", default=None,
                   metavar="NAME/VERSION",
                   help="attach the result to a registry version (default: MODEL's, when "
                   "it is a models:/ URI)")
    p.add_argument("--registry-uri", metavar="URI", default=None,
                   help="registry for --register-results (default $SATCHEL_REGISTRY_URI)")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")
    from satchel.cli._env_options import add_env_options

    # Not re-run inside the environment: the metrics and the report need this
    # interpreter's libraries; only the models predict in their environments.
    add_env_options(p, reexec=False)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Evaluate; data errors raise SatchelError (one line, exit 1)."""
    from satchel.evaluate.gates import Thresholds

    # read the gates first: a bad threshold file fails before an hour-long evaluation
    gates = Thresholds.load(args.thresholds) if args.thresholds else None
    from satchel.cli._env_options import env_manager

    venv = env_manager(args) == "venv"
    if args.wheelhouse and not venv:
        raise SystemExit("satchel evaluate: --wheelhouse is only used with --env-manager venv")
    if args.spark:
        from satchel.cli import _evaluate_spark

        result = _evaluate_spark.run(args, venv)
    else:
        from satchel.evaluate.engine import evaluate

        with _models(args, venv) as (model, baseline):
            result = evaluate(model, args.data, args.target, baseline=baseline,
                              slice_by=args.slice_by, task_type=args.task,
                              resamples=args.resamples, seed=args.seed,
                              batch_rows=args.batch_rows, dataset_name=args.dataset_name)
    verdicts = gates.check(result) if gates is not None else []
    if args.register_results is not None:
        attached = register(args, result)
        if not args.quiet:
            print(f"attached to {attached}", file=sys.stderr)
    if args.json:
        from satchel._fs import atomic_write_text

        atomic_write_text(args.json, result.to_json() + "\n")
    if args.report:
        from satchel.evaluate import report

        report.write(result, args.report, verdicts)
    if not args.quiet:
        print(summary(result, verdicts))
    failed = [v for v in verdicts if not v.passed]
    if failed:
        print(f"satchel evaluate: {len(failed)} gate(s) failed: " +
              "; ".join(f"{v.gate}: {v.detail}" for v in failed), file=sys.stderr)
        return GATES_FAILED
    return 0


@contextlib.contextmanager
def _models(args: argparse.Namespace, venv: bool) -> Iterator[tuple[Any, Any]]:
    """The model and baseline references, or with ``--env-manager venv`` the models
    loaded each in its own environment's worker (stopped afterwards)."""
    if not venv:
        yield args.model, args.baseline
        return
    from satchel.model import load_model

    opened: list[Any] = []
    try:
        for ref in (args.model, args.baseline):
            opened.append(None if ref is None else
                          load_model(ref, env_manager="venv", wheelhouse=args.wheelhouse))
        yield opened[0], opened[1]
    finally:
        for m in opened:
            if m is not None:
                m.close()


def register(args: argparse.Namespace, result: Any) -> str:
    """Attach ``result`` to the version named by --register-results (or by MODEL)."""
    from satchel.errors import RegistryInputError
    from satchel.registry import Registry
    from satchel.registry.governance.service import open_governance
    from satchel.registry.uri import is_models_uri

    reg = Registry(args.registry_uri)
    ref = args.register_results or args.model
    if not args.register_results and not is_models_uri(args.model):
        raise RegistryInputError("--register-results needs NAME/VERSION when MODEL is not a "
                                 "models:/ URI", field="register_results")
    version = reg.resolve(ref)
    open_governance(reg).attach_results(version.name, version.version, result)
    return f"models:/{version.name}/{version.version}"


def summary(result: Any, verdicts: Any) -> str:
    """A plain-text table of the figures for the terminal."""
    ci = f"{result.bootstrap.confidence:.0%} interval"
    lines = [f"{result.task}, {result.dataset.rows:,} rows, target {result.dataset.target}",
             f"{'metric':<18}{'value':>10}  {ci}"]
    for m in result.metrics.values():
        lines.append(f"{m.name:<18}{m.value:>10.4g}  {m.low:.4g} – {m.high:.4g}")
    if result.roc_auc_tie_bound:
        lines.append(f"(roc_auc from a score histogram: within {result.roc_auc_tie_bound:.1g} "
                     "of the exact figure)")
    if result.comparison:
        lines.append(f"{'vs baseline':<18}{'diff':>10}  {ci}")
        for c in result.comparison.values():
            mark = " worse" if c.regression else (" better" if c.significant else "")
            lines.append(f"{c.name:<18}{c.difference:>+10.4g}  {c.low:+.4g} – {c.high:+.4g}{mark}")
    gaps = [b for b in result.bias if b.kind == "gap"]
    for b in gaps[:10]:
        lines.append(f"gap {b.metric} by {b.column}: {b.value:.4g} ({b.best} vs {b.worst})")
    for v in verdicts:
        lines.append(f"gate {'PASS' if v.passed else 'FAIL'} {v.gate}: {v.detail}")
    return "\n".join(lines)
